"""Short fine-tunes on Hugging Face `Trainer`, returning a result record students can compare.

For: `fine_tune(model, tokenizer, task, plan=... or schedule=..., lr=..., ...)`.
It reads top to bottom in steps: check the settings (a `TrainConfig`) and the
plan, load and tokenize the data, put the model (or, with the frozen-prefix
cache, its trainable top) on the device, build a Trainer whose AdamW sees
every parameter (so a schedule that unfreezes later really trains what it
unfreezes), train, and return a `FineTuneResult` with the history, final dev
metric, time, throughput, memory and the plans used. Interrupting (Ctrl-C /
the kernel's stop button) keeps the history so far.

Not for: the training loop itself (that is `Trainer`'s), data loading
(`freezelab.data`), deciding phases (`freezelab.schedules`), the meaning
of each setting (`freezelab.config`) or showing anything: a live view is a
`TrainerCallback` the caller passes (`freezelab.dashboard`), so this module
imports nothing from the notebook's side.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from datasets import DatasetDict
from scipy.stats import spearmanr
from transformers import DataCollatorWithPadding, PrinterCallback, TrainerCallback, TrainingArguments

from .anatomy import anatomy
from .head_start import fit_head
from .batching import BatchingTrainer, LengthBuckets
from .memory import (gradient_checkpointing, release_memory, return_large_blocks_at_once,
                     supports_gradient_checkpointing)
from .prefix_cache import CachedSuffix, cached_datasets, collate, frozen_prefix_depth
from .config import FIELDS, TrainConfig
from .data import load_task, subset, tokenize
from .models import pick_device
from .methods import Method
from .plans import FreezePlan, NothingTrainableError
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
    training_state_mb: float  # MiB (2**20 bytes): gradients + AdamW's two moments, 12 bytes per trainable fp32 parameter
    phases: list[dict]
    settings: dict
    interrupted: bool = False
    plans: list[dict] = field(default_factory=list)

    def losses(self) -> pd.DataFrame:
        return pd.DataFrame([h for h in self.history if "loss" in h], columns=["step", "epoch", "loss"])

    def evaluations(self) -> pd.DataFrame:
        return pd.DataFrame([h for h in self.history if self.metric_name in h], columns=["step", "epoch", self.metric_name])

    def config(self) -> TrainConfig:
        """The settings this run was made with (train_size and dev_size as the counts it really used)."""
        return TrainConfig.from_dict({k: v for k, v in self.settings.items() if k in FIELDS})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "FineTuneResult":
        return cls(**json.loads(text))

    def __str__(self) -> str:
        metric = "n/a" if self.dev_metric is None else f"{self.dev_metric:.4f}"
        return (f"dev {self.metric_name} {metric} · {self.trainable_params:,} of {self.total_params:,} parameters "
                f"trained · {self.train_time_s:.1f} s · {self.examples_per_s:.1f} examples/s · "
                f"gradients + AdamW state {self.training_state_mb:,.1f} MiB · "
                f"peak memory {self.peak_memory_mb:,.0f} MB ({self.memory_source})"
                + (" · INTERRUPTED" if self.interrupted else ""))




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


# The dev metric each task reports, as GLUE scores it: CoLA's classes are unbalanced (70% acceptable), so GLUE
# scores it by Matthews correlation, which is 0 for any constant answer; other classification tasks by accuracy.
TASK_METRICS = {"cola": "matthews", "stsb": "spearman"}


def metric_of(task_name: str, regression: bool) -> str:
    return "spearman" if regression else TASK_METRICS.get(task_name, "accuracy")


def matthews(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation of two binary labelings; 0 where either is constant (as scikit-learn returns)."""
    tp, tn = np.sum((predicted == 1) & (labels == 1)), np.sum((predicted == 0) & (labels == 0))
    fp, fn = np.sum((predicted == 1) & (labels == 0)), np.sum((predicted == 0) & (labels == 1))
    denominator = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def _metrics(regression: bool):
    def compute(prediction):
        logits, labels = prediction.predictions, prediction.label_ids
        if regression:
            return {"spearman": float(spearmanr(np.ravel(logits), labels).statistic)}
        predicted = np.argmax(logits, axis=-1)
        scores = {"accuracy": float((predicted == labels).mean())}
        if logits.shape[-1] == 2:
            scores["matthews"] = matthews(predicted, labels)
        return scores

    return compute


def fine_tune(model, tokenizer, task="sst2", config: TrainConfig | None = None, *, plan: Method | None = None,
              schedule: Schedule | None = None, callbacks: Sequence[TrainerCallback] = (),
              output_dir: str | None = None, **settings) -> FineTuneResult:
    """Fine-tune `model` on `task` with a freezing plan (or a schedule) and return a `FineTuneResult`.

    task: "sst2", "subj", "cola", "stsb", "word-order", or a DatasetDict from `load_task`.
    config: a `TrainConfig`; `settings` are its fields given one by one (`lr=1e-4, epochs=3`), and change
        `config` where both are given. Every field, and what it means: `help(freezelab.TrainConfig)`.
    plan: any `freezelab.methods.Method`, applied before training: a `FreezePlan` (`FreezePlan.bitfit(model)`
        among them), a `LoRA`, an `IA3` (default: the model's current state).
    schedule: phases applied during training (instead of plan).
    callbacks: Hugging Face `TrainerCallback`s that watch the run: `fl.Dashboard()` draws the loss and the dev
        metric live in a notebook (log lines elsewhere). They read the run's title from `args.run_name` and its
        metric from `args.metric_for_best_model`. Default: none; the run is silent.
    output_dir: a folder for Trainer's files; default: a scratch folder, removed afterwards.

    Every argument is checked before the model changes; interrupting keeps the history so far.
    """
    if "dashboard" in settings:
        raise TypeError("fine_tune no longer takes dashboard=...: pass the live view as a callback, "
                        "callbacks=[fl.Dashboard()] (mode='log' for plain lines), or none for silence")
    device = pick_device()
    config = (config or TrainConfig()).replace(**settings).on(device)  # "auto" settings made concrete
    config.check_model(model)
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, TrainerCallback):
            raise TypeError(f"callbacks must be transformers.TrainerCallback instances (fl.Dashboard() is one), "
                            f"got {type(callback).__name__}")
    schedule = _schedule(model, plan, schedule)
    task_name, data, regression = _data(model, task, config)
    if config.head_start == "probe" and regression:
        raise ValueError(f"head_start='probe' fits a classification head; {task_name} is a regression task: "
                         "use head_start='random'")
    train, dev = (tokenize(data[s], tokenizer, config.max_length) for s in ("train", "dev"))
    dev = _shortest_first(dev)

    model.to(device)
    if config.head_start == "probe":  # LP-FT: the head fitted on the untouched body's features, then the plan
        fit_head(model, tokenizer, data["train"]["text"], data["train"]["label"], max_length=config.max_length)
    with torch.random.fork_rng(devices=[]):  # added weights start from the run's seed, not the global state
        torch.manual_seed(config.seed)
        schedule.phases[0].plan.apply(model)
    trained, train, dev, collator, cache_info = _inputs(model, tokenizer, schedule, train, dev, config)
    trainer, schedule_callback = _trainer(model, trained, train, dev, collator, schedule, config, regression,
                                          task_name, callbacks, output_dir, device)
    lean = config.memory == "lean"
    if lean:
        return_large_blocks_at_once()
    checkpointing = config.gradient_checkpointing or (lean and supports_gradient_checkpointing(model)
                                                      and _trains_a_block(model, schedule))
    with gradient_checkpointing(model, checkpointing):
        run = _train(trainer, model, config, metric_of(task_name, regression), device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = FineTuneResult(
        task=task_name, metric_name=run["metric_name"], dev_metric=run["dev_metric"], history=run["history"],
        wall_time_s=run["wall_time_s"], train_time_s=run["train_time_s"],
        examples_per_s=min(run["examples"], len(train) * config.epochs) / run["train_time_s"],
        peak_memory_mb=run["peak_mb"], memory_source=run["memory_source"],
        trainable_params=trainable,
        total_params=sum(p.numel() for p in model.parameters()),
        training_state_mb=trainable * 12 / 2**20,
        phases=schedule_callback.changes, plans=[p.plan.to_dict() for p in schedule.phases],
        settings={**config.to_dict(), "gradient_checkpointing": checkpointing, "train_size": len(train),
                  "dev_size": len(dev), "device": device,
                  "steps": run["steps"], **cache_info},
        interrupted=run["interrupted"],
    )
    scratch = trainer.args.output_dir if output_dir is None else None
    del trainer, trained, train, dev, schedule_callback
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    release_memory()  # the optimizer's state (two moments per trained weight) goes now, not at some later gc
    return result


# --- the steps of fine_tune, in order ------------------------------------------------------

def _schedule(model, plan: Method | None, schedule: Schedule | None) -> Schedule:
    """The phases to run: the schedule, or the plan (default: the model's current state) as one phase."""
    if plan is not None and schedule is not None:
        raise ValueError("give a plan or a schedule, not both")
    schedule = schedule or Schedule.static(plan or FreezePlan.from_model(model))
    try:
        schedule.validate(model)
    except NothingTrainableError:
        raise NothingTrainableError("the plan leaves nothing trainable: training would not change the model; "
                                    "unfreeze at least the head (e.g. FreezePlan.head_only(model))") from None
    return schedule


def _data(model, task, config: TrainConfig) -> tuple[str, DatasetDict, bool]:
    """(task name, the train/dev subsets, whether the task is a regression), checked against the model's outputs."""
    if isinstance(task, str):
        data = load_task(task, train_size=config.train_size, dev_size=config.dev_size, seed=config.seed)
    else:
        data = subset(DatasetDict(dict(task)), config.train_size, config.dev_size, config.seed)
    name = task if isinstance(task, str) else "custom"
    regression = data["train"].features["label"].dtype.startswith("float")
    wanted = 1 if regression else data["train"].features["label"].num_classes
    if model.config.num_labels != wanted:
        raise ValueError(f"the model has {model.config.num_labels} output(s) but {name} needs {wanted}: "
                         f"load it with load_model(..., num_labels={wanted})")
    return name, data, regression


def _shortest_first(dev):
    """The dev set in order of length: evaluation batches then pad little (a score does not depend on order)."""
    lengths = [len(ids) for ids in dev["input_ids"]]
    return dev.select(np.argsort(lengths, kind="stable"))


def _inputs(model, tokenizer, schedule: Schedule, train, dev, config: TrainConfig):
    """(module Trainer trains, train data, dev data, collator, cache facts): the model itself on token ids, or,
    with `cache_prefix`, its trainable top on the cached output of the frozen bottom."""
    if not config.cache_prefix:
        return model, train, dev, DataCollatorWithPadding(tokenizer), {}
    if len(schedule.phases) > 1:
        raise ValueError("cache_prefix needs a fixed plan; a schedule changes what is frozen")
    k = frozen_prefix_depth(model, schedule.phases[0].plan)
    train, dev, seconds = cached_datasets(model, train, dev, k)
    return CachedSuffix(model, k), train, dev, collate, {"cache_depth": k, "cache_build_s": seconds}


def _trainer(model, trained, train, dev, collator, schedule: Schedule, config: TrainConfig, regression: bool,
             task_name: str, watchers: list, output_dir: str | None, device: str):
    """Trainer with AdamW over every parameter, warm-up then linear decay (scaled by the schedule's lr changes),
    the schedule's callback and the caller's callbacks (`watchers`), which find the run's title in
    `args.run_name` and its metric in `args.metric_for_best_model`."""
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = round(config.warmup * total_steps)
    schedule_callback = ScheduleCallback(schedule, model, steps_per_epoch, greater_is_better=True)
    optimizer = _optimizer(model, config.lr, config.weight_decay, config.layer_decay)

    def lr_factor(step: int) -> float:
        ramp = step / warmup_steps if step < warmup_steps else \
            max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        return ramp * schedule_callback.multiplier

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    args = TrainingArguments(
        output_dir=output_dir or tempfile.mkdtemp(prefix="freezelab-"),  # Trainer wants a folder
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        num_train_epochs=config.epochs, eval_strategy="steps" if config.evals_per_epoch else "no",
        eval_steps=max(1, steps_per_epoch // max(1, config.evals_per_epoch)), logging_steps=1, save_strategy="no",
        report_to="none", run_name=f"{task_name}: {schedule.name or 'custom plan'}, lr {config.lr:g}",
        metric_for_best_model=metric_of(task_name, regression), seed=config.seed, data_seed=config.seed, max_grad_norm=config.max_grad_norm,
        use_cpu=device == "cpu", bf16=config.precision == "bf16", fp16=config.precision == "fp16", disable_tqdm=True,
        dataloader_num_workers=0, label_names=["labels"], remove_unused_columns=not config.cache_prefix,
    )
    callbacks = [schedule_callback, *watchers]
    buckets = None
    if config.group_by_length:
        lengths = [len(row["input_ids"]) for row in train] if isinstance(train, list) else \
            [len(ids) for ids in train["input_ids"]]
        buckets = LengthBuckets(lengths, config.batch_size, config.seed)
    trainer = BatchingTrainer(model=trained, args=args, train_dataset=train, eval_dataset=dev, data_collator=collator,
                       compute_metrics=_metrics(regression), optimizers=(optimizer, scheduler), callbacks=callbacks,
                       length_buckets=buckets, micro_batch_size=config.micro_batch_size)
    trainer.remove_callback(PrinterCallback)  # no raw log dicts: a caller's callback reports, or nothing
    # Hugging Face classifiers take **kwargs, so Trainer would hand them the item count of a whole step and
    # expect a loss summed over it; their loss is a mean per batch. Treat them as any model.
    trainer.model_accepts_loss_kwargs = False
    return trainer, schedule_callback


def _trains_a_block(model, schedule: Schedule) -> bool:
    """Whether a weight inside a transformer block trains (adapters count): where checkpointing saves
    memory. A schedule's later phases may unfreeze blocks, so any schedule of several phases counts."""
    if len(schedule.phases) > 1:
        return True
    return any(p.row.startswith("block ") and model.get_parameter(p.name).requires_grad for p in anatomy(model).params)


def _train(trainer, model, config: TrainConfig, metric_name: str, device: str) -> dict:
    """Train (an interrupt keeps what was measured), score the final model on dev, and read the history."""
    hooks = _frozen_eval_hooks(model) if config.frozen_eval_mode else []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True  # the model stays usable
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
    if device == "cuda":
        peak, source = torch.cuda.max_memory_allocated() / 2**20, "CUDA allocated"
    else:
        peak, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process RSS peak"
    steps = trainer.state.global_step
    examples = steps * config.batch_size if interrupted else len(trainer.train_dataset) * config.epochs
    return {"metric_name": metric_name, "dev_metric": dev_metric, "history": history, "interrupted": interrupted,
            "train_time_s": train_time, "wall_time_s": time.perf_counter() - started, "peak_mb": peak,
            "memory_source": source, "steps": steps, "examples": examples}
