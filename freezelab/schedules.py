"""Freezing schedules as data: phases of (FreezePlan, lr multiplier, when it begins).

For: gradual unfreezing (ULMFiT: head first, then one more block from the top
every k epochs or steps), user-written schedules, plateau-triggered phases,
discriminative (layer-wise decay) learning rates, and the `TrainerCallback`
that carries a schedule out so that newly unfrozen parameters really train.

Why a callback alone is not enough: `Trainer` builds its optimizer once, from
the parameters that require grad at that moment. `freezelab.training` hands
the Trainer an optimizer over *every* parameter (frozen ones get no gradient,
so AdamW skips them) and one scheduler whose lr includes the phase's
multiplier; this module only decides which phase is active.

Not for: building the optimizer or running the Trainer (`freezelab.training`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from transformers import TrainerCallback

from .anatomy import EMBEDDINGS, HEAD, POOLER, Anatomy, anatomy
from . import methods
from .methods import Method
from .plans import FreezePlan, NothingTrainableError

GRADUAL = "gradual unfreezing"


@dataclass(frozen=True)
class Phase:
    """One phase: which plan, an lr multiplier, and when it begins.

    Exactly one of: `start_step`, `start_epoch`, or `on_plateau=True` (begins
    at the first evaluation after the previous phase began at which the dev
    metric did not improve). The first phase begins at step 0.
    """

    plan: Method  # a FreezePlan, or any method (`freezelab.methods`)
    lr_scale: float = 1.0
    start_step: int | None = None
    start_epoch: float | None = None
    on_plateau: bool = False

    def to_dict(self) -> dict:
        return {"plan": self.plan.to_dict(), "lr_scale": self.lr_scale, "start_step": self.start_step,
                "start_epoch": self.start_epoch, "on_plateau": self.on_plateau}


@dataclass(frozen=True)
class Schedule:
    phases: tuple[Phase, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "phases", tuple(self.phases))
        if not self.phases:
            raise ValueError("a schedule needs at least one phase")
        for i, phase in enumerate(self.phases):
            triggers = (phase.start_step is not None) + (phase.start_epoch is not None) + bool(phase.on_plateau)
            if i > 0 and triggers != 1:
                raise ValueError(f"phase {i} must have exactly one of start_step, start_epoch, on_plateau=True")
            if not (math.isfinite(phase.lr_scale) and phase.lr_scale >= 0):
                raise ValueError(f"phase {i}: lr_scale must be a finite number >= 0, got {phase.lr_scale}")
        starts = [self._start(p, 1) for p in self.phases[1:] if not p.on_plateau]
        if starts != sorted(starts):
            raise ValueError("phases with a start step/epoch must be in order of their start")

    @staticmethod
    def _start(phase: Phase, steps_per_epoch: int) -> int:
        if phase.start_step is not None:
            return int(phase.start_step)
        return round(phase.start_epoch * steps_per_epoch)

    def validate(self, model_or_anatomy) -> None:
        """Check every phase's plan against the model; the first must leave something trainable."""
        for phase in self.phases:
            phase.plan.frozen_names(model_or_anatomy)
        if self.phases[0].plan.leaves_nothing_trainable(model_or_anatomy):
            raise NothingTrainableError("the schedule's first phase leaves nothing trainable")

    @classmethod
    def gradual_unfreezing(cls, model_or_anatomy, every_epochs: float | None = None, every_steps: int | None = None,
                           blocks: int | None = None, include_embeddings: bool = False) -> Schedule:
        """ULMFiT-style: the head (and pooler) first, then one more block from the top at each interval.

        The interval is every_epochs (default 1) or every_steps.
        blocks: how many blocks to unfreeze in all (default: every block);
        include_embeddings: finish by unfreezing the embeddings too.
        """
        a = model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)
        if every_epochs is not None and every_steps is not None:
            raise ValueError("give every_epochs or every_steps, not both")
        if every_epochs is None and every_steps is None:
            every_epochs = 1
        blocks = a.num_blocks if blocks is None else blocks
        if not 0 <= blocks <= a.num_blocks:
            raise ValueError(f"blocks must be from 0 to {a.num_blocks}, got {blocks}")
        plans = [FreezePlan.train_top(a, n) for n in range(blocks + 1)]
        if include_embeddings:
            plans.append(FreezePlan.full_finetune(a))
        phases = []
        for i, plan in enumerate(plans):
            when = {} if i == 0 else ({"start_epoch": i * every_epochs} if every_steps is None
                                      else {"start_step": i * every_steps})
            phases.append(Phase(plan, **when))
        return cls(tuple(phases), name=GRADUAL)

    @classmethod
    def static(cls, plan: Method) -> Schedule:
        return cls((Phase(plan),), name=plan.name)

    def to_json(self) -> str:
        return json.dumps({"freezelab_schedule": 1, "name": self.name,
                           "phases": [p.to_dict() for p in self.phases]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        data = json.loads(text)
        if data.get("freezelab_schedule") != 1:
            raise ValueError("not a freezelab schedule (missing 'freezelab_schedule': 1)")
        phases = [Phase(methods.from_dict(p["plan"]), p["lr_scale"], p["start_step"], p["start_epoch"],
                        p["on_plateau"]) for p in data["phases"]]
        return cls(tuple(phases), name=data.get("name", ""))


def layer_distance(a: Anatomy, row: str) -> int:
    """Distance from the top used by layer-wise lr decay: head and pooler 0, block N-1 1, ..., embeddings N+1."""
    if row in (HEAD, POOLER):
        return 0
    if row == EMBEDDINGS:
        return a.num_blocks + 1
    if row.startswith("block "):
        return a.num_blocks - int(row.split()[1])
    return a.num_blocks + 1


class ScheduleCallback(TrainerCallback):
    """Applies a Schedule's phases during `Trainer.train()`; `multiplier` is read by the lr scheduler."""

    def __init__(self, schedule: Schedule, model, steps_per_epoch: int, greater_is_better: bool = True):
        self.schedule, self.model = schedule, model
        self.steps_per_epoch = steps_per_epoch
        self.greater_is_better = greater_is_better
        self.index = 0
        self.multiplier = schedule.phases[0].lr_scale
        self.best = None
        self.changes: list[dict] = []  # (step, phase) log, for the result record

    def _enter(self, index: int, step: int) -> None:
        self.index = index
        phase = self.schedule.phases[index]
        phase.plan.apply(self.model)
        self.multiplier = phase.lr_scale
        self.best = None
        self.changes.append({"step": step, "phase": index, "plan": phase.plan.name or str(phase.plan.frozen)})

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.changes:
            self._enter(0, state.global_step)

    def on_step_begin(self, args, state, control, **kwargs):
        following = self.index + 1
        if following < len(self.schedule.phases):
            phase = self.schedule.phases[following]
            if not phase.on_plateau and state.global_step >= Schedule._start(phase, self.steps_per_epoch):
                self._enter(following, state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = next((v for k, v in (metrics or {}).items() if k.endswith(("accuracy", "spearman"))), None)
        if value is None:
            return
        improved = self.best is None or (value > self.best if self.greater_is_better else value < self.best)
        following = self.index + 1
        if improved:
            self.best = value
        elif following < len(self.schedule.phases) and self.schedule.phases[following].on_plateau:
            self._enter(following, state.global_step)
