"""The anatomy grid's figures, as plain plotly: where a model's parameters are, and which of them train.

For: `trainable_heatmap` (colour = trainable fraction of each cell, the picture
behind every freezing decision), `grid_heatmap` (the same drawing for any
per-cell value) and `drift_heatmap` (weight change after training);
`update_trainable` redraws a heatmap in place, which is what the live widget
calls on every click. Colours and names come from `freezelab.style`. Each figure
is a `freezelab.figure.Figure`: it shows what it draws in words and as a table
(`describe`, `data_table`, re-exported here).

Not for: figures of runs (`freezelab.run_plots`: the frontier, data sizes, probes), widgets and their wiring
(`freezelab.widgets`), or computing the values (`freezelab.anatomy`).

Cache: `_static_parts` keeps what does not change with the plan for the 16
most recent anatomies (`plots._static_parts.cache_clear()`, or `freezelab.clear_caches()`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from torch import nn

from .anatomy import Anatomy, anatomy, frozen_names
from .figure import Figure, data_table, describe, human, percent, text_alternative_html  # noqa: F401 (re-exported)
from .style import DRIFT_SCALE, TRAINABLE_SCALE


@lru_cache(maxsize=16)
def _static_parts(a: Anatomy) -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
    """What does not change with the plan: totals, cell labels, parameter names per cell (cached per anatomy)."""
    total, _ = a.matrices()
    names = [["" for _ in a.columns] for _ in a.rows]
    for p in a.params:
        i, j = a.rows.index(p.row), a.columns.index(p.column)
        names[i][j] += ("<br>" if names[i][j] else "") + p.name
    labels = [["" if np.isnan(t) else human(t) for t in row] for row in total]
    return total, labels, names


def _trainable_parts(a: Anatomy, frozen: frozenset[str], added: np.ndarray | None = None) -> dict:
    """Everything in the trainable heatmap that depends on the plan.

    `added`: adapter parameters per cell that a method would add (a preview on a model without them);
    adapters the model already holds are in the anatomy. A cell with adapters says base and adapter counts.
    """
    base_total, labels, names = _static_parts(a)
    _, trainable = a.matrices(frozen)
    extra = np.zeros_like(base_total) if added is None else added
    total, trainable, adapters = base_total + extra, trainable + extra, a.adapter_matrix() + extra
    base = total - adapters
    # None, not NaN, marks a missing cell: the widget path sends JSON, which has no NaN.
    fraction = [[None if np.isnan(v) else float(v) for v in row] for row in trainable / total]

    def cell_text(i: int, j: int) -> str:
        t, tr, ad = total[i][j], trainable[i][j], adapters[i][j]
        text = f"<b>{a.rows[i]} / {a.columns[j]}</b><br>{tr:,.0f} of {t:,.0f} parameters trainable ({percent(tr, t, 0)})"
        if ad:
            text += f"<br>base matrix {base[i][j]:,.0f} (frozen) + adapter {ad:,.0f} (trains)"
        return text + f"<br><span style='font-size:10px'>{names[i][j]}</span>"

    hover = [["" if np.isnan(total[i][j]) else cell_text(i, j) for j in range(len(a.columns))]
             for i in range(len(a.rows))]
    # A cell with an adapter shows the adapter's size, "+12.3K" (its frozen matrix is in the hover).
    text = [[f"+{human(adapters[i][j])}" if adapters[i][j] else labels[i][j]
             for j in range(len(a.columns))] for i in range(len(a.rows))] if adapters.any() else labels
    row_total, row_trainable = np.nansum(total, axis=1), np.nansum(trainable, axis=1)
    notes = [f"{human(t)} · {percent(tr, t, 0)} trainable" for t, tr in zip(row_total, row_trainable)]
    all_total, all_trainable = row_total.sum(), row_trainable.sum()
    title = f"{all_trainable:,.0f} of {all_total:,.0f} parameters trainable ({percent(all_trainable, all_total)})"
    if adapters.sum():
        title += f" · {adapters.sum():,.0f} in adapters"
    if all_trainable == 0:
        title += " · nothing trains"
    return {"z": fraction, "hover": hover, "notes": notes, "title": title, "text": text}


def grid_heatmap(a: Anatomy, values: np.ndarray, *, title: str, hover: list[list[str]], notes: list[str],
                 colorscale, zmin: float, zmax: float, colorbar: dict, widget: bool = False,
                 labels: list[list[str]] | None = None) -> go.Figure:
    """Draw any rows x columns measure on the anatomy grid (embeddings at the bottom, head at the top).

    `values` is None (or NaN, for plain figures) where a cell does not exist: those cells stay blank.
    `notes` are written beside each row; `hover` is the text of each cell; `labels`, the text in each
    cell, defaults to its parameter count.
    """
    labels = labels or _static_parts(a)[1]
    heatmap = go.Heatmap(
        z=values, x=list(a.columns), y=list(a.rows), zmin=zmin, zmax=zmax, colorscale=colorscale,
        text=labels, texttemplate="%{text}", textfont={"size": 9, "color": "black"}, customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", hoverongaps=False, xgap=2, ygap=2, colorbar=colorbar,
    )
    # The notes beside the rows are the tick labels of a right-hand axis that mirrors the rows:
    # one property to update per redraw (an annotation per row would cost one each).
    anchor = go.Scatter(x=[a.columns[0]] * len(a.rows), y=list(a.rows), yaxis="y2", mode="markers",
                        marker={"opacity": 0}, hoverinfo="skip", showlegend=False)
    figure = (go.FigureWidget if widget else Figure)([heatmap, anchor])
    figure.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        xaxis={"title": "sub-module kind", "tickangle": -40, "side": "bottom", "showgrid": False},
        yaxis={"title": "layer (data flows upward)", "showgrid": False},
        yaxis2={"overlaying": "y", "matches": "y", "side": "right", "tickmode": "array", "tickvals": list(a.rows),
                "ticktext": notes, "showgrid": False, "tickfont": {"size": 10}},
        height=140 + 24 * len(a.rows), width=980, margin={"l": 110, "r": 260, "t": 50, "b": 110},
        plot_bgcolor="white",
    )
    return figure


def trainable_heatmap(model_or_anatomy: nn.Module | Anatomy, plan=None,
                      widget: bool = False) -> go.Figure:
    """The anatomy grid coloured by trainable fraction: blue frozen, orange trainable, grey in between.

    Pass a model (its current `requires_grad` is drawn) or an anatomy with a
    plan, any `freezelab.methods.Method` (a `FreezePlan`, a `LoRA`, ...: nothing is applied to any model;
    a method's adapters are counted in the cells of the matrices they adapt). Hover shows exact counts and the
    parameter names; each row's total is written beside it; the title gives
    the overall count.
    """
    a = model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)
    if plan is not None:
        frozen = plan.frozen_names(a)
    elif isinstance(model_or_anatomy, nn.Module):
        frozen = frozen_names(model_or_anatomy)
    else:
        frozen = frozenset()
    parts = _trainable_parts(a, frozen, _added(a, plan))
    return grid_heatmap(
        a, parts["z"], title=parts["title"], hover=parts["hover"], notes=parts["notes"], labels=parts["text"],
        colorscale=TRAINABLE_SCALE, zmin=0, zmax=1, widget=widget,
        colorbar={"title": {"text": "trainable<br>fraction"}, "tickvals": [0, 0.5, 1],
                  "ticktext": ["0 frozen", "0.5", "1 trainable"], "len": 0.6, "x": 1.22, "xanchor": "left"},
    )


def _added(a: Anatomy, plan) -> np.ndarray | None:
    """The parameters a method would add to a model that does not hold adapters yet (None: it adds none)."""
    from .methods import has_adapters

    return None if plan is None or has_adapters(a) else plan.added(a)


def update_trainable(figure: go.Figure, a: Anatomy, frozen: frozenset[str], added: np.ndarray | None = None) -> None:
    """Redraw a `trainable_heatmap` figure in place for another frozen set (one batched message to the browser);
    `added`: the adapter parameters per cell a method would add (`Method.added`)."""
    parts = _trainable_parts(a, frozen, added)
    with figure.batch_update():
        figure.data[0].z = parts["z"]
        figure.data[0].customdata = parts["hover"]
        figure.data[0].text = parts["text"]
        figure.layout.title.text = parts["title"]
        figure.layout.yaxis2.ticktext = parts["notes"]


def drift_heatmap(model_or_anatomy: nn.Module | Anatomy, drift: dict, title: str = "", zmax: float | None = None) -> go.Figure:
    """Relative weight change ||ΔW|| / ||W|| per cell (from `probes.weight_drift`, or a run's retention record).

    White = unchanged (frozen cells are exactly 0), vermillion = the most change; `zmax` fixes the top of the
    colour scale so that several runs can be compared. Keys are (row, column) pairs or "row/column" strings.
    """
    a = model_or_anatomy if isinstance(model_or_anatomy, Anatomy) else anatomy(model_or_anatomy)
    cells = {tuple(k.split("/", 1)) if isinstance(k, str) else tuple(k): float(v) for k, v in drift.items()}
    total, _, _ = _static_parts(a)
    values = [[None if np.isnan(total[i][j]) else cells.get((row, column)) for j, column in enumerate(a.columns)]
              for i, row in enumerate(a.rows)]
    hover = [[("" if v is None else f"<b>{row} / {column}</b><br>||ΔW|| / ||W|| = {v:.2e}")
              for column, v in zip(a.columns, line)] for row, line in zip(a.rows, values)]
    per_row = {}
    for (row, _), value in cells.items():  # the largest change in each row, written beside it
        per_row[row] = max(per_row.get(row, 0.0), value)
    notes = [f"max {per_row.get(row, 0.0):.1e}" if per_row.get(row, 0.0) > 0 else "unchanged" for row in a.rows]
    top = zmax or max([v for line in values for v in line if v is not None] + [1e-12])
    labels = [["" if v is None else ("0" if v == 0 else f"{v:.2g}") for v in line] for line in values]
    return grid_heatmap(a, values, title=title or "Relative weight change per cell, ||ΔW|| / ||W||", hover=hover,
                        notes=notes, colorscale=DRIFT_SCALE, zmin=0, zmax=top, labels=labels,
                        colorbar={"title": {"text": "||ΔW|| / ||W||<br>(relative)"}, "len": 0.6, "x": 1.22,
                                  "xanchor": "left"})
