"""(IA)³ through `peft`: learned vectors that rescale what some matrices compute, everything pre-trained frozen.

For: `IA3(targets)`, a method (`freezelab.methods.Method`) beside `FreezePlan` and `LoRA`. (IA)³ (Liu et
al. 2022) multiplies the keys, the values and the FFN's inner activations by learned vectors that start
at 1, so training starts from the pre-trained function. peft's `inject_adapter_in_model` adds them: a key
or value vector scales the matrix's outputs (one number per output), the FFN vector scales the input of
"FFN out" (one per inner unit). The task head trains too, as in peft's sequence-classification set-up.

This module is also the walk for adding a method: one frozen dataclass that provides the protocol, one
`FAMILY`, and its name in `freezelab.methods.REGISTERED`. Nothing else in the kit names it.

Not for: low-rank adapters (`freezelab.lora`) or which layers to freeze (`freezelab.plans`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .anatomy import HEAD, Anatomy, anatomy
from .methods import Family, apply_adapters, has_adapters
from .style import SKY_BLUE

# Which matrices of each block get a vector, in the grid's column names; those in the second tuple are
# scaled on their input (the FFN's inner activations), the others on their output.
TARGETS = {
    "attention+ffn": (("key", "value", "FFN out"), ("FFN out",)),  # the paper's choice
    "attention": (("key", "value"), ()),
}


def _as_anatomy(model_or_anatomy) -> Anatomy:
    return model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)


@dataclass(frozen=True)
class IA3:
    """(IA)³ vectors beside the `targets` matrices of every block; the head trains too.

    targets: "attention+ffn" (keys, values and the FFN's inner activations, as in the paper) or
        "attention" (keys and values only).
    """

    targets: str = "attention+ffn"
    name: str = field(default="", compare=False)

    def __post_init__(self):
        if self.targets not in TARGETS:
            raise ValueError(f"unknown (IA)³ targets {self.targets!r}; valid: "
                             + ", ".join(f"{k!r} ({', '.join(v[0])})" for k, v in TARGETS.items()))
        if not self.name:
            object.__setattr__(self, "name", self.label)

    @property
    def label(self) -> str:
        return f"(IA)³ ({self.targets})"

    # --- what it touches, before anything is applied ------------------------------------------
    def targeted(self, model_or_anatomy) -> list:
        """The weight matrices a vector sits beside (one `Param` each); an error if the model has none."""
        a = _as_anatomy(model_or_anatomy)
        columns = TARGETS[self.targets][0]
        found = [p for p in a.params if p.row.startswith("block ") and p.column in columns and not p.adapter
                 and p.name.endswith(".weight") and len(p.shape) == 2]
        if not found:
            have = sorted({p.column for p in a.params if p.row.startswith("block ")})
            raise ValueError(f"{self.label}: this model ({a.signature}) has no {', '.join(columns)} matrices; "
                             f"its blocks hold: {', '.join(have)}")
        return found

    def _modules(self, a: Anatomy) -> tuple[list[str], list[str]]:
        """(every module that gets a vector, those scaled on their input), as peft's config names them."""
        targeted = self.targeted(a)
        names = [p.name.removesuffix(".weight").removesuffix(".base_layer") for p in targeted]
        inputs = TARGETS[self.targets][1]
        return names, [n for n, p in zip(names, targeted) if p.column in inputs]

    def frozen_names(self, model_or_anatomy) -> frozenset[str]:
        """The pre-trained parameters it freezes: all but the head's (its vectors are not among them)."""
        a = _as_anatomy(model_or_anatomy)
        self.targeted(a)
        return frozenset(p.name for p in a.params if p.row != HEAD and not p.adapter)

    def added(self, model_or_anatomy) -> np.ndarray:
        """Vector entries per grid cell: a matrix's outputs, or its inputs where it is scaled on its input."""
        a = _as_anatomy(model_or_anatomy)
        counts = np.zeros((len(a.rows), len(a.columns)))
        inputs = TARGETS[self.targets][1]
        for p in self.targeted(a):
            out_features, in_features = p.shape
            counts[a.rows.index(p.row), a.columns.index(p.column)] += in_features if p.column in inputs else out_features
        return counts

    def trainable_count(self, model_or_anatomy) -> int:
        a = _as_anatomy(model_or_anatomy)
        head = sum(p.numel for p in a.params if p.row == HEAD)
        return head + int(a.adapter_matrix().sum() if has_adapters(a) else self.added(a).sum())

    def leaves_nothing_trainable(self, model_or_anatomy) -> bool:
        return self.trainable_count(model_or_anatomy) == 0

    def frozen_prefix(self, model_or_anatomy) -> int:
        """0: a vector sits in every block, so no bottom block stays whole (the prefix cache cannot apply)."""
        self.targeted(model_or_anatomy)
        return 0

    # --- applying ---------------------------------------------------------------------------
    def apply(self, model):
        """Add the vectors (once; applying again only resets what trains) and freeze every pre-trained weight."""
        from peft import IA3Config

        modules, inputs = self._modules(anatomy(model))
        return apply_adapters(self, model, IA3Config(target_modules=modules, feedforward_modules=inputs))

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"freezelab_ia3": 1, "name": self.name, "targets": self.targets}

    @classmethod
    def from_dict(cls, data: dict) -> IA3:
        if not isinstance(data, dict) or data.get("freezelab_ia3") != 1:
            raise ValueError("not a freezelab (IA)³ method: expected an object with 'freezelab_ia3': 1 "
                             f"(what IA3.to_json writes), got {type(data).__name__}")
        unknown = set(data) - {"freezelab_ia3", "name", "targets"}
        if unknown:
            raise ValueError(f"unknown (IA)³ fields {sorted(unknown)}; valid: name, targets")
        return cls(targets=data.get("targets", "attention+ffn"), name=data.get("name") or "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> IA3:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise ValueError(f"not a freezelab (IA)³ method: invalid JSON ({error.msg})") from None


# What the picker, the sweeps and the frontier know of (IA)³. Grid keys: "ia3" (the paper's targets),
# "ia3-attn" (keys and values only).
FAMILY = Family(
    key="ia3", title="(IA)³", make=IA3, tag="freezelab_ia3",
    mark=(SKY_BLUE, "star", "sky-blue ★ (IA)³"),
    choices={"targets": tuple(TARGETS)},
    grid={"ia3": IA3(), "ia3-attn": IA3("attention")},
)
