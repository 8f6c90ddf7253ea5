"""The memory the kit holds: every in-memory cache, listed in one place, one function to empty them all, and
one to hand freed memory back to the operating system.

For: `freezelab.clear_caches()`, after changing a data file on disk, or to give memory back in a long
notebook session; `release_memory()`, which training calls after it (its objects form cycles), and
`trim_heap()`, which the probes call after their forward passes (no cycles: the heap only needs trimming);
and `return_large_blocks_at_once()`, one of the things lean memory does (`TrainConfig.memory="lean"`).
The caches, each bounded and described in its own module:

- `data._course_task` / `data._word_order_task`: course tasks as read (8 and 2 most recent);
- `data.TOKENIZED`: tokenized splits (16 most recent, keyed by their content);
- `prefix_cache.STORE`: the frozen-prefix cache's hidden states (up to `cache.MAX_MB`);
- `plots._static_parts`: the heatmap's fixed parts per anatomy (16 most recent);
- `anatomy.ANATOMIES`: each live model's layout (weak: it goes with the model);
- `probes.SCORES`: probe scores per (probe, hash of the weights probed) (256 most recent).

`weights_digest` is how the caches that depend on weights name them: a hash of the tensors' bytes.

Not for: caching anything itself.
"""

from __future__ import annotations

import hashlib
import sys

from .memory import release_memory


def clear_caches() -> None:
    """Empty every cache of the modules loaded so far (a module not yet imported has nothing cached)."""
    loaded = {name.rsplit(".", 1)[-1]: module for name, module in sys.modules.items()
              if name.startswith("freezelab.") and module is not None}
    if "data" in loaded:
        loaded["data"]._course_task.cache_clear()
        loaded["data"]._word_order_task.cache_clear()
        loaded["data"].TOKENIZED.clear()
    if "prefix_cache" in loaded:
        loaded["prefix_cache"].STORE.clear()
    if "plots" in loaded:
        loaded["plots"]._static_parts.cache_clear()
    if "anatomy" in loaded:
        loaded["anatomy"].ANATOMIES.clear()
    if "probes" in loaded:
        loaded["probes"].SCORES.clear()
    release_memory()


def weights_digest(*modules, skip: tuple[str, ...] = ()) -> str:
    """A hash of the modules' parameters and buffers (names, dtypes, shapes and bytes), leaving out names that
    start with one of `skip`. Equal digests: the same weights, so whatever was computed from them holds again."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for module in modules:
            for name, tensor in (*module.named_parameters(), *module.named_buffers()):
                if name.startswith(skip):
                    continue
                tensor = tensor.detach().cpu().contiguous()
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(memoryview(tensor.view(torch.uint8).numpy()))
    return digest.hexdigest()
