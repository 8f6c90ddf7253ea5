"""Forgetting in its classic sense: learn task A, then task B, and measure what B cost A.

For: the sequential experiment of notebook 07 (McCloskey & Cohen 1989; Kirkpatrick et al. 2017). A sweep whose
settings name a `first_task` runs each point as: fine-tune the whole model on the first task (A), score A on its
dev split, keep A's head aside; give the model a fresh head for B (the head a run of B from scratch starts
with); train B with the point's plan or method and learning rate; put A's head back and score A again. The
body B left behind is what A is read through: with LoRA that includes B's adapters (unplugging them would
give A back exactly, which is the point of adapters, and is not what is measured here).

A's model is trained once per (checkpoint, task, size, seed, lr) and saved as safetensors in `cache_dir()`,
so every point of a seed starts from the same A and a stopped sweep does not train it again.

Not for: which points to run (`freezelab.grids`), the queue (`freezelab.sweeps`) or tables (`freezelab.results`).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from .anatomy import HEAD, anatomy

CACHE_VARIABLE = "FREEZELAB_CACHE"


def cache_dir() -> Path:
    """Where A's trained weights are kept: $FREEZELAB_CACHE/sequential, else ~/.cache/freezelab/sequential."""
    root = os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "freezelab"
    return Path(root) / "sequential"


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` between processes (POSIX); elsewhere, no lock (two workers may both train A)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def head_state(model) -> dict[str, torch.Tensor]:
    """A copy of the task head's parameters (the anatomy's head row)."""
    rows = {p.name: p.row for p in anatomy(model).params}
    return {n: p.detach().clone() for n, p in model.named_parameters() if rows[n] == HEAD}


def put_head(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@torch.no_grad()
def score(model, tokenizer, split, batch_size: int = 32, max_length: int = 128) -> float:
    """Accuracy of `model` on a labelled split (sentences sorted by length, so batches carry little padding)."""
    from transformers import DataCollatorWithPadding

    from .memory import trim_heap
    from .data import tokenize

    encoded = tokenize(split, tokenizer, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    collate = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    right = 0
    for start in range(0, len(order), batch_size):
        batch = collate([encoded[i] for i in order[start:start + batch_size]])
        labels = batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        right += int((logits.argmax(-1).cpu() == labels).sum())
    model.train(was_training)
    trim_heap()  # the next step trains: start it from a trimmed heap
    return right / len(order)


def learn_first(settings, point: dict) -> tuple:
    """(model trained on the first task with a fresh head for the second, tokenizer, A's head, A's dev accuracy)."""
    from safetensors.torch import load_file, save_file

    from .data import load_task
    from .models import load_model
    from .plans import FreezePlan
    from .training import fine_tune

    seed, pooling = point["seed"], point.get("pooling", "cls")
    config = settings.config(point).replace(lr=settings.first_lr)
    key = json.dumps([settings.checkpoint, settings.first_task, pooling, config.to_dict()], sort_keys=True)
    path = cache_dir() / f"{settings.first_task}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    model, tokenizer = load_model(settings.checkpoint, num_labels=2, seed=seed, pooling=pooling)
    fresh_head = head_state(model)  # what a run of the second task from scratch starts with
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):  # one worker trains A; the others wait and load it
        if path.with_suffix(".json").exists():  # written last: its presence means the weights are whole
            model.load_state_dict(load_file(path.with_suffix(".safetensors")))
        else:
            fine_tune(model, tokenizer, settings.first_task, config, plan=FreezePlan.full_finetune(model))
            partial = path.with_suffix(".partial")
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, partial)
            os.replace(partial, path.with_suffix(".safetensors"))
            path.with_suffix(".json").write_text(json.dumps({"key": key}))
    dev = load_task(settings.first_task, train_size=config.train_size, dev_size=config.dev_size, seed=seed)["dev"]
    before = score(model, tokenizer, dev)  # the same scoring before and after: the difference is B's doing
    first_head = head_state(model)
    put_head(model, fresh_head)
    return model, tokenizer, first_head, before, dev


def what_it_cost(model, tokenizer, first_head, before: float, dev, settings) -> dict:
    """Put A's head back on the body B left and score A again; the record's `sequential` entry."""
    second_head = head_state(model)
    put_head(model, first_head)
    after = score(model, tokenizer, dev)
    put_head(model, second_head)
    return {"first_task": settings.first_task, "first_lr": settings.first_lr, "first_before": before,
            "first_after": after, "cost": before - after}
