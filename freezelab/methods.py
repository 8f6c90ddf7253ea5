"""Ways of choosing what trains: what each one provides, and the one place the kit learns of a new one.

For: the `Method` protocol, which `FreezePlan` (`freezelab.plans`), `LoRA` (`freezelab.lora`) and `IA3`
(`freezelab.ia3`) implement; `Family`, what the picker, the sweeps' grid keys and the frontier need to know
of a kind of method; `families()`, the registry they read; `from_dict`, which reads any method's JSON back;
and `merged_state_dict`, which folds any peft adapter into the matrix it adapts.

Adding a method (the walk `freezelab.ia3` took): write one module holding a frozen dataclass that provides
`Method` and a `FAMILY = Family(...)`, then name the module in `REGISTERED` below. The picker gains a
button, `fine_tune` applies it, the heatmap counts its parameters, its grid keys run in sweeps and its
runs get their own mark on the frontier. No other file changes.

How probes read an adapted model: the probes that run the model run it through the adapters; the probes
that copy weights into another model (the masked-LM probe, weight drift) read `merged_state_dict`, which
asks each peft tuner layer to fold itself in (`merge`), copies, and puts the original weights back.

Not for: which layers to freeze (`freezelab.plans`), or training (`freezelab.training`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .anatomy import Anatomy

# The modules that hold a method family (each defines FAMILY), in the order the picker shows them.
REGISTERED = ("lora", "ia3")


@runtime_checkable
class Method(Protocol):
    """What a way of choosing what trains provides. Nothing but `apply` touches a model."""

    name: str  # what a table, a plot and the picker call it

    @property
    def label(self) -> str:
        """The name built from the settings alone (the default `name`)."""

    def frozen_names(self, model_or_anatomy: nn.Module | Anatomy) -> frozenset[str]:
        """The model's own parameters it freezes (added adapters are not among them); checks it fits the model."""

    def added(self, model_or_anatomy: nn.Module | Anatomy) -> np.ndarray | None:
        """Parameters per anatomy-grid cell (rows x columns) that applying it adds; None where it adds none."""

    def trainable_count(self, model_or_anatomy: nn.Module | Anatomy) -> int:
        """How many parameters train once it is applied."""

    def leaves_nothing_trainable(self, model_or_anatomy: nn.Module | Anatomy) -> bool:
        """Whether training after it would change nothing (`fine_tune` refuses that)."""

    def frozen_prefix(self, model_or_anatomy: nn.Module | Anatomy) -> int:
        """How many bottom blocks stay whole and frozen with the embeddings: what the frozen-prefix cache
        may skip (0: the cache cannot apply; an error says why where the reason is worth knowing)."""

    def apply(self, model: nn.Module) -> nn.Module:
        """Set `requires_grad` (and add the method's weights, if any) on `model`; return it."""

    def to_dict(self) -> dict:
        """JSON-ready, tagged with the family's `tag`; `from_dict` reads it back."""


@dataclass(frozen=True)
class Family:
    """A kind of method, as the rest of the kit sees it.

    title: its button in the picker ("LoRA"). make: its class; `make(**choice)` builds one.
    choices: the picker's controls, a field of `make` -> the options offered.
    grid: the sweeps' grid keys (the `plan` of a point) -> method; each key starts with `key`, and a key
        ending in "-all" (on every linear matrix) is drawn with an open marker.
    mark: (colour, plotly marker, words for the legend) on the frontier. tag: the key its JSON carries.
    """

    key: str
    title: str
    make: type
    tag: str
    mark: tuple[str, str, str]
    choices: dict[str, tuple] = field(default_factory=dict)
    grid: dict[str, Method] = field(default_factory=dict)

    def __post_init__(self):
        wrong = [k for k in self.grid if not k.startswith(self.key)]
        if wrong:
            raise ValueError(f"{self.title}: grid keys must start with {self.key!r}; got {wrong}")


def families() -> list[Family]:
    """Every registered family, in `REGISTERED` order (their modules are imported on first use)."""
    return [importlib.import_module(f"{__package__}.{module}").FAMILY for module in REGISTERED]


def family_of(method) -> Family | None:
    """The family a method belongs to (None for a `FreezePlan`: the picker's own rows and presets show those)."""
    return next((f for f in families() if isinstance(method, f.make)), None)


def from_dict(data: dict):
    """Any method back from its `to_dict` (a `FreezePlan` or a registered family's), by its tag."""
    from .plans import FreezePlan

    makers = {"freezelab_plan": FreezePlan, **{f.tag: f.make for f in families()}}
    tag = next((t for t in makers if isinstance(data, dict) and t in data), None)
    if tag is None:
        raise ValueError(f"not a freezelab method: expected an object tagged with one of {sorted(makers)} "
                         f"(what a method's to_dict writes), got {type(data).__name__}")
    return makers[tag].from_dict(data)


def has_adapters(model_or_anatomy) -> bool:
    """Whether adapters (of any peft method) were added to this model."""
    from .anatomy import Anatomy, anatomy

    a = model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)
    return any(p.adapter for p in a.params)


def apply_adapters(method: Method, model: nn.Module, config) -> nn.Module:
    """Add peft adapters (`config`) to `model` once, freeze every pre-trained weight, train the adapters and
    the head (as peft's own sequence-classification set-up does). The model keeps its class and its names.

    Applying the same method again only resets what trains; a model holding other adapters is refused.
    """
    from peft import inject_adapter_in_model

    from .anatomy import HEAD, anatomy

    if has_adapters(model):
        held = getattr(model, "freezelab_adapters", None)
        if held != method:
            raise ValueError(f"this model already holds other adapters ({getattr(held, 'name', 'added outside freezelab')}); "
                             f"load a fresh model to apply {method.name}")
    else:
        inject_adapter_in_model(config, model)
        model.freezelab_adapters = method  # what a second apply compares against
    a = anatomy(model)
    for info, (_, p) in zip(a.params, model.named_parameters()):
        p.requires_grad_(info.adapter or info.row == HEAD)
    return model


def merged_state_dict(module: nn.Module) -> dict:
    """`module.state_dict()` with each peft adapter folded into its matrix, under the names the model had
    before the adapters came. The module is left as it was (its original weights are put back)."""
    import torch

    layers = [m for m in module.modules() if getattr(m, "adapter_layer_names", None) and hasattr(m, "merge")]
    if not layers:
        return module.state_dict()
    holders = {holder for layer in layers for holder in layer.adapter_layer_names}
    saved = []
    with torch.no_grad():
        try:
            for layer in layers:
                if not layer.merged:
                    base = layer.get_base_layer()
                    saved.append((layer, [(p, p.data) for p in base.parameters(recurse=False)]))
                    for p in base.parameters(recurse=False):
                        p.data = p.data.clone()  # merge writes here; the original tensors stay untouched
                    layer.merge()
            state = {}
            for name, tensor in module.state_dict().items():
                if any(f".{holder}." in f".{name}" for holder in holders):
                    continue
                state[name.replace(".base_layer.", ".")] = tensor
        finally:
            for layer, originals in saved:
                for p, original in originals:
                    p.data = original
                layer.merged_adapters.clear()
    return state
