"""One experiment: a grid point in, a typed record out (load the checkpoint, fine-tune, probe what it kept).

For: `run_point(point, settings) -> RunRecord`, what every sweep worker runs
for each queued point, and `RunRecord`, the JSON-able record of one run that
result tables are made of (`record.to_dict()`; the shipped result files hold
these dicts). Runs reuse the frozen-prefix cache (`freezelab.prefix_cache`) that
earlier runs in the process built with the same frozen weights; with lean memory
(`TrainConfig.memory`), a run that does not use it empties it first.

Not for: choosing points (`freezelab.grids`), queueing them (`freezelab.sweeps`) or tables (`freezelab.results`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .grids import PLANS, SweepSettings, describe


@dataclass
class RunRecord:
    """What one run of a sweep measured. The point's own keys (plan, lr, train_size, seed and its options) come
    first; `to_dict()` is the JSON stored per run."""

    point: dict
    label: str
    plan_label: str
    pooling: str
    epochs: int
    num_blocks: int
    frozen_blocks: int
    schedule: bool
    dev_metric: float | None
    metric: str
    trainable_params: int
    total_params: int
    train_time_s: float
    examples_per_s: float
    peak_memory_mb: float
    device: str
    precision: str
    steps: int
    cache_prefix: bool
    losses: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    retention: dict | None = None
    sequential: dict | None = None
    interpolation: list | None = None  # [{alpha, dev_metric, sts_spearman}, ...] where the settings ask for walks

    def to_dict(self) -> dict:
        record = asdict(self)
        point = record.pop("point")
        for optional in ("retention", "sequential", "interpolation"):
            if record[optional] is None:
                del record[optional]
        return {**point, **record}


def run_point(point: dict, settings: SweepSettings) -> RunRecord:
    """One grid point: load the checkpoint, fine-tune, probe retention and walk back towards the pre-trained
    weights (when the settings ask for them)."""
    from . import probes, sequential
    from .data import load_task
    from .interpolation import alpha_curve
    from .anatomy import anatomy, frozen_names
    from .prefix_cache import STORE
    from .models import load_model
    from .schedules import Schedule
    from .memory import release_memory
    from .training import fine_tune

    num_labels = 1 if settings.task == "stsb" else 2
    pooling = point.get("pooling", "cls")
    config = settings.config(point)
    if settings.first_task:  # the model arrives trained on the first task, with a fresh head for this one
        model, tokenizer, first_head, first_before, first_dev = sequential.learn_first(settings, point)
    else:
        model, tokenizer = load_model(settings.checkpoint, num_labels=num_labels, seed=point["seed"], pooling=pooling)
    label, make = PLANS[point["plan"]]
    made = make(model, config.epochs)
    how = {"schedule": made} if isinstance(made, Schedule) else {"plan": made}
    # Whole frozen blocks at the bottom are computed once and cached (a schedule changes what is frozen).
    cache = not isinstance(made, Schedule) and made.frozen_prefix(model) > 0
    if not cache and config.memory == "lean":  # this run needs the room more than later runs need the cache
        STORE.clear()
    result = fine_tune(model, tokenizer, settings.task, config.replace(cache_prefix=cache), **how)
    # Blocks that stayed whole and frozen from the start: read off the model as it trained its first phase
    # (a schedule's first plan; an adapter lives inside its block, so that block counts as training).
    a = anatomy(model)
    first = made.phases[0].plan if isinstance(made, Schedule) else None
    frozen = first.frozen_names(a) if first is not None else frozen_names(model)
    frozen_blocks = sum(set(a.names_in(row=f"block {i}")) <= frozen for i in range(a.num_blocks))
    cost = None
    if settings.first_task:
        cost = sequential.what_it_cost(model, tokenizer, first_head, first_before, first_dev, settings)
    retention, walk = None, None
    if settings.probes or settings.alphas:  # against the same checkpoint and head initialisation, untrained
        original = load_model(settings.checkpoint, num_labels=num_labels, seed=point["seed"], pooling=pooling)[0]
        if settings.probes:
            retention = probes.retention(original, model, tokenizer, checkpoint=settings.checkpoint,
                                         sts_dev_size=settings.sts_dev_size)  # MLM probe where there is a head
        if settings.alphas:
            data = load_task(settings.task, train_size=config.train_size, dev_size=config.dev_size, seed=config.seed)
            curve = alpha_curve(original, model, tokenizer, data, settings.alphas, sts_dev_size=settings.sts_dev_size)
            walk = curve[["alpha", "dev_metric", "sts_spearman"]].to_dict(orient="records")
        del original
    record = RunRecord(
        point=dict(point), label=describe(point), plan_label=label, pooling=pooling, epochs=config.epochs,
        num_blocks=a.num_blocks, frozen_blocks=frozen_blocks, schedule=isinstance(made, Schedule),
        dev_metric=result.dev_metric, metric=result.metric_name, trainable_params=result.trainable_params,
        total_params=result.total_params, train_time_s=result.train_time_s, examples_per_s=result.examples_per_s,
        peak_memory_mb=result.peak_memory_mb, device=result.settings["device"],
        precision=result.settings["precision"], steps=result.settings["steps"], cache_prefix=cache,
        losses=[round(h["loss"], 4) for h in result.history if "loss" in h],
        evaluations=[h for h in result.history if result.metric_name in h], retention=retention, sequential=cost,
        interpolation=walk)
    del model
    release_memory()  # two models and an optimizer per run: give the memory back before the next one
    return record
