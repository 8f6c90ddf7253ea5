"""The memory the kit holds: every in-memory cache, listed in one place, one function to empty them all, and
one to hand freed memory back to the operating system.

For: `freezelab.clear_caches()`, after changing a data file on disk, or to give memory back in a long
notebook session; `release_memory()`, which training calls after it (its objects form cycles), and
`trim_heap()`, which the probes call after their forward passes (no cycles: the heap only needs trimming);
and `return_large_blocks_at_once()`, one of the things lean memory does (`TrainConfig.memory="lean"`).
The caches, each bounded and described in its own module:

- `data._course_task` / `data._word_order_task`: course tasks as read (8 and 2 most recent);
- `data.TOKENIZED`: tokenized splits (16 most recent, keyed by their content);
- `cache.STORE`: the frozen-prefix cache's hidden states (up to `cache.MAX_MB`);
- `plots._static_parts`: the heatmap's fixed parts per anatomy (16 most recent);
- `anatomy.ANATOMIES`: each live model's layout (weak: it goes with the model);
- `probes.SCORES`: probe scores per (probe, hash of the weights probed) (256 most recent).

`weights_digest` is how the caches that depend on weights name them: a hash of the tensors' bytes.

Not for: caching anything itself.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
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
    if "probes" in loaded:
        loaded["probes"].SCORES.clear()
    release_memory()


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS.

    Trainer and its callbacks refer to each other, so the optimizer state lives until the garbage collector
    runs; and glibc keeps freed pages unless asked. Without this, a notebook that trains several models in a
    row creeps towards Binder's 2 GB.
    """
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim), without a garbage collection.

    For memory freed by reference counting alone (a probe's activations): a full collection would walk every
    object torch and transformers made, a pause each time, and find nothing more to free.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc (musl, ...): nothing to trim
            pass


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_large_blocks_at_once(threshold_bytes: int = 2**20) -> bool:
    """Have glibc serve every allocation of `threshold_bytes` or more from the OS and return it when freed
    (mallopt M_MMAP_THRESHOLD; 1 MiB by default). Glibc otherwise raises that threshold as tensors come and go
    (up to 32 MiB) and keeps the freed blocks below it for later, so a training's resident set grows by what it
    freed. It stays set for the process (glibc cannot go back to its moving threshold). False where the C
    library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):  # not glibc
        return False


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
