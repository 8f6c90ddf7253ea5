"""What a sweep runs: named set-ups, grids of points, the settings every run shares, and the course's presets.

For: `grid(plans, lrs, train_sizes, seeds, **options)` (every combination, as
the points a sweep queues, each checked the way `fine_tune` checks its
settings, so a bad value fails when the grid is made, not hours later in a
worker), `describe(point)` (the one place a run's label is made), the
`SweepSettings` every run of a sweep shares, and the course's precomputed
grids (`COURSE_SWEEPS`: the frontier of notebooks 04-05, the data-size grid of 06).

A point is a dict: `plan` (a key of PLANS: layer plans, BitFit, LayerNorm-only,
"lora16-attn" for LoRA of rank 16 on the attention matrices), `lr`, `train_size`, `seed`, and
optionally `epochs`, `warmup`, `pooling` ("cls" or "mean"), `layer_decay` and
`head_start` ("probe": the head fitted as a linear probe first, LP-FT) to
override the sweep's settings for that point.

Not for: running a point (`freezelab.experiment`), queueing points on a
database (`freezelab.sweeps`) or reading results (`freezelab.results`).
Imports neither torch nor Optuna.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Callable

from .config import FIELDS, TrainConfig
from .methods import families
from .plans import BITFIT, BOTTOM_HALF, FEATURE_EXTRACTOR, FULL, HEAD_ONLY, LAYERNORM_ONLY, FreezePlan, train_top_name


def _gradual(model, epochs: int):
    """The head first, then one more block from the top at equal intervals: the last block joins before the end."""
    from .anatomy import anatomy
    from .schedules import Schedule

    return Schedule.gradual_unfreezing(model, every_epochs=epochs / (anatomy(model).num_blocks + 1))


# key -> (label, maker(model, epochs) -> FreezePlan or Schedule). Labels are the plans' own names.
PLANS: dict[str, tuple[str, Callable]] = {
    "head": (HEAD_ONLY, lambda m, e: FreezePlan.head_only(m)),
    "feature": (FEATURE_EXTRACTOR, lambda m, e: FreezePlan.feature_extractor(m)),
    "top1": (train_top_name(1), lambda m, e: FreezePlan.train_top(m, 1)),
    "top2": (train_top_name(2), lambda m, e: FreezePlan.train_top(m, 2)),
    "top4": (train_top_name(4), lambda m, e: FreezePlan.train_top(m, 4)),
    "half": (BOTTOM_HALF, lambda m, e: FreezePlan.bottom_half(m)),
    "full": (FULL, lambda m, e: FreezePlan.full_finetune(m)),
    "gradual": ("gradual unfreezing", _gradual),
    "bitfit": (BITFIT, lambda m, e: FreezePlan.bitfit(m)),
    "lnorm": (LAYERNORM_ONLY, lambda m, e: FreezePlan.layernorm_only(m)),
}
# Each registered method family's own keys ("lora16-attn", "ia3", ...: `freezelab.methods`).
PLANS.update({key: (method.label, lambda m, e, method=method: method)
              for family in families() for key, method in family.grid.items()})
OPTIONS = ("epochs", "warmup", "pooling", "layer_decay", "head_start")  # what a point may set for itself


def option(point: dict, name: str):
    """The value a point set for `name`, or None where it set none (a row of a results table holds NaN there)."""
    value = point.get(name)
    return None if value is None or value != value else value
POOLINGS = ("cls", "mean")


# What every run of a sweep trains with unless the sweep says otherwise: `fine_tune`'s defaults, but frozen
# blocks scored without dropout (so runs with and without the frozen-prefix cache compute the same function)
# and no evaluations during training (a sweep reads the final score).
SWEEP_TRAINING = TrainConfig(frozen_eval_mode=True, evals_per_epoch=0)
# Set per run, from the point (lr, size, seed) or by the run itself (the cache); memory changes no number.
_PER_RUN = ("lr", "train_size", "seed", "cache_prefix", "memory")


@dataclass(frozen=True, init=False, eq=False)
class SweepSettings:
    """What every run of a sweep shares (stored with the study, so all workers agree).

    training: the runs' `TrainConfig` before each point's lr, train size, seed and options; `TrainConfig`'s
        fields may also be given one by one (`SweepSettings(epochs=1, dev_size=16)`) and read back the same way
        (`settings.epochs`). Default: `SWEEP_TRAINING`.
    probes: measure retention after each run; sts_dev_size: STS-B pairs the retention probe reads;
    first_task: learn this task first (the whole model, at first_lr), keep its head, then run the point on `task`,
    and record what it cost the first task (`freezelab.sequential`).
    alphas: walk each fine-tuned model back towards the pre-trained weights (WiSE-FT, `fl.interpolate`; the
    fine-tuned head kept) and record the task's dev score and STS-B at each alpha (1 = the run itself).
    Two settings are equal when their runs are interchangeable: `memory` (lean or fast) is not compared or stored.
    `from_dict` reads stored settings; a setting added since they were stored takes the value they were made with.
    """

    task: str
    checkpoint: str
    training: TrainConfig
    probes: bool
    sts_dev_size: int | None
    first_task: str | None
    first_lr: float
    alphas: tuple[float, ...] | None

    def __init__(self, task: str = "sst2", checkpoint: str = "minilm-l6", training: TrainConfig | None = None,
                 probes: bool = True, sts_dev_size: int | None = None, first_task: str | None = None,
                 first_lr: float = 1e-4, alphas=None, **train_settings):
        per_run = [k for k in train_settings if k in _PER_RUN and k != "memory"]
        if per_run:
            raise TypeError(f"{per_run[0]} is set per run (by each point, or by the run), not for a whole sweep")
        training = (training or SWEEP_TRAINING).replace(**train_settings)  # unknown names: TypeError, listing them
        for name, value in (("task", task), ("checkpoint", checkpoint), ("training", training), ("probes", probes),
                            ("sts_dev_size", sts_dev_size), ("first_task", first_task), ("first_lr", first_lr),
                            ("alphas", None if alphas is None else tuple(float(a) for a in alphas))):
            object.__setattr__(self, name, value)
        if self.alphas is not None and (not self.alphas or not all(0.0 <= a <= 1.0 for a in self.alphas)
                                        or self.task == "stsb"):
            raise ValueError(f"alphas must be a non-empty list of numbers from 0 to 1, on a classification task; "
                             f"got {alphas!r} on {task!r}")
        TrainConfig(lr=self.first_lr)
        if self.first_task is not None and (self.first_task == self.task or self.task == "stsb" or
                                            self.first_task == "stsb"):
            raise ValueError(f"first_task must be a classification task other than the sweep's task ({self.task!r}), "
                             f"got {self.first_task!r}")

    def __getattr__(self, name: str):
        """A training setting read as the sweep's own: `settings.epochs` is `settings.training.epochs`."""
        training = self.__dict__.get("training")
        if training is not None and name in FIELDS:
            return getattr(training, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes) -> "SweepSettings":
        """A copy with some settings changed, sweep or training ones (checked like new settings)."""
        own = {k: changes.pop(k) for k in list(changes) if k in _OWN}
        current = {k: getattr(self, k) for k in _OWN}
        return SweepSettings(**{**current, **own}, **changes)

    def to_dict(self) -> dict:
        """Flat and JSON-ready, as a study stores it: the sweep's settings, then every shared training setting."""
        training = {k: v for k, v in self.training.to_dict().items() if k not in _PER_RUN}
        walks = {} if self.alphas is None else {"alphas": list(self.alphas)}  # absent from settings stored before
        return {"task": self.task, "checkpoint": self.checkpoint, "probes": self.probes,
                "sts_dev_size": self.sts_dev_size, "first_task": self.first_task, "first_lr": self.first_lr,
                **walks, **training}

    def __eq__(self, other) -> bool:
        return isinstance(other, SweepSettings) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.to_dict().items() if v != _DEFAULTS.get(k)}
        return f"SweepSettings({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @classmethod
    def from_dict(cls, stored: dict) -> "SweepSettings":
        """Settings as a study or an exported file stores them. Sweeps made before batches could be grouped by
        length or split into micro-batches (the course's shipped files among them) did neither."""
        return cls(**{"group_by_length": False, "micro_batch_size": None, "first_task": None, **stored})

    def config(self, point: dict | None = None) -> TrainConfig:
        """The `TrainConfig` of one point's run: these settings, then the point's lr, size, seed and options."""
        if point is None:
            return self.training
        own = {k: option(point, k) for k in ("epochs", "warmup", "layer_decay", "head_start")
               if option(point, k) is not None}
        return self.training.replace(lr=point["lr"], train_size=point["train_size"], seed=point["seed"], **own)


_DEFAULTS = SweepSettings().to_dict()
_OWN = ("task", "checkpoint", "training", "probes", "sts_dev_size", "first_task", "first_lr", "alphas")


def grid(plans, lrs, train_sizes, seeds, **options) -> list[dict]:
    """Every combination, as the parameter dicts that become trials; `options` (see OPTIONS) go into each."""
    unknown = [p for p in plans if p not in PLANS]
    if unknown:
        raise ValueError(f"unknown plan {unknown[0]!r}; plans: {', '.join(PLANS)}")
    wrong = [o for o in options if o not in OPTIONS]
    if wrong:
        raise ValueError(f"unknown option {wrong[0]!r}; a point may set: {', '.join(OPTIONS)}")
    if "pooling" in options and options["pooling"] not in POOLINGS:
        raise ValueError(f"pooling must be 'cls' or 'mean', got {options['pooling']!r}")
    trained = {k: v for k, v in options.items() if k != "pooling"}
    for name, values, field in (("lr", lrs, "lr"), ("train size", train_sizes, "train_size"), ("seed", seeds, "seed")):
        for value in values:  # caught here, not hours later inside a worker: fine_tune's own checks
            try:
                if value is None:
                    raise ValueError(f"{field} must be a whole number >= 1, got None")
                TrainConfig(**{field: value})
            except ValueError as error:
                what = str(error).split(" must be ", 1)[1].replace(", or None (the whole split)", "")
                raise ValueError(f"every {name} must be {what}") from None
    TrainConfig(**trained)
    return [{"plan": p, "lr": float(lr), "train_size": int(n), "seed": int(s), **options}
            for p, lr, n, s in itertools.product(plans, lrs, train_sizes, seeds)]


def describe(point: dict, short: bool = False) -> str:
    """A point's set-up (without seed), the one place labels are made.

    'full fine-tune, lr 0.001, no warm-up'; short=True (labels on a plot's points): 'full · 1e-3 · no warm-up'.
    """
    mean = point.get("pooling") == "mean"
    decay = option(point, "layer_decay")
    lp_ft = option(point, "head_start") == "probe"
    if short:
        text = point["plan"] + (" (mean)" if mean else "") + f" · {point['lr']:.0e}".replace("e-0", "e-")
        text += " · layer decay" if decay else ""
        text += " · LP-FT" if lp_ft else ""
    else:
        text = PLANS[point["plan"]][0] + (" (mean-pooled)" if mean else "")
        text += f", layer decay {decay:g}" if decay else ""
        text += ", linear-probed head first (LP-FT)" if lp_ft else ""
        text += f", lr {point['lr']:g}"
    if option(point, "warmup") == 0:
        text += " · no warm-up" if short else ", no warm-up"
    return text


# --- the course's precomputed sweeps -------------------------------------------------------

def frontier_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """The adaptation-retention frontier of notebooks 04-05: static plans, the high-lr divergence, schedules."""
    n = [train_size]
    return (grid(["head", "feature"], [1e-3], n, seeds)
            + grid(["head"], [1e-2], n, seeds)  # the [CLS] head at the mean-pooled head's step size
            + grid(["head"], [1e-3, 1e-2], n, seeds, pooling="mean")  # the fair frozen baseline
            + grid(["top2"], [5e-5, 1e-4, 5e-4], n, seeds)  # 1e-4: the static plan to hold gradual unfreezing to
            + grid(["full"], [2e-5, 1e-4, 5e-4, 1e-3], n, seeds)  # 1e-3 with warm-up: lr and warm-up apart
            + grid(["full"], [5e-4, 1e-3, 2e-3], n, seeds, warmup=0.0)  # Sun et al. (2019): no warm-up, high lr
            + grid(["gradual"], [1e-4], n, seeds)
            + grid(["full"], [1e-4], n, seeds, layer_decay=0.8))


def data_size_points(seeds=(0, 1, 2), sizes=(100, 300, 1000, 3000)) -> list[dict]:
    """Notebook 06: train size x frozen depth. Every run reads the mean token vector and sees >= 2,000 examples."""
    points = []
    for n in sizes:
        epochs = max(2, math.ceil(2000 / n))  # tiny sets get more epochs, so every run takes ~60+ steps
        points += grid(["head"], [1e-2], [n], seeds, pooling="mean", epochs=epochs)
        points += grid(["top2", "top4", "full"], [1e-4], [n], seeds, pooling="mean", epochs=epochs)
    return points


def methods_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """Notebook 07: BitFit, LayerNorm-only and LoRA (ranks 4, 16, 64; attention or all linear matrices) on the
    frontier's task and settings, so that they sit on the same map as its frozen plans. Seed by seed: a sweep
    stopped early holds every set-up once before any twice."""
    n, points = [train_size], []
    for seed in seeds:
        points += grid(["bitfit", "lnorm"], [1e-3, 5e-3], n, [seed])
        points += grid([f"lora{r}-{t}" for t in ("attn", "all") for r in (4, 16, 64)], [5e-4, 2e-3], n, [seed])
    return points


def methods_data_size_points(seeds=(0, 1, 2), sizes=(100, 300, 1000)) -> list[dict]:
    """Notebook 07: the cheapest methods on notebook 06's training-set-size axis, with its settings (mean token
    vector, >= 2,000 examples seen), each at the learning rate that adapted best at 2,000 sentences."""
    points = []
    for n in sizes:
        epochs = max(2, math.ceil(2000 / n))
        points += grid(["bitfit", "lnorm"], [5e-3], [n], seeds, pooling="mean", epochs=epochs)
        points += grid(["lora4-attn"], [2e-3], [n], seeds, pooling="mean", epochs=epochs)
    return points


def sequential_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """Notebook 07's "what B costs A": after SST-2 (the whole model, lr 1e-4), SUBJ with each remedy a practitioner
    would try: a lower learning rate, freezing more, BitFit, LoRA; the head alone is the anchor that cannot forget."""
    n, points = [train_size], []
    for seed in seeds:
        points += grid(["full"], [2e-5, 1e-4, 5e-4], n, [seed])
        points += grid(["top4", "top2"], [1e-4], n, [seed])
        points += grid(["head"], [1e-2], n, [seed])
        points += grid(["bitfit"], [1e-3], n, [seed])
        points += grid(["lora16-attn"], [5e-4], n, [seed])
    return points


def word_order_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """Notebook 04's word-order task at full size, with the control that separates "the frozen features lack
    word order" from "the frozen head reads them badly": top 2 and full fine-tuning both as the notebook runs them
    (reading [CLS] through a pooler they train) and reading the mean token vector, as the frozen head does."""
    n = [train_size]
    return (grid(["head"], [1e-2], n, seeds, pooling="mean")
            + grid(["top2"], [2e-4], n, seeds) + grid(["full"], [1e-4], n, seeds)
            + grid(["top2"], [2e-4], n, seeds, pooling="mean") + grid(["full"], [1e-4], n, seeds, pooling="mean"))


def depth_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """A natural task at full size, four frozen depths, notebook 06's head and rates (the mean token vector)."""
    n = [train_size]
    return grid(["head"], [1e-2], n, seeds, pooling="mean") + grid(["top2", "top4", "full"], [1e-4], n, seeds,
                                                                    pooling="mean")


def remedies_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """Notebook 08: LP-FT (the head fitted as a linear probe first) beside full fine-tuning from a random head, at
    the frontier's three full fine-tuning rates, seed by seed (a sweep stopped early holds every pair once)."""
    n, points = [train_size], []
    for seed in seeds:
        for lr in (2e-5, 1e-4, 5e-4):
            points += grid(["full"], [lr], n, [seed]) + grid(["full"], [lr], n, [seed], head_start="probe")
    return points


def advisor_points(seeds=(0, 1, 2), train_size: int = 2000) -> list[dict]:
    """The advisor's reference grid (`freezelab.advisor`), the same eight set-ups on every task: the frozen
    mean-pooled head, two frozen depths, full fine-tuning at three rates, LP-FT and LoRA, each at the course's
    rate for it, seed by seed (a sweep stopped early holds every set-up once before any twice)."""
    n, points = [train_size], []
    for seed in seeds:
        points += grid(["head"], [1e-2], n, [seed], pooling="mean")
        points += grid(["top2", "half"], [1e-4], n, [seed])
        points += grid(["full"], [2e-5, 1e-4, 5e-4], n, [seed])
        points += grid(["full"], [1e-4], n, [seed], head_start="probe")
        points += grid(["lora16-attn"], [5e-4], n, [seed])
    return points


ADVISOR_TASKS = ("sst2", "subj", "cola", "word-order")

COURSE_SWEEPS = {
    "frontier": (frontier_points, SweepSettings()),
    "methods": (methods_points, SweepSettings()),
    "methods-data-size": (methods_data_size_points, SweepSettings(probes=False)),
    "sequential": (sequential_points, SweepSettings(task="subj", first_task="sst2", probes=False)),
    "data-size": (data_size_points, SweepSettings(probes=False)),
    "word-order": (word_order_points, SweepSettings(task="word-order", probes=False)),
    "cola-depth": (depth_points, SweepSettings(task="cola", probes=False)),
    "remedies": (remedies_points, SweepSettings(alphas=(1.0, 0.7, 0.4))),
    **{f"advisor-{task}": (advisor_points, SweepSettings(task=task)) for task in ADVISOR_TASKS},
}
