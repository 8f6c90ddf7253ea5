"""Keeping a kernel small: freed memory handed back to the operating system, and activations recomputed
instead of kept. What keeps a 2 GB notebook server alive.

For: `release_memory()`, which training calls after it (its objects form cycles), `trim_heap()`, which the
probes call after their forward passes (no cycles: the heap only needs trimming), and
`return_large_blocks_at_once()` and `gradient_checkpointing(model, on)`, what lean memory does
(`TrainConfig.memory="lean"`; `fine_tune` and `range_test` use both).

Not for: the kit's caches (`freezelab.caches` lists and empties them).
"""

from __future__ import annotations

import ctypes
import gc
import sys
from contextlib import contextmanager


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


def supports_gradient_checkpointing(model) -> bool:
    return bool(getattr(model, "supports_gradient_checkpointing", False))


@contextmanager
def gradient_checkpointing(model, on: bool):
    """Gradient checkpointing (activations recomputed in the backward pass: the same numbers in less memory) for
    the code inside the `with` only: the model is handed back as it came."""
    if not on or any(getattr(m, "gradient_checkpointing", False) for m in model.modules()):
        yield
        return
    # transformers renamed it "activation checkpointing" during 5.x; releases before that have only the old name.
    enable = getattr(model, "activation_checkpointing_enable", None)
    # Not reentrant: it needs no input that requires grad, so frozen embeddings and a frozen prefix work too.
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
