"""Where a transformer classifier's parameters live: the anatomy grid.

For: mapping every parameter of a Hugging Face encoder classifier (BERT,
RoBERTa, DistilBERT, ELECTRA, ...) to one cell of a grid whose rows are
layers as data flows (embeddings, block 0 ... block N-1, pooler, head) and
whose columns are sub-module kinds (query, key, value, FFN in, ...), and
counting total and trainable parameters per cell.

Not for: changing which parameters train (that is `freezelab.plans`) or
drawing the grid (that is `freezelab.plots`). Nothing here writes to a model.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, replace
from functools import cached_property

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch and pandas load when a model or a table is first looked at, not with the package
    import pandas as pd
    from torch import nn

EMBEDDINGS, POOLER, HEAD, ENCODER_OTHER = "embeddings", "pooler", "head", "encoder (other)"

# Column kinds, in the order they are drawn. Each row kind has its own
# patterns, matched (re.search) against the parameter name relative to the
# row's module. The first match wins; anything unmatched goes to "other",
# so the grid always accounts for every parameter.
EMBEDDING_KINDS = [
    ("word emb", r"word_embeddings\."),
    ("position emb", r"position_embeddings\."),
    ("token-type emb", r"token_type_embeddings\."),
    ("emb LayerNorm", r"(LayerNorm|layer_norm)\."),
    ("emb projection", r"embeddings_project\."),
]
BLOCK_KINDS = [
    ("query", r"(\bquery|q_lin|q_proj)\."),
    ("key", r"(\bkey|k_lin|k_proj)\."),
    ("value", r"(\bvalue|v_lin|v_proj)\."),
    ("attn out", r"(attention\.output\.dense|out_lin|o_proj)\."),
    ("attn LayerNorm", r"(attention\.output\.LayerNorm|sa_layer_norm)\."),
    ("FFN in", r"(intermediate\.dense|ffn\.lin1)\."),
    ("FFN out", r"(^output\.dense|ffn\.lin2)\."),
    ("FFN LayerNorm", r"(^output\.LayerNorm|output_layer_norm)\."),
]
POOLER_KINDS = [("pooler dense", r"dense\.")]
HEAD_KINDS = [
    ("head dense", r"(pre_classifier|classifier\.dense|predictions\.transform\.dense)\."),
    ("classifier", r"(classifier|out_proj|qa_outputs|predictions)\b"),
]
OTHER = "other"
COLUMN_ORDER = [k for kinds in (EMBEDDING_KINDS, BLOCK_KINDS, POOLER_KINDS, HEAD_KINDS) for k, _ in kinds] + [OTHER]


@dataclass(frozen=True)
class Param:
    """One parameter tensor and the grid cell it belongs to."""

    name: str
    row: str
    column: str
    numel: int
    shape: tuple[int, ...] = ()
    # An adapter's parameter (LoRA, (IA)³, ...: `freezelab.methods`): it belongs to the cell of the matrix it adapts.
    adapter: bool = False


def adapter_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Where a model keeps adapter weights: "<module>.<holder>." for every peft tuner layer it holds.

    Read from peft's own marker (a tuner layer lists its adapter holders in `adapter_layer_names`, such as
    `lora_A` or `ia3_l`), so a method peft adds later is found without a name kept here.
    """
    return tuple(f"{name}.{holder}." for name, module in model.named_modules()
                 for holder in getattr(module, "adapter_layer_names", ()) if hasattr(module, holder))


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (qualified name, module list) of the model's stack of transformer blocks.

    The stack is the `nn.ModuleList` holding the most parameters whose
    children are all of one class: `bert.encoder.layer`,
    `distilbert.transformer.layer`, ... found without naming any architecture.
    """
    from torch import nn

    best, best_count = None, -1
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        count = sum(p.numel() for p in module.parameters())
        if count > best_count:
            best, best_count = (name, module), count
    if best is None:
        raise ValueError(f"{type(model).__name__} has no stack of transformer blocks (no nn.ModuleList of identical modules)")
    return best


def _base_prefix(model: nn.Module) -> str:
    """The attribute name of the pre-trained body inside a task model ("bert"), or "" for a bare body."""
    prefix = getattr(model, "base_model_prefix", "")
    return prefix if prefix and hasattr(model, prefix) else ""


def _kind(relative_name: str, kinds: list[tuple[str, str]]) -> str:
    for column, pattern in kinds:
        if re.search(pattern, relative_name):
            return column
    return OTHER


class Anatomy:
    """The static layout of a model's parameters: rows, columns and one cell per parameter.

    Computed once per model (it does not look at `requires_grad`); the
    trainable counts come from `table(frozen)`, so a widget can redraw any
    freezing plan without touching the model.
    """

    def __init__(self, model: nn.Module):
        base = _base_prefix(model)
        blocks_name, blocks = find_blocks(model)
        self.model_class = type(model).__name__
        self.model_type = getattr(getattr(model, "config", None), "model_type", self.model_class)
        self.num_blocks = len(blocks)
        self.blocks_name = blocks_name
        params = []
        adapters = adapter_prefixes(model)
        # named_parameters() skips tied duplicates, as model.num_parameters() does.
        for name, p in model.named_parameters():
            param = self._place(name, p.numel(), base, blocks_name, tuple(p.shape))
            params.append(replace(param, adapter=True) if name.startswith(adapters) else param)
        self.params: tuple[Param, ...] = tuple(params)

    def _place(self, name: str, numel: int, base: str, blocks_name: str, shape: tuple[int, ...]) -> Param:
        if name.startswith(blocks_name + "."):
            index, rest = name[len(blocks_name) + 1 :].split(".", 1)
            return Param(name, f"block {int(index)}", _kind(rest, BLOCK_KINDS), numel, shape)
        in_base = base == "" or name.startswith(base + ".")
        if not in_base:
            return Param(name, HEAD, _kind(name, HEAD_KINDS), numel, shape)
        relative = name[len(base) + 1 :] if base else name
        if "embed" in relative:
            return Param(name, EMBEDDINGS, _kind(relative, EMBEDDING_KINDS), numel, shape)
        if "pooler" in relative:
            return Param(name, POOLER, _kind(relative.split("pooler.", 1)[-1], POOLER_KINDS), numel, shape)
        return Param(name, ENCODER_OTHER, OTHER, numel, shape)

    # --- structure -------------------------------------------------------
    @cached_property
    def rows(self) -> tuple[str, ...]:
        """Row names as data flows: embeddings, block 0 ... block N-1, then pooler and head if present."""
        present = {p.row for p in self.params}
        order = [EMBEDDINGS] + [f"block {i}" for i in range(self.num_blocks)] + [ENCODER_OTHER, POOLER, HEAD]
        return tuple(r for r in order if r in present)

    @cached_property
    def columns(self) -> tuple[str, ...]:
        present = {p.column for p in self.params}
        return tuple(c for c in COLUMN_ORDER if c in present)

    @cached_property
    def signature(self) -> str:
        """What a freezing plan must match to apply: model type, number of blocks, rows present."""
        extras = [r for r in self.rows if not r.startswith("block ") and r != EMBEDDINGS]
        return f"{self.model_type}, {self.num_blocks} blocks" + "".join(f", {r}" for r in extras)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def columns_of(self, row: str) -> tuple[str, ...]:
        present = {p.column for p in self.params if p.row == row}
        return tuple(c for c in self.columns if c in present)

    def names_in(self, row: str | None = None, column: str | None = None) -> list[str]:
        """Parameter names in a row, a column, or one cell."""
        return [p.name for p in self.params if (row is None or p.row == row) and (column is None or p.column == column)]

    @property
    def total(self) -> int:
        return sum(p.numel for p in self.params)

    # --- counts ----------------------------------------------------------
    @cached_property
    def _cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per parameter: row index, column index, size (for fast matrix counts)."""
        rows = {r: i for i, r in enumerate(self.rows)}
        columns = {c: j for j, c in enumerate(self.columns)}
        return (np.array([rows[p.row] for p in self.params]), np.array([columns[p.column] for p in self.params]),
                np.array([p.numel for p in self.params], dtype=np.int64))

    def matrices(self, frozen: set[str] | frozenset[str] = frozenset()) -> tuple[np.ndarray, np.ndarray]:
        """(total, trainable) as rows x columns float arrays; NaN where a cell does not exist.

        The fast path a widget redraws from: no pandas, one pass over the parameters.
        """
        r, c, numel = self._cells
        shape = (len(self.rows), len(self.columns))
        total = np.zeros(shape)
        np.add.at(total, (r, c), numel)
        keep = np.array([p.name not in frozen for p in self.params])
        trainable = np.zeros(shape)
        np.add.at(trainable, (r[keep], c[keep]), numel[keep])
        exists = np.zeros(shape, dtype=bool)
        exists[r, c] = True
        total[~exists] = np.nan
        trainable[~exists] = np.nan
        return total, trainable

    def adapter_matrix(self) -> np.ndarray:
        """Adapter parameters per cell (rows x columns; zeros for a model without adapters). A copy of
        the layout's one count, so a redraw does not walk the parameters again."""
        return self._adapters.copy()

    @cached_property
    def _adapters(self) -> np.ndarray:
        r, c, numel = self._cells
        keep = np.array([p.adapter for p in self.params], dtype=bool)
        counts = np.zeros((len(self.rows), len(self.columns)))
        np.add.at(counts, (r[keep], c[keep]), numel[keep])
        return counts

    def table(self, frozen: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
        """One line per existing cell: row, column, total, trainable, fraction, names.

        `frozen` is the set of frozen parameter names; everything else counts
        as trainable. Cells that do not exist in this architecture are absent.
        """
        lines: dict[tuple[str, str], dict] = {}
        for p in self.params:
            cell = lines.setdefault((p.row, p.column), {"row": p.row, "column": p.column, "total": 0, "trainable": 0, "names": []})
            cell["total"] += p.numel
            cell["trainable"] += 0 if p.name in frozen else p.numel
            cell["names"].append(p.name)
        import pandas as pd

        frame = pd.DataFrame(list(lines.values()), columns=["row", "column", "total", "trainable", "names"])
        frame["fraction"] = frame["trainable"] / frame["total"]
        frame["row"] = pd.Categorical(frame["row"], categories=self.rows, ordered=True)
        frame["column"] = pd.Categorical(frame["column"], categories=self.columns, ordered=True)
        return frame.sort_values(["row", "column"]).reset_index(drop=True)

    def __repr__(self) -> str:
        return f"Anatomy({self.signature}: {self.total:,} parameters in {len(self.rows)} rows x {len(self.columns)} columns)"


ANATOMIES: "weakref.WeakKeyDictionary[nn.Module, Anatomy]" = weakref.WeakKeyDictionary()


def anatomy(model: nn.Module) -> Anatomy:
    """The model's `Anatomy`, computed once per model (the layout of a module does not change; a model whose
    parameter names changed, e.g. by a new head, gets a new one). Kept in `ANATOMIES`, which holds no model alive."""
    cached = ANATOMIES.get(model)
    if cached is None or cached.names != tuple(n for n, _ in model.named_parameters()):
        cached = Anatomy(model)
        ANATOMIES[model] = cached
    return cached


def frozen_names(model: nn.Module) -> frozenset[str]:
    """Names of the parameters that do not require gradients right now."""
    return frozenset(n for n, p in model.named_parameters() if not p.requires_grad)


def parameter_grid(model: nn.Module) -> pd.DataFrame:
    """The anatomy grid of `model` with its current trainable counts (long form, one line per cell)."""
    return anatomy(model).table(frozen_names(model))


def trainable_summary(model: nn.Module) -> pd.DataFrame:
    """Per-row totals: total, trainable and % trainable, plus an "all" line.

    `summary_line(model)` gives the same totals in one line.
    """
    grid = parameter_grid(model)
    rows = grid.groupby("row", observed=True)[["total", "trainable"]].sum()
    rows.loc["all"] = rows.sum()
    rows["% trainable"] = (100 * rows["trainable"] / rows["total"]).round(2)
    rows.index.name = "row"
    return rows


def format_counts(trainable: int, total: int) -> str:
    """The PEFT-style line for given counts (what `summary_line` and the FreezePicker print)."""
    line = f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
    if trainable == 0:
        line += "  (nothing is trainable: training would not change the model)"
    return line


def summary_line(model: nn.Module) -> str:
    """One line, like PEFT's print_trainable_parameters: 'trainable params: 1,538 || all params: ... || trainable%: 0.0014'."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return format_counts(trainable, total)
