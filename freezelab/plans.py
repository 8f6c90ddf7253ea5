"""Freezing plans: a small, declarative statement of which parameters are frozen.

For: saying what to freeze in the anatomy grid's own words (rows such as
"block 3", cells such as "block 3/query", columns such as "*/FFN in", or
parameter-name patterns), checking it against a model with clear errors,
applying it (`requires_grad`), reading it back from a model, comparing and
saving it as JSON. The named constructors are the common recipes.

Not for: training (`freezelab.training`) or reproducing the printed recipes
from tutorials, broken ones included (`freezelab.recipes`).
"""

from __future__ import annotations

import json
import numbers
import re
import warnings
from dataclasses import dataclass, field, replace

from torch import nn

from .anatomy import EMBEDDINGS, HEAD, POOLER, Anatomy, anatomy, frozen_names

_BLOCK = re.compile(r"block (-?\d+)$")


def _as_anatomy(model_or_anatomy: nn.Module | Anatomy) -> Anatomy:
    return model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)


def _check_count(what: str, value: int, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be a whole number from 0 to {most}, got {value!r}")
    value = int(value)
    if not 0 <= value <= most:
        raise ValueError(f"{what} must be from 0 to {most} (this model has {most} blocks), got {value}")


def _valid_rows_text(a: Anatomy) -> str:
    rows = [r for r in a.rows if not r.startswith("block ")]
    return f"valid rows: {EMBEDDINGS}, block 0 ... block {a.num_blocks - 1}" + "".join(
        f", {r}" for r in rows if r != EMBEDDINGS
    )


def _resolve_row(a: Anatomy, row: str, selector: str) -> str:
    if row in a.rows:
        return row
    match = _BLOCK.match(row)
    if match:
        raise ValueError(
            f"{selector!r}: block index {match.group(1)} is out of range; this model has blocks 0 to {a.num_blocks - 1}"
        )
    raise ValueError(f"{selector!r}: unknown row {row!r}; {_valid_rows_text(a)}")


def resolve_selector(a: Anatomy, selector: str) -> list[str]:
    """Parameter names named by one selector: "row", "row/column" or "*/column"."""
    if not isinstance(selector, str) or not selector.strip():
        raise ValueError(f"a selector must be a non-empty string such as 'block 3' or 'block 3/query', got {selector!r}")
    row, _, column = selector.partition("/")
    row, column = row.strip(), column.strip()
    if not column:
        return a.names_in(row=_resolve_row(a, row, selector))
    if row == "*":
        if column not in a.columns:
            raise ValueError(f"{selector!r}: unknown column {column!r}; valid columns: {', '.join(a.columns)}")
        return a.names_in(column=column)
    row = _resolve_row(a, row, selector)
    if column not in a.columns_of(row):
        raise ValueError(
            f"{selector!r}: row {row!r} has no column {column!r}; its columns are: {', '.join(a.columns_of(row))}"
        )
    return a.names_in(row=row, column=column)


def resolve_pattern(a: Anatomy, pattern: str) -> list[str]:
    """Parameter names that a regular expression finds (re.search)."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {error}") from None
    names = [n for n in a.names if compiled.search(n)]
    if not names:
        examples = ", ".join(a.names[:2] + a.names[-2:])
        raise ValueError(f"pattern {pattern!r} matches no parameter name; names look like: {examples}")
    return names


# The common plans' names: the picker's menu, sweep labels and result tables all say these.
FULL, HEAD_ONLY, FEATURE_EXTRACTOR = "full fine-tune", "head only", "pooler + head (feature extractor)"
BITFIT, LAYERNORM_ONLY = "BitFit (biases + head)", "LayerNorm only (+ head)"
BOTTOM_HALF = "bottom half frozen"  # a common default; the embeddings and blocks 0 ... n/2 - 1 (rounded down)


def train_top_name(n: int) -> str:
    return f"train top {n} + head"


class NothingTrainableError(ValueError):
    """A plan (or a schedule's first phase) that freezes every parameter: training would change nothing."""


@dataclass(frozen=True)
class FreezePlan:
    """Which parameters are frozen; everything else trains.

    `frozen` holds selectors in the grid's words: a row ("embeddings",
    "block 3", "pooler", "head"), a cell ("block 3/query") or a column across
    rows ("*/attn LayerNorm"). `patterns` holds regular expressions on
    parameter names. `architecture`, when set, is the anatomy signature the
    plan was made for; applying it to another architecture is an error.

    Plans made by the named constructors or `from_model` are in canonical
    form (whole rows, then whole cells, then exact names), so two such plans
    for the same model are equal exactly when they freeze the same parameters.
    """

    frozen: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    architecture: str | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self):
        # Accept lists from users and JSON; store tuples so plans are hashable.
        object.__setattr__(self, "frozen", tuple(self.frozen))
        object.__setattr__(self, "patterns", tuple(self.patterns))

    # --- resolving and applying -----------------------------------------------
    def frozen_names(self, model_or_anatomy: nn.Module | Anatomy) -> frozenset[str]:
        """The exact parameter names this plan freezes on that model; raises ValueError on anything invalid."""
        a = _as_anatomy(model_or_anatomy)
        if self.architecture is not None and self.architecture != a.signature:
            raise ValueError(
                f"this plan was made for a different architecture ({self.architecture}); the model is {a.signature}. "
                "Build the plan again for this model, e.g. FreezePlan.freeze_bottom(model, k)"
            )
        names: set[str] = set()
        for selector in self.frozen:
            names.update(resolve_selector(a, selector))
        for pattern in self.patterns:
            names.update(resolve_pattern(a, pattern))
        return frozenset(names)

    def trainable_count(self, model_or_anatomy: nn.Module | Anatomy) -> int:
        a = _as_anatomy(model_or_anatomy)
        frozen = self.frozen_names(a)
        return sum(p.numel for p in a.params if p.name not in frozen)

    def leaves_nothing_trainable(self, model_or_anatomy: nn.Module | Anatomy) -> bool:
        return self.trainable_count(model_or_anatomy) == 0

    @property
    def label(self) -> str:
        return self.name or "freeze " + (", ".join(self.frozen + self.patterns) or "nothing")

    def added(self, model_or_anatomy: nn.Module | Anatomy) -> None:
        """A plan adds no parameters (`freezelab.methods.Method`)."""
        return None

    def frozen_prefix(self, model_or_anatomy: nn.Module | Anatomy) -> int:
        """k where the plan freezes the embeddings and blocks 0 ... k-1 whole and something above them trains;
        else 0 (`prefix_cache.frozen_prefix_depth` says why)."""
        a = _as_anatomy(model_or_anatomy)
        frozen = self.frozen_names(a)
        if not set(a.names_in(row=EMBEDDINGS)) <= frozen:
            return 0
        k = 0
        while k < a.num_blocks and set(a.names_in(row=f"block {k}")) <= frozen:
            k += 1
        prefix = {EMBEDDINGS} | {f"block {i}" for i in range(k)}
        return k if any(p.name not in frozen for p in a.params if p.row not in prefix) else 0

    def apply(self, model: nn.Module) -> nn.Module:
        """Set `requires_grad` on every parameter: False where the plan freezes, True elsewhere.

        Everything is checked before anything is written, so a bad plan leaves
        the model as it was. Warns when nothing is left trainable.
        """
        frozen = self.frozen_names(model)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        if not any(p.requires_grad for p in model.parameters()):
            warnings.warn(f"plan {self.name or self!r} leaves nothing trainable", stacklevel=2)
        return model

    def canonical(self, model_or_anatomy: nn.Module | Anatomy) -> FreezePlan:
        """The same plan in canonical form for that model (see the class docstring)."""
        a = _as_anatomy(model_or_anatomy)
        return FreezePlan.from_names(a, self.frozen_names(a), name=self.name)

    # --- construction ----------------------------------------------------------
    @classmethod
    def from_names(cls, model_or_anatomy: nn.Module | Anatomy, frozen: set[str] | frozenset[str], name: str = "") -> FreezePlan:
        """The canonical plan that freezes exactly these parameter names."""
        a = _as_anatomy(model_or_anatomy)
        unknown = set(frozen) - set(a.names)
        if unknown:
            raise ValueError(f"unknown parameter names: {sorted(unknown)[:5]}")
        selectors, patterns = [], []
        for row in a.rows:
            in_row = a.names_in(row=row)
            if all(n in frozen for n in in_row):
                selectors.append(row)
                continue
            for column in a.columns_of(row):
                in_cell = a.names_in(row=row, column=column)
                if all(n in frozen for n in in_cell):
                    selectors.append(f"{row}/{column}")
                else:
                    patterns += [f"^{re.escape(n)}$" for n in in_cell if n in frozen]
        return cls(tuple(selectors), tuple(patterns), a.signature, name)

    @classmethod
    def from_model(cls, model: nn.Module, name: str = "") -> FreezePlan:
        """Read the model's current `requires_grad` state back as a plan."""
        return cls.from_names(model, frozen_names(model), name=name)

    @classmethod
    def full_finetune(cls, model_or_anatomy) -> FreezePlan:
        """Nothing frozen: the default state of every Hugging Face model."""
        return cls.from_names(model_or_anatomy, frozenset(), name=FULL)

    @classmethod
    def freeze_bottom(cls, model_or_anatomy, k: int, embeddings: bool = True) -> FreezePlan:
        """Freeze the embeddings (unless embeddings=False) and blocks 0 ... k-1."""
        a = _as_anatomy(model_or_anatomy)
        _check_count("k (blocks to freeze)", k, a.num_blocks)
        rows = ([EMBEDDINGS] if embeddings else []) + [f"block {i}" for i in range(k)]
        label = f"freeze {'embeddings + ' if embeddings else ''}bottom {k}"
        return cls.from_names(a, {n for r in rows for n in a.names_in(row=r)}, name=label)

    @classmethod
    def train_top(cls, model_or_anatomy, n: int) -> FreezePlan:
        """Train only the top n blocks, the pooler and the head; freeze the embeddings and the rest."""
        a = _as_anatomy(model_or_anatomy)
        _check_count("n (blocks to train)", n, a.num_blocks)
        return replace(cls.freeze_bottom(a, a.num_blocks - n), name=train_top_name(n))

    @classmethod
    def bottom_half(cls, model_or_anatomy) -> FreezePlan:
        """Freeze the embeddings and the bottom half of the blocks (rounded down): a common rule of thumb."""
        a = _as_anatomy(model_or_anatomy)
        return replace(cls.freeze_bottom(a, a.num_blocks // 2), name=BOTTOM_HALF)

    @classmethod
    def feature_extractor(cls, model_or_anatomy) -> FreezePlan:
        """Freeze the embeddings and every block; the pooler (if any) and the head train."""
        a = _as_anatomy(model_or_anatomy)
        return replace(cls.freeze_bottom(a, a.num_blocks), name=FEATURE_EXTRACTOR)

    @classmethod
    def head_only(cls, model_or_anatomy) -> FreezePlan:
        """Freeze everything but the task head (the pooler is frozen too)."""
        a = _as_anatomy(model_or_anatomy)
        return cls.from_names(a, {p.name for p in a.params if p.row != HEAD}, name=HEAD_ONLY)

    @classmethod
    def bitfit(cls, model_or_anatomy) -> FreezePlan:
        """BitFit (Ben Zaken et al. 2022): every bias term and the task head train; every weight matrix is frozen."""
        a = _as_anatomy(model_or_anatomy)
        return cls.from_names(a, {p.name for p in a.params if p.row != HEAD and not p.name.endswith("bias")},
                              name=BITFIT)

    @classmethod
    def layernorm_only(cls, model_or_anatomy) -> FreezePlan:
        """Only the LayerNorms' scales and shifts (and the head) train: a few thousand numbers per block."""
        a = _as_anatomy(model_or_anatomy)
        norms = [p.name for p in a.params if "LayerNorm" in p.column]
        if not norms:
            raise ValueError(f"this model ({a.signature}) has no LayerNorm cells; its columns: {', '.join(a.columns)}")
        return cls.from_names(a, {p.name for p in a.params if p.row != HEAD and p.name not in norms},
                              name=LAYERNORM_ONLY)

    @classmethod
    def presets(cls, model_or_anatomy) -> dict[str, FreezePlan]:
        """The common recipes for this model, by label: what a picker menu offers."""
        a = _as_anatomy(model_or_anatomy)
        plans = [cls.full_finetune(a), cls.head_only(a)]
        if POOLER in a.rows:
            plans.append(cls.feature_extractor(a))
        plans += [cls.train_top(a, n) for n in (1, 2) if n < a.num_blocks]
        plans += [cls.freeze_bottom(a, a.num_blocks // 2)]
        plans += [cls.bitfit(a)] + ([cls.layernorm_only(a)] if any("LayerNorm" in c for c in a.columns) else [])
        unique = {}
        for plan in plans:  # on small models some recipes coincide: keep the first label
            unique.setdefault((plan.frozen, plan.patterns), plan)
        return {p.name: p for p in unique.values()}

    # --- JSON ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"freezelab_plan": 1, "name": self.name, "architecture": self.architecture,
                "frozen": list(self.frozen), "patterns": list(self.patterns)}

    @classmethod
    def from_dict(cls, data: dict) -> FreezePlan:
        if not isinstance(data, dict) or data.get("freezelab_plan") != 1:
            raise ValueError("not a freezelab plan: expected an object with 'freezelab_plan': 1, 'frozen': [...] "
                             f"(what FreezePlan.to_json writes), got {type(data).__name__}")
        for key in ("frozen", "patterns"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"a plan's {key!r} must be a list of strings (row names or patterns), got {value!r}")
        for key in ("name", "architecture"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"a plan's {key!r} must be a string, got {data[key]!r}")
        return cls(tuple(data.get("frozen", ())), tuple(data.get("patterns", ())), data.get("architecture"),
                   data.get("name") or "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> FreezePlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a freezelab plan: invalid JSON at line {error.lineno}, column {error.colno} "
                             f"({error.msg})") from None
        return cls.from_dict(data)
