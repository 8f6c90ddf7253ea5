"""Every in-memory cache of the kit, listed in one place, and one function to empty them all.

For: `freezelab.clear_caches()`, after changing a data file on disk, or to give memory back in a long
notebook session. The caches, each bounded and described in its own module:

- `data._course_task` / `data._word_order_task`: course tasks as read (8 and 2 most recent);
- `data.TOKENIZED`: tokenized splits (16 most recent, keyed by their content);
- `cache.STORE`: the frozen-prefix cache's hidden states (up to `cache.MAX_MB`);
- `plots._static_parts`: the heatmap's fixed parts per anatomy (16 most recent);
- `anatomy.ANATOMIES`: each live model's layout (weak: it goes with the model).

Not for: caching anything itself.
"""

from __future__ import annotations

import sys


def clear_caches() -> None:
    """Empty every cache of the modules loaded so far (a module not yet imported has nothing cached)."""
    loaded = {name.rsplit(".", 1)[-1]: module for name, module in sys.modules.items()
              if name.startswith("freezelab.") and module is not None}
    if "data" in loaded:
        loaded["data"]._course_task.cache_clear()
        loaded["data"]._word_order_task.cache_clear()
        loaded["data"].TOKENIZED.clear()
    if "cache" in loaded:
        loaded["cache"].STORE.clear()
    if "plots" in loaded:
        loaded["plots"]._static_parts.cache_clear()
    if "anatomy" in loaded:
        loaded["anatomy"].ANATOMIES.clear()
    if "training" in loaded:
        loaded["training"].release_memory()
