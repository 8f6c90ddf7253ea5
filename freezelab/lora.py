"""LoRA through `peft`, as a plan on the anatomy grid: small trainable matrices beside frozen ones.

For: `LoRA(rank, alpha, targets, dropout)`, a method object beside `FreezePlan`
with the same JSON, equality and checks. `apply(model)` adds the adapters with
peft's `inject_adapter_in_model`: the model keeps its class and its names (each
adapted matrix `W` becomes `....base_layer.weight`, beside `....lora_A` and
`....lora_B`), every pre-trained weight is frozen, and the adapters and the
task head train, as peft's own sequence-classification set-up does. The
forward pass then computes `W x + (alpha / rank) B A x`.

`added(anatomy)` counts what would train in each grid cell before anything is
applied (a rank-r adapter of an out x in matrix holds r (in + out) numbers):
the picker redraws from it. It provides `freezelab.methods.Method`; `FAMILY`
tells the picker, the sweeps' grid keys ("lora16-attn") and the frontier
about it.

Not for: which layers to freeze (`freezelab.plans`; BitFit and LayerNorm-only
are plans there) or training (`freezelab.training`).
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field

import numpy as np

from .anatomy import HEAD, Anatomy, anatomy
from .methods import Family, apply_adapters, has_adapters
from .style import ORANGE

# Which matrices of each block an adapter sits beside, in the grid's column names.
TARGETS = {
    "attention": ("query", "key", "value", "attn out"),
    "ffn": ("FFN in", "FFN out"),
    "all-linear": ("query", "key", "value", "attn out", "FFN in", "FFN out"),
}


def _as_anatomy(model_or_anatomy) -> Anatomy:
    return model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)


@dataclass(frozen=True)
class LoRA:
    """Low-rank adapters of rank `rank` beside the `targets` matrices of every block; the head trains too.

    alpha: the adapters' scale is alpha / rank; default 2 x rank (scale 2 at every rank, so ranks compare
        at one learning rate, as in Biderman et al. 2024). targets: "attention" (query, key, value, attn out),
        "ffn" (FFN in, FFN out) or "all-linear" (both). dropout: on the adapters' input.
    top: adapters in the top `top` blocks only (None: every block). The blocks below then stay whole and
        frozen, so the frozen-prefix cache applies (`fine_tune(..., cache_prefix=True)`).
    """

    rank: int = 8
    alpha: float | None = None
    targets: str = "attention"
    dropout: float = 0.0
    top: int | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, numbers.Integral) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a whole number >= 1, got {self.rank!r}")
        object.__setattr__(self, "rank", int(self.rank))
        if self.alpha is None:
            object.__setattr__(self, "alpha", 2.0 * self.rank)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real) or not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be a number > 0 (the scale is alpha / rank), got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.targets not in TARGETS:
            raise ValueError(f"unknown LoRA target modules {self.targets!r}; valid: "
                             + ", ".join(f"{k!r} ({', '.join(v)})" for k, v in TARGETS.items()))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout must be a number from 0 to below 1, got {self.dropout!r}")
        if self.top is not None and (isinstance(self.top, bool) or not isinstance(self.top, numbers.Integral)
                                     or self.top < 1):
            raise ValueError(f"LoRA top (blocks to adapt, from the top) must be a whole number >= 1 or None (every "
                             f"block), got {self.top!r}")
        if not self.name:
            object.__setattr__(self, "name", self.label)

    @property
    def label(self) -> str:
        return f"LoRA r={self.rank} ({self.targets}{'' if self.top is None else f', top {self.top} blocks'})"

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    # --- what it touches, before anything is applied ------------------------------------------
    def targeted(self, model_or_anatomy) -> list:
        """The anatomy's weight matrices an adapter sits beside (one `Param` each); an error if there are none."""
        a = _as_anatomy(model_or_anatomy)
        if self.top is not None and self.top > a.num_blocks:
            raise ValueError(f"{self.label}: this model has {a.num_blocks} blocks; top must be from 1 to {a.num_blocks}")
        columns = TARGETS[self.targets]
        rows = {f"block {i}" for i in range(a.num_blocks - (self.top or a.num_blocks), a.num_blocks)}
        found = [p for p in a.params if p.row in rows and p.column in columns and not p.adapter
                 and p.name.endswith(".weight") and len(p.shape) == 2]
        if not found:
            have = sorted({p.column for p in a.params if p.row.startswith("block ")})
            raise ValueError(f"{self.label}: this model ({a.signature}) has no {self.targets} matrices to adapt "
                             f"(columns {', '.join(columns)}); its blocks hold: {', '.join(have)}")
        return found

    def modules(self, model_or_anatomy) -> list[str]:
        """The qualified names of the modules that get adapters (what peft's `target_modules` receives)."""
        return [p.name.removesuffix(".weight").removesuffix(".base_layer") for p in self.targeted(model_or_anatomy)]

    def frozen_names(self, model_or_anatomy) -> frozenset[str]:
        """The pre-trained parameters this method freezes: all but the head's (adapters are not among them)."""
        a = _as_anatomy(model_or_anatomy)
        self.targeted(a)
        return frozenset(p.name for p in a.params if p.row != HEAD and not p.adapter)

    def added(self, model_or_anatomy) -> np.ndarray:
        """Adapter parameters per grid cell (rows x columns) that applying this would add."""
        a = _as_anatomy(model_or_anatomy)
        counts = np.zeros((len(a.rows), len(a.columns)))
        for p in self.targeted(a):
            out_features, in_features = p.shape
            counts[a.rows.index(p.row), a.columns.index(p.column)] += self.rank * (in_features + out_features)
        return counts

    def trainable_count(self, model_or_anatomy) -> int:
        a = _as_anatomy(model_or_anatomy)
        head = sum(p.numel for p in a.params if p.row == HEAD)
        return head + int(a.adapter_matrix().sum() if has_adapters(a) else self.added(a).sum())

    def leaves_nothing_trainable(self, model_or_anatomy) -> bool:
        return self.trainable_count(model_or_anatomy) == 0

    # --- applying ---------------------------------------------------------------------------
    def apply(self, model):
        """Add the adapters (once: applying again to the same model only resets what trains) and freeze the rest.

        A model that already holds other adapters is refused: load a fresh one.
        """
        from peft import LoraConfig

        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                            target_modules=self.modules(model), bias="none")
        return apply_adapters(self, model, config)

    # --- JSON -------------------------------------------------------------------------------
    def frozen_prefix(self, model_or_anatomy) -> int:
        """How many bottom blocks stay whole and frozen (with the embeddings): what the frozen-prefix cache can skip."""
        a = _as_anatomy(model_or_anatomy)
        self.targeted(a)
        return 0 if self.top is None else a.num_blocks - self.top

    def to_dict(self) -> dict:
        return {"freezelab_lora": 1, "name": self.name, "rank": self.rank, "alpha": self.alpha,
                "targets": self.targets, "dropout": self.dropout, "top": self.top}

    @classmethod
    def from_dict(cls, data: dict) -> LoRA:
        if not isinstance(data, dict) or data.get("freezelab_lora") != 1:
            raise ValueError("not a freezelab LoRA method: expected an object with 'freezelab_lora': 1 "
                             f"(what LoRA.to_json writes), got {type(data).__name__}")
        unknown = set(data) - {"freezelab_lora", "name", "rank", "alpha", "targets", "dropout", "top"}
        if unknown:
            raise ValueError(f"unknown LoRA fields {sorted(unknown)}; valid: name, rank, alpha, targets, dropout, top")
        return cls(rank=data.get("rank", 8), alpha=data.get("alpha"), targets=data.get("targets", "attention"),
                   dropout=data.get("dropout", 0.0), top=data.get("top"), name=data.get("name") or "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> LoRA:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise ValueError(f"not a freezelab LoRA method: invalid JSON ({error.msg})") from None


def adapted_modules(model) -> dict[str, tuple[int, float]]:
    """{module name: (rank, scale)} for every module holding a LoRA adapter."""
    from peft.tuners.lora import LoraLayer

    return {name: (module.r["default"], module.scaling["default"])
            for name, module in model.named_modules() if isinstance(module, LoraLayer)}


# What the picker, the sweeps and the frontier know of LoRA. Grid keys: "lora16-attn" is rank 16 on the
# attention matrices (alpha = 2 x rank); "-ffn" the FFN matrices, "-all" both.
_SHORT = {"attn": "attention", "ffn": "ffn", "all": "all-linear"}
FAMILY = Family(
    key="lora", title="LoRA", make=LoRA, tag="freezelab_lora",
    mark=(ORANGE, "triangle-up", "orange ▲ LoRA (open: all linear)"),
    choices={"rank": (4, 8, 16, 64), "targets": tuple(TARGETS)},
    grid={f"lora{rank}-{short}": LoRA(rank, targets=targets) for rank in (4, 8, 16, 64)
          for short, targets in _SHORT.items()},
)
