"""Handing freed memory back to the operating system: what keeps a 2 GB notebook server alive.

For: `release_memory()`, which training calls after it (its objects form cycles), `trim_heap()`, which the
probes call after their forward passes (no cycles: the heap only needs trimming), and
`return_large_blocks_at_once()`, one of the things lean memory does (`TrainConfig.memory="lean"`).

Not for: the kit's caches (`freezelab.caches` lists and empties them).
"""

from __future__ import annotations

import ctypes
import gc
import sys


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
