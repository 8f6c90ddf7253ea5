"""Short fine-tunes on Hugging Face `Trainer`, returning a result record students can compare.

For: `fine_tune(model, tokenizer, task, plan=... or schedule=..., lr, epochs,
train_size, seed)`: checks its arguments before any training, builds the
optimizer over every parameter (so a schedule that unfreezes later really
trains what it unfreezes), optional layer-wise lr decay, optional eval mode
for frozen blocks, a live dashboard, and a `FineTuneResult` with the history,
final dev metric, time, throughput, memory and the plans used. Interrupting
(Ctrl-C / the kernel's stop button) keeps the history so far.

Not for: the training loop itself (that is `Trainer`'s), data loading
(`freezelab.data`) or deciding phases (`freezelab.schedules`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import resource
import sys
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from datasets import DatasetDict
from scipy.stats import spearmanr
from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

from .anatomy import anatomy
from .cache import CachedSuffix, cached_datasets, collate, frozen_prefix_depth
from .dashboard import Dashboard
from .data import subset, load_task, tokenize
from .plans import FreezePlan
from .schedules import Schedule, ScheduleCallback, layer_distance


@dataclass
class FineTuneResult:
    """Everything one fine-tune measured. `losses()` and `evaluations()` give the history as tables."""

    task: str
    metric_name: str
    dev_metric: float | None
    history: list[dict]
    wall_time_s: float
    train_time_s: float
    examples_per_s: float
    peak_memory_mb: float
    memory_source: str
    trainable_params: int
    total_params: int
    training_state_mb: float  # gradients + AdamW's two moments: 12 bytes per trainable fp32 parameter
    phases: list[dict]
    settings: dict
    interrupted: bool = False
    plans: list[dict] = field(default_factory=list)

    def losses(self) -> pd.DataFrame:
        return pd.DataFrame([h for h in self.history if "loss" in h], columns=["step", "epoch", "loss"])

    def evaluations(self) -> pd.DataFrame:
        return pd.DataFrame([h for h in self.history if self.metric_name in h], columns=["step", "epoch", self.metric_name])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "FineTuneResult":
        return cls(**json.loads(text))

    def __str__(self) -> str:
        metric = "n/a" if self.dev_metric is None else f"{self.dev_metric:.4f}"
        return (f"dev {self.metric_name} {metric} · {self.trainable_params:,} of {self.total_params:,} parameters "
                f"trained · {self.train_time_s:.1f} s · {self.examples_per_s:.1f} examples/s · "
                f"gradients + AdamW state {self.training_state_mb:,.1f} MB · "
                f"peak memory {self.peak_memory_mb:,.0f} MB ({self.memory_source})"
                + (" · INTERRUPTED" if self.interrupted else ""))


def pick_device() -> tuple[str, str]:
    """(device, precision): CUDA with bf16 where supported (else fp16), Apple MPS, or CPU in fp32."""
    if torch.cuda.is_available():
        return "cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps", "fp32"
    return "cpu", "fp32"


DASHBOARDS = ("auto", "widget", "log", "none")


def _check_run(batch_size, max_length, evals_per_epoch, weight_decay, max_grad_norm, dashboard, model):
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    longest = getattr(model.config, "max_position_embeddings", None) or 512
    if not whole(max_length) or not 2 <= max_length <= longest:  # [CLS] and [SEP] need two positions
        raise ValueError(f"max_length must be a whole number from 2 to {longest} (this model's positions), "
                         f"got {max_length!r}")
    if not whole(evals_per_epoch) or evals_per_epoch < 0:
        raise ValueError(f"evals_per_epoch must be a whole number >= 0 (0: only the final score), got {evals_per_epoch!r}")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not 0 <= weight_decay < 1:
        raise ValueError(f"weight_decay must be a number from 0 to below 1, got {weight_decay!r}")
    if isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float)) or not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be a number > 0, got {max_grad_norm!r}")
    if dashboard not in DASHBOARDS:
        raise ValueError(f"dashboard must be one of {', '.join(map(repr, DASHBOARDS))}, got {dashboard!r}")


def _check(lr, epochs, warmup, layer_decay):
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup is a fraction of the training steps, from 0 to below 1, got {warmup!r}")
    if layer_decay is not None and (isinstance(layer_decay, bool) or not isinstance(layer_decay, (int, float))
                                    or not 0 < layer_decay <= 1):
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}")


def _optimizer(model, lr: float, weight_decay: float, layer_decay: float | None):
    """AdamW over *every* parameter, grouped by layer-wise lr and by weight decay.

    Frozen parameters get no gradient, and AdamW skips a parameter whose grad
    is None, so including them costs nothing until a schedule unfreezes them;
    then they train at once, with their group's lr.
    """
    a = anatomy(model)
    groups: dict[tuple, dict] = {}
    for p_info, (name, p) in zip(a.params, model.named_parameters()):
        scale = layer_decay ** layer_distance(a, p_info.row) if layer_decay else 1.0
        no_decay = p.ndim < 2  # biases and LayerNorm weights
        group = groups.setdefault((scale, no_decay), {"params": [], "lr": lr * scale,
                                                       "weight_decay": 0.0 if no_decay else weight_decay})
        group["params"].append(p)
    # Fused AdamW, as Trainer's own default (adamw_torch_fused): one kernel per step instead of one per tensor.
    fused = next(model.parameters()).device.type in {"cpu", "cuda"}
    return torch.optim.AdamW(list(groups.values()), lr=lr, fused=fused or None)


def _frozen_eval_hooks(model):
    """Forward pre-hooks that put fully frozen blocks and embeddings in eval mode (no dropout) each forward.

    Needed because Trainer calls model.train() before every step.
    """
    a = anatomy(model)
    handles = []
    for row in a.rows:
        if row != "embeddings" and not row.startswith("block "):
            continue
        names = a.names_in(row=row)
        prefix = os.path.commonprefix(names).rsplit(".", 1)[0]
        module = model.get_submodule(prefix)

        def hook(m, args):
            if not any(p.requires_grad for p in m.parameters()):
                m.eval()

        handles.append(module.register_forward_pre_hook(hook))
    return handles


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS.

    Trainer and its callbacks refer to each other, so the optimizer state lives until the garbage collector
    runs; and glibc keeps freed pages unless asked. Without this, a notebook that trains several models in a
    row creeps towards Binder's 2 GB.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc (musl, ...): nothing to trim
            pass


def _metrics(regression: bool):
    def compute(prediction):
        logits, labels = prediction.predictions, prediction.label_ids
        if regression:
            return {"spearman": float(spearmanr(np.ravel(logits), labels).statistic)}
        return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}

    return compute


def fine_tune(model, tokenizer, task="sst2", *, plan: FreezePlan | None = None, schedule: Schedule | None = None,
              lr: float = 2e-5, epochs: int = 2, train_size: int | None = None, dev_size: int | None = None,
              seed: int = 0, batch_size: int = 32, max_length: int = 64, warmup: float = 0.06,
              weight_decay: float = 0.01, max_grad_norm: float = 1.0, layer_decay: float | None = None,
              evals_per_epoch: int = 2, frozen_eval_mode: bool = False, cache_prefix: bool = False,
              dashboard: str = "auto", output_dir: str | None = None) -> FineTuneResult:
    """Fine-tune `model` on `task` with a freezing plan (or a schedule) and return a `FineTuneResult`.

    task: "sst2", "subj", "cola", "stsb", or a DatasetDict from `load_task`.
    plan: applied before training (default: the model's current state).
    schedule: phases applied during training (instead of plan).
    warmup: fraction of the steps with a linear lr warm-up (then linear decay to 0).
    layer_decay: per-row lr = lr x layer_decay ** distance from the top (head 0, top block 1, ...).
    evals_per_epoch: dev evaluations during training (0: none; the final score is always computed).
    frozen_eval_mode: run frozen blocks without dropout (Trainer otherwise keeps dropout on everywhere).
    cache_prefix: compute the frozen embeddings + bottom blocks once per example and train the rest from
        the cache (`freezelab.cache`; BERT models, a fixed plan whose frozen part is a bottom prefix).
    dashboard: "auto" (live plots in a notebook, log lines elsewhere), "widget", "log" or "none".
    """
    _check(lr, epochs, warmup, layer_decay)
    _check_run(batch_size, max_length, evals_per_epoch, weight_decay, max_grad_norm, dashboard, model)
    if plan is not None and schedule is not None:
        raise ValueError("give a plan or a schedule, not both")
    schedule = schedule or Schedule.static(plan or FreezePlan.from_model(model))
    try:
        schedule.validate(model)
    except ValueError as error:
        if "nothing trainable" in str(error):
            raise ValueError("the plan leaves nothing trainable: training would not change the model; "
                             "unfreeze at least the head (e.g. FreezePlan.head_only(model))") from None
        raise

    data = load_task(task, train_size=train_size, dev_size=dev_size, seed=seed) if isinstance(task, str) \
        else subset(DatasetDict(dict(task)), train_size, dev_size, seed)
    task_name = task if isinstance(task, str) else "custom"
    regression = data["train"].features["label"].dtype.startswith("float")
    wanted = 1 if regression else data["train"].features["label"].num_classes
    if model.config.num_labels != wanted:
        raise ValueError(f"the model has {model.config.num_labels} output(s) but {task_name} needs {wanted}: "
                         f"load it with load_model(..., num_labels={wanted})")
    metric_name = "spearman" if regression else "accuracy"
    train, dev = (tokenize(data[s], tokenizer, max_length) for s in ("train", "dev"))

    device, precision = pick_device()
    model.to(device)
    schedule.phases[0].plan.apply(model)
    trained, collator, cache_info = model, DataCollatorWithPadding(tokenizer), {}
    if cache_prefix:
        if len(schedule.phases) > 1:
            raise ValueError("cache_prefix needs a fixed plan; a schedule changes what is frozen")
        k = frozen_prefix_depth(model, schedule.phases[0].plan)
        train, dev, seconds = cached_datasets(model, train, dev, k)
        trained, collator = CachedSuffix(model, k), collate
        cache_info = {"cache_depth": k, "cache_build_s": seconds}
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = steps_per_epoch * epochs
    warmup_steps = round(warmup * total_steps)
    schedule_callback = ScheduleCallback(schedule, model, steps_per_epoch, greater_is_better=True)
    optimizer = _optimizer(model, lr, weight_decay, layer_decay)

    def lr_factor(step: int) -> float:
        ramp = step / warmup_steps if step < warmup_steps else \
            max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        return ramp * schedule_callback.multiplier

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scratch = None if output_dir else tempfile.mkdtemp(prefix="freezelab-")  # Trainer wants a folder; removed below
    args = TrainingArguments(
        output_dir=output_dir or scratch, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size, num_train_epochs=epochs, eval_strategy="steps" if evals_per_epoch else "no",
        eval_steps=max(1, steps_per_epoch // max(1, evals_per_epoch)), logging_steps=1, save_strategy="no",
        report_to="none", seed=seed, data_seed=seed, max_grad_norm=max_grad_norm, use_cpu=device == "cpu",
        bf16=precision == "bf16", fp16=precision == "fp16", disable_tqdm=True, dataloader_num_workers=0,
        label_names=["labels"], remove_unused_columns=not cache_prefix,
    )
    callbacks = [schedule_callback]
    if dashboard != "none":
        title = f"{task_name}: {schedule.name or 'custom plan'}, lr {lr:g}"
        callbacks.append(Dashboard(title, metric_name, mode=dashboard))
    trainer = Trainer(model=trained, args=args, train_dataset=train, eval_dataset=dev,
                      data_collator=collator, compute_metrics=_metrics(regression),
                      optimizers=(optimizer, scheduler), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # the dashboard reports instead of raw log dicts
    hooks = _frozen_eval_hooks(model) if frozen_eval_mode else []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    started = time.perf_counter()
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True  # keep what was measured; the model stays usable
        print("interrupted: returning the history so far")
    train_time = time.perf_counter() - started
    for handle in hooks:
        handle.remove()
    history = []
    for entry in trainer.state.log_history:
        if "loss" in entry:
            history.append({"step": entry["step"], "epoch": entry.get("epoch"), "loss": entry["loss"]})
        elif f"eval_{metric_name}" in entry:
            history.append({"step": entry["step"], "epoch": entry.get("epoch"), metric_name: entry[f"eval_{metric_name}"]})
    dev_metric = None
    if not interrupted:  # the final model's score, whether or not the last step was an evaluation step
        dev_metric = float(trainer.evaluate()[f"eval_{metric_name}"])
    model.eval()
    wall = time.perf_counter() - started
    if device == "cuda":
        peak, source = torch.cuda.max_memory_allocated() / 2**20, "CUDA allocated"
    else:
        peak, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process RSS peak"
    examples = trainer.state.global_step * batch_size if interrupted else len(train) * epochs
    steps = trainer.state.global_step
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    phases = schedule_callback.changes
    train_count, dev_count = len(train), len(dev)
    del trainer, optimizer, scheduler, schedule_callback, callbacks, trained, train, dev
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    release_memory()  # the optimizer's state (two moments per trained weight) goes now, not at some later gc
    return FineTuneResult(
        task=task_name, metric_name=metric_name, dev_metric=dev_metric, history=history, wall_time_s=wall,
        train_time_s=train_time, examples_per_s=min(examples, train_count * epochs) / train_time,
        peak_memory_mb=peak, memory_source=source,
        trainable_params=trainable, total_params=sum(p.numel() for p in model.parameters()),
        training_state_mb=trainable * 12 / 2**20, phases=phases,
        plans=[p.plan.to_dict() for p in schedule.phases],
        settings={"lr": lr, "epochs": epochs, "train_size": train_count, "dev_size": dev_count, "seed": seed,
                  "batch_size": batch_size, "max_length": max_length, "warmup": warmup, "layer_decay": layer_decay,
                  "frozen_eval_mode": frozen_eval_mode, "device": device, "precision": precision,
                  "steps": steps, "cache_prefix": cache_prefix, **cache_info},
        interrupted=interrupted,
    )
