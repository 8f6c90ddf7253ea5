"""Every figure of the course, as plain plotly: the anatomy grid and the plots of sweep results.

For: `trainable_heatmap` (colour = trainable fraction of each cell, the picture
behind every freezing decision), `grid_heatmap` (the same drawing for any
per-cell value) and `drift_heatmap` (weight change after training);
`update_trainable` redraws a heatmap in place, which is what the live widget
calls on every click. Then the figures of runs: `frontier_plot` (adaptation
against retention, notebooks 04-05), `data_size_heatmap` / `data_size_lines`
(notebook 06), `cka_plot` and `loss_plot`. Colours and names come from
`freezelab.style`.

Every figure has a text alternative computed from its own data, never typed: `describe(figure)` says in
words what it shows (title, axes with their units, the extremes and the labelled values) and `data_table`
gives its numbers as a table. The figures here are `Figure`s, which show both right under the drawing
wherever they are displayed (JupyterLab, Colab, the course site); `text_alternative_html` is that block.

Not for: widgets and their wiring (`freezelab.widgets`), computing the values
(`freezelab.anatomy`, `freezelab.probes`) or tables (`freezelab.results`).

Cache: `_static_parts` keeps what does not change with the plan for the 16
most recent anatomies (`plots._static_parts.cache_clear()`, or `freezelab.clear_caches()`).
"""

from __future__ import annotations

import html
import math
import re
from functools import lru_cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from torch import nn

from .anatomy import Anatomy, anatomy, frozen_names
from .grids import PLANS, option
from .grids import describe as describe_setup  # a set-up in words; `describe` here is a figure in words
from .results import flatten, summary
from .style import BLACK as BLACK_MARK
from .style import TASK_NAMES
from .style import (METHOD_MARKS, DEPTH_SCALE, DRIFT_SCALE, FROZEN_COLOUR, HALF_COLOUR, LINE_COLOURS, METRIC_NAMES,
                    SCHEDULE_COLOUR, TRAINABLE_COLOUR, TRAINABLE_SCALE)



def percent(part: float, whole: float, digits: int = 2) -> str:
    """'16.28%', with more digits where rounding would print a partial share as 0% or 100%."""
    share = 100 * part / whole
    for d in range(digits, 7):
        text = f"{share:.{d}f}"
        if share in (0, 100) or float(text) not in (0, 100):
            return text + "%"
    return text + "%"


def human(n: float) -> str:
    """23837184 -> '23.8M', 1538 -> '1.5K', 770 -> '770'."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


# --- text alternatives: every figure in words and as a table, from its own data ------------------

def _plain(text) -> str:
    """A plotly label as plain text: tags dropped, <br> a space, entities decoded, spaces collapsed."""
    text = re.sub(r"<br\s*/?>", " ", str(text or ""))
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())


def _number(value) -> str:
    """3 significant digits; thousands with separators (counts of parameters, steps, sentences)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "blank"
    if isinstance(value, str):
        return value
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _axis_title(layout, axis: str, across: str | None = None) -> str:
    """The title of a trace's axis ('x', 'x2', 'y', ...). A y axis without one, in a panel of a faceted figure
    (plotly express's `facet_col`), takes the panel's title written above it; else the axis letter."""
    name = axis[0] + "axis" + axis[1:]
    if name in layout and layout[name].title.text:
        return _plain(layout[name].title.text)
    other = across and across[0] + "axis" + across[1:]
    if other and other in layout and layout[other].domain:
        low, high = layout[other].domain
        above = [a.text for a in layout.annotations if a.text and a.xref == "paper" and a.yref == "paper"
                 and a.y is not None and a.y >= 0.99 and a.x is not None and low <= a.x <= high]
        if len(above) == 1:
            return _plain(above[0])
    return axis[0]


def _values(seq) -> list:
    return [] if seq is None else list(seq)


def _heatmap_words(trace, layout) -> str:
    xs, ys = _values(trace.x), _values(trace.y)
    z = [[None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in row]
         for row in _values(trace.z)]
    cells = [(v, ys[i] if i < len(ys) else i, xs[j] if j < len(xs) else j)
             for i, row in enumerate(z) for j, v in enumerate(row) if v is not None]
    colour = _plain(trace.colorbar.title.text) if trace.colorbar and trace.colorbar.title.text else "value"
    words = (f"A heatmap of {colour} (colour) with {len(ys)} rows, {_axis_title(layout, trace.yaxis or 'y')} "
             f"({ys[0]} to {ys[-1]}), and {len(xs)} columns, {_axis_title(layout, trace.xaxis or 'x')} "
             f"({xs[0]} to {xs[-1]}).")
    if not cells:
        return words + " No cell has a value."
    low, high = min(cells, key=lambda c: c[0]), max(cells, key=lambda c: c[0])
    at_low, at_high = sum(c[0] == low[0] for c in cells), sum(c[0] == high[0] for c in cells)
    words += (f" {colour.capitalize()} runs from {_number(low[0])} ({low[1]}, {low[2]}"
              + (f", and {at_low - 1} more cells" if at_low > 1 else "") + f") to {_number(high[0])} ({high[1]}, "
              f"{high[2]}" + (f", and {at_high - 1} more cells" if at_high > 1 else "") + ").")
    blank = sum(len(row) for row in z) - len(cells)
    return words + (f" {blank} cells are blank: those parts do not exist." if blank else "")


def _short(title: str) -> str:
    """An axis title without its bracketed unit, for the sentences after the one that gives it whole."""
    return title.split(" (")[0]


def _point(name, x, y, xtitle, ytitle) -> str:
    return f"{name} ({_short(xtitle)} {_number(x)}, {_short(ytitle)} {_number(y)})"


def _xy_words(traces, layout) -> str:
    """Scatter, line and bar traces: the points with the highest and lowest values, per line where there are lines."""
    xtitle = _axis_title(layout, traces[0].xaxis or "x")
    ytitle = _axis_title(layout, traces[0].yaxis or "y", across=traces[0].xaxis or "x")
    points = [(_plain(t.name), x, y) for t in traces for x, y in zip(_values(t.x), _values(t.y)) if y is not None]
    if not points:
        return f"{ytitle} against {xtitle}: no points yet."
    kind = "bars" if traces[0].type == "bar" else "points"
    if all(len(_values(t.x)) <= 1 for t in traces):  # one point per trace: a scatter of set-ups
        words = f"{len(points)} {kind}, one per set-up: {xtitle} on x, {ytitle} on y."
        numeric = [p for p in points if not isinstance(p[1], str)]
        if numeric:
            words += (f" Highest {_short(xtitle)}: {_point(*max(numeric, key=lambda p: p[1]), xtitle, ytitle)}; lowest: "
                      f"{_point(*min(numeric, key=lambda p: p[1]), xtitle, ytitle)}.")
        return words + (f" Highest {_short(ytitle)}: {_point(*max(points, key=lambda p: p[2]), xtitle, ytitle)}; lowest: "
                        f"{_point(*min(points, key=lambda p: p[2]), xtitle, ytitle)}.")
    if traces[0].type == "bar" and len(traces) == 1:
        bars = points
        return (f"{len(bars)} bars of {ytitle}, one per {xtitle}. Largest: {bars and max(bars, key=lambda p: p[2])[1]} "
                f"({_number(max(p[2] for p in bars))}); smallest: {min(bars, key=lambda p: p[2])[1]} "
                f"({_number(min(p[2] for p in bars))}).")
    lines = []
    for t in traces:
        xy = [(x, y) for x, y in zip(_values(t.x), _values(t.y)) if y is not None]
        if not xy:
            continue
        low, high = min(xy, key=lambda p: p[1]), max(xy, key=lambda p: p[1])
        lines.append(f"{_plain(t.name) or 'line'}: from {_number(xy[0][1])} at {_number(xy[0][0])} to "
                     f"{_number(xy[-1][1])} at {_number(xy[-1][0])}, lowest {_number(low[1])} at {_number(low[0])}, "
                     f"highest {_number(high[1])} at {_number(high[0])}")
    return (f"{len(lines)} {'bar series' if traces[0].type == 'bar' else 'lines'} of {ytitle} against {xtitle}. "
            + "; ".join(lines) + ".")


def describe(figure: go.Figure) -> str:
    """What a figure shows, in words, from its own data: title, each axis's title (with its unit), the lowest
    and highest values and where they are, the reference lines and labels drawn on it, the notes beside rows.

    Works on any plotly figure (a `FigureWidget` too), so it says what this checkpoint's numbers show; the
    alt text of the course's figures and the live description under the FreezePicker's heatmap.
    """
    layout = figure.layout
    parts = [f"Figure: {_plain(layout.title.text) or 'untitled'}."]
    by_axes: dict[tuple[str, str], list] = {}
    for trace in figure.data:
        if trace.type == "heatmap":
            parts.append(_heatmap_words(trace, layout))
        elif trace.type in ("scatter", "scattergl", "bar") and trace.hoverinfo != "skip":
            by_axes.setdefault((trace.xaxis or "x", trace.yaxis or "y"), []).append(trace)
    for traces in by_axes.values():  # one sentence per panel: a dashboard has two
        bars, others = [t for t in traces if t.type == "bar"], [t for t in traces if t.type != "bar"]
        parts += [_xy_words(group, layout) for group in (bars, others) if group]
    notes = _values(layout.yaxis2.ticktext) if "yaxis2" in layout and layout.yaxis2.tickmode == "array" else []
    if notes:
        rows = _values(layout.yaxis2.tickvals)
        parts.append("Beside the rows: " + "; ".join(f"{r}: {_plain(n)}" for r, n in zip(rows, notes)) + ".")
    labels = [_plain(a.text) for a in layout.annotations if a.text] + [
        _plain(s.label.text) for s in layout.shapes if s.label and s.label.text]
    if labels:
        parts.append("Written on the figure: " + "; ".join(labels) + ".")
    return " ".join(parts)


def data_table(figure: go.Figure, max_rows: int = 40) -> pd.DataFrame:
    """The numbers a figure draws, as a table: a heatmap's grid (rows x columns), else one row per point with
    its series, x, y and error bars. A series longer than `max_rows` is sampled at even steps (first and
    last kept): a loss curve of 600 steps reads as 40."""
    frames = []
    for trace in figure.data:
        if trace.type == "heatmap":
            xs, ys = _values(trace.x), _values(trace.y)
            labels = _values(trace.text) if isinstance(trace.text, (list, tuple)) else []

            def cell(i: int, j: int, v) -> str:  # the value, then what is written in the cell where that differs
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    return ""
                label = _plain(labels[i][j]) if i < len(labels) and j < len(labels[i]) else ""
                return _number(float(v)) + (f" ({label})" if label and label != _number(float(v)) else "")

            grid = pd.DataFrame([[cell(i, j, v) for j, v in enumerate(row)] for i, row in enumerate(_values(trace.z))],
                                index=ys, columns=xs)
            grid.index.name = _axis_title(figure.layout, trace.yaxis or "y")
            notes = figure.layout.yaxis2.ticktext if "yaxis2" in figure.layout else None
            if notes and len(notes) == len(grid):
                grid["beside the row"] = [_plain(n) for n in notes]
            return grid
        if trace.type not in ("scatter", "scattergl", "bar") or trace.hoverinfo == "skip":
            continue
        xs, ys = _values(trace.x), _values(trace.y)
        keep = sorted({round(i * (len(xs) - 1) / (max_rows - 1)) for i in range(max_rows)}) if len(xs) > max_rows \
            else range(len(xs))
        xtitle = _axis_title(figure.layout, trace.xaxis or "x")
        ytitle = _axis_title(figure.layout, trace.yaxis or "y", across=trace.xaxis or "x")
        part = {"series": [_plain(trace.name)] * len(keep), "x: " + xtitle: [_number(xs[i]) for i in keep],
                "y: " + ytitle: [_number(ys[i]) for i in keep]}
        for axis, error in (("x", trace.error_x), ("y", trace.error_y)):
            if error is not None and error.array is not None and len(error.array) == len(xs):
                part[f"± ({axis})"] = [_number(_values(error.array)[i]) for i in keep]
        frames.append(pd.DataFrame(part))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).fillna("")  # panels with other axes: columns of their own


def text_alternative_html(figure: go.Figure) -> str:
    """The block shown under a figure: its description, then its numbers in a table a reader can open."""
    table = data_table(figure)
    caption = html.escape(f"The numbers of: {_plain(figure.layout.title.text) or 'the figure above'}" + (
        "; each cell: its colour's value, then what is written in it" if any(t.type == "heatmap" for t in figure.data)
        else ""))
    body = table.to_html(escape=True, border=0, index=table.index.name is not None, classes="freezelab-data")
    body = re.sub(r"<table[^>]*>", lambda tag: f"{tag.group(0)}<caption>{caption}</caption>", body, count=1)
    return (f"<div class='freezelab-figure-text' role='note' aria-label='text alternative of the figure above'>"
            f"<p><b>In words:</b> {html.escape(describe(figure))}</p>"
            f"<details><summary>The figure as a table</summary>{body}</details></div>")


class Figure(go.Figure):
    """A plotly figure that shows its text alternative (`text_alternative_html`) right under the drawing, so a
    screen-reader user, or anyone, reads what it shows; otherwise a plain `go.Figure`."""

    def _ipython_display_(self):
        from IPython.display import HTML, display

        super()._ipython_display_()
        display(HTML(text_alternative_html(self)))


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

    `added`: LoRA adapter parameters per cell that a method would add (a preview on a model without them);
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
            text += f"<br>base matrix {base[i][j]:,.0f} (frozen) + LoRA adapter {ad:,.0f} (trains)"
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
        title += f" · {adapters.sum():,.0f} in LoRA adapters"
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
    plan, a `FreezePlan` or a `LoRA` (nothing is applied to any model; a LoRA
    plan's adapters are counted in the cells of the matrices they adapt). Hover shows exact counts and the
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
    """The adapter counts a LoRA plan would add to a model that does not hold them yet (None for other plans)."""
    from .lora import LoRA, has_adapters

    return plan.cells(a) if isinstance(plan, LoRA) and not has_adapters(a) else None


def update_trainable(figure: go.Figure, a: Anatomy, frozen: frozenset[str], added: np.ndarray | None = None) -> None:
    """Redraw a `trainable_heatmap` figure in place for another frozen set (one batched message to the browser);
    `added`: the adapter parameters per cell a LoRA plan would add (`LoRA.cells`)."""
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


# --- figures of sweep results (notebooks 04-06) ----------------------------------------------

def _family(row) -> str | None:
    """'bitfit', 'lnorm' or 'lora' for a method beyond freezing layers; None for a layer plan or schedule."""
    return next((f for f in METHOD_MARKS if str(row["plan"]).startswith(f)), None)


def _colour(row) -> str:
    if _family(row):
        return METHOD_MARKS[_family(row)][0]
    if row["schedule"]:
        return SCHEDULE_COLOUR
    return sample_colorscale(DEPTH_SCALE, [row["frozen_blocks"] / row["num_blocks"]])[0]


def _symbol(row) -> str:
    if _family(row):
        return METHOD_MARKS[_family(row)][1] + ("-open" if str(row["plan"]).endswith("-all") else "")
    return "diamond" if row["schedule"] else ("square" if option(row, "layer_decay") else "circle")


# The frontier's drawing area in pixels (width and height less margins and legend), for placing labels.
_PLOT_W, _PLOT_H = 670, 410


def _label_positions(points: list[tuple[float, float, float, float, str]], x_range, y_range) -> list[str]:
    """A textposition per (x, y, x error, y error, text), chosen greedily so that labels overlap neither each
    other nor the markers and error bars."""
    def to_px(x, y):
        return ((x - x_range[0]) / (x_range[1] - x_range[0]) * _PLOT_W,
                (y - y_range[0]) / (y_range[1] - y_range[0]) * _PLOT_H)

    offsets = {"top center": (0, 14), "bottom center": (0, -14), "middle right": (1, 0), "middle left": (-1, 0)}
    taken = []  # (box, weight): labels and markers must not be covered; an error bar under a label is a lesser evil
    for x, y, dx, dy, _ in points:
        (left, bottom), (right, top) = to_px(x - dx, y - dy), to_px(x + dx, y + dy)
        px, py = to_px(x, y)
        taken += [((px - 8, py - 8, px + 8, py + 8), 1.0), ((left, py - 2, right, py + 2), 0.3),
                  ((px - 2, bottom, px + 2, top), 0.3)]

    def box_at(px, py, position, width, height=11):
        dx, dy = offsets[position]
        if dx:  # beside the marker
            left = px + 11 if dx > 0 else px - 11 - width
            return left, py - height / 2, left + width, py + height / 2
        return px - width / 2, py + dy - height / 2, px + width / 2, py + dy + height / 2

    def cost(box):
        inside = 0 <= box[0] and box[2] <= _PLOT_W and 0 <= box[1] and box[3] <= _PLOT_H
        covered = sum(weight * max(0, min(box[2], b[2]) - max(box[0], b[0])) * max(0, min(box[3], b[3]) - max(box[1], b[1]))
                      for b, weight in taken)
        return covered + (0 if inside else 1e4)

    chosen = []
    for x, y, _, _, text in points:
        px, py = to_px(x, y)
        width = 5.2 * len(text)
        best = min(offsets, key=lambda position: cost(box_at(px, py, position, width)))  # ties: the first, on top
        taken.append((box_at(px, py, best, width), 1.0))
        chosen.append(best)
    return chosen


def frontier_plot(frame: pd.DataFrame, retention: str = "sts_spearman", untouched: float | None = None,
                  chance: float | None = None, title: str | None = None) -> go.Figure:
    """The adaptation-retention frontier: x = task dev accuracy, y = retention, one point per set-up.

    Points are means over seeds with ± 1 std error bars; colour = frozen depth (blue all frozen,
    vermillion none, purple a schedule), size = learning rate, diamonds are schedules and squares
    layer-wise lr decay; methods beyond freezing layers have their own marks (`style.METHOD_MARKS`:
    BitFit green x, LayerNorm-only black cross, LoRA orange triangle, open on all linear matrices). `untouched` draws the pre-trained model's retention, `chance` the accuracy of
    always answering the majority class. The corners are labelled with the failure each one shows.
    """
    table = summary(frame, metrics=("dev_metric", retention))
    x, y = table["dev_metric mean"], table[f"{retention} mean"]
    x_range = [min(x.min(), chance or 1) - 0.03, x.max() + 0.04]
    y_range = [y.min() - 0.1, max(y.max(), untouched or 0) + 0.16]  # room above for the corner labels
    rows = table.to_dict(orient="records")
    positions = _label_positions([(r["dev_metric mean"], r[f"{retention} mean"], np.nan_to_num(r["dev_metric std"]),
                                   np.nan_to_num(r[f"{retention} std"]), describe_setup(r, short=True)) for r in rows], x_range, y_range)
    figure = Figure()
    for row, position in zip(rows, positions):
        figure.add_trace(go.Scatter(
            x=[row["dev_metric mean"]], y=[row[f"{retention} mean"]], name=row["label"], mode="markers+text",
            text=[describe_setup(row, short=True)], textposition=position, textfont={"size": 9, "color": "#333"},
            marker={"color": _colour(row), "size": 7 + 3 * math.log10(row["lr"] / 1e-5),
                    "symbol": _symbol(row),
                    "line": {"width": 1, "color": "white"}},
            error_x={"array": [row["dev_metric std"]], "thickness": 1, "width": 3},
            error_y={"array": [row[f"{retention} std"]], "thickness": 1, "width": 3},
            hovertemplate=(f"<b>{row['label']}</b><br>{row['depth']}<br>dev accuracy %{{x:.3f}} ± "
                           f"{row['dev_metric std']:.3f}<br>{METRIC_NAMES.get(retention, retention)} %{{y:.3f}} ± "
                           f"{row[f'{retention} std']:.3f}<br>{row['seeds']} seeds<extra></extra>"),
        ))
    grey = {"color": "#777", "size": 10}
    if untouched is not None:
        figure.add_hline(y=untouched, line={"dash": "dash", "color": "grey", "width": 1})
        figure.add_annotation(x=(chance or x_range[0]) + 0.02, y=untouched, xanchor="left", yanchor="bottom",
                              text=f"untouched model, {METRIC_NAMES.get(retention, retention)}: {untouched:.3f}",
                              showarrow=False, font=grey)
    if chance is not None:
        figure.add_vline(x=chance, line={"dash": "dot", "color": "grey", "width": 1})
        figure.add_annotation(x=chance, y=(y_range[0] + y_range[1]) / 2, xanchor="left", xshift=4, textangle=-90,
                              text=f"majority class: {chance:.3f}", showarrow=False, font=grey)
    corners = [(x_range[0], y_range[1], "left", "top", "<b>under-adaptation</b><br>knowledge kept, task not learned"),
               (x_range[1], y_range[0], "right", "bottom", "<b>forgetting</b><br>task learned, knowledge overwritten"),
               (x_range[0], y_range[0], "left", "bottom", "<b>unstable training</b><br>both lost"),
               (x_range[1], y_range[1], "right", "top", "<b>the goal</b><br>both kept")]
    for cx, cy, xanchor, yanchor, text in corners:
        figure.add_annotation(x=cx, y=cy, xanchor=xanchor, yanchor=yanchor, text=text, showarrow=False,
                              font={"size": 11, "color": "#555"}, align=xanchor, bgcolor="rgba(255,255,255,0.85)")
    name = METRIC_NAMES.get(retention, retention)
    figure.update_layout(
        title=title or "Adaptation versus retention (means over seeds, bars ± 1 std)",
        xaxis={"title": "task dev accuracy (fraction correct)", "range": x_range},
        yaxis={"title": f"retention: {name} (1 = perfect)", "range": y_range},
        legend={"title": {"text": "set-up<br><sup>colour: blue all frozen → vermillion none frozen;"
                                  "<br>purple schedule; size: learning rate" + (
                                      "<br>green x BitFit, black + LayerNorm only,<br>orange ▲ LoRA (open: all linear)"
                                      if any(_family(r) for r in rows) else "") + "</sup>"}, "font": {"size": 10}},
        height=560, width=1000, plot_bgcolor="white", margin={"t": 60, "l": 70, "r": 20, "b": 60},
    )
    figure.update_xaxes(gridcolor="#eee", zeroline=False)
    figure.update_yaxes(gridcolor="#eee", zeroline=False)
    return figure


def data_size_heatmap(frame: pd.DataFrame) -> go.Figure:
    """Dev accuracy (mean ± std over seeds) for each train size (columns) and frozen depth (rows); best per column in bold."""
    table = summary(frame, by=("depth", "train_size"), metrics=("dev_metric",))
    depths = list(table.sort_values("frozen_blocks", ascending=False)["depth"].unique())  # most frozen on top
    sizes = sorted(table["train_size"].unique())
    mean = table.pivot(index="depth", columns="train_size", values="dev_metric mean").loc[depths, sizes]
    std = table.pivot(index="depth", columns="train_size", values="dev_metric std").loc[depths, sizes]
    best = mean.idxmax(axis=0)
    text = [[(f"<b>{mean.loc[d, n]:.3f}</b>" if best[n] == d else f"{mean.loc[d, n]:.3f}") + f"<br>± {std.loc[d, n]:.3f}"
             for n in sizes] for d in depths]
    figure = Figure(go.Heatmap(
        z=mean.values, x=[f"{n:,}" for n in sizes], y=depths, text=text, texttemplate="%{text}",
        colorscale="Blues", colorbar={"title": {"text": "dev accuracy<br>(fraction)"}}, xgap=2, ygap=2,
        hovertemplate="%{y}, %{x} training sentences<br>dev accuracy %{z:.3f}<extra></extra>",
    ))
    figure.update_layout(
        title="Dev accuracy by training-set size and frozen depth (mean ± std over seeds; best per column in bold)",
        xaxis={"title": "training sentences", "type": "category"},
        yaxis={"title": "frozen blocks (and the embeddings, except at 0)", "autorange": "reversed"},
        height=140 + 70 * len(depths), width=900, plot_bgcolor="white",
    )
    return figure


def data_size_lines(frame: pd.DataFrame) -> go.Figure:
    """The same numbers as `data_size_heatmap`, as accuracy-versus-size lines, one per frozen depth, and one per
    method beyond freezing layers (BitFit, LoRA, ...: they freeze no whole block, but are not full fine-tuning)."""
    frame = flatten(frame)
    frame["line"] = [PLANS[r["plan"]][0] if _family(r) else r["depth"] for r in frame.to_dict(orient="records")]
    table = summary(frame, by=("line", "train_size"), metrics=("dev_metric",)).sort_values("train_size")
    figure = Figure()
    for name, part in table.groupby("line", sort=False):
        row = part.iloc[0]
        figure.add_trace(go.Scatter(
            x=part["train_size"], y=part["dev_metric mean"], name=name, mode="lines+markers",
            error_y={"array": part["dev_metric std"], "thickness": 1}, line={"color": _colour(row)},
        ))
    figure.update_layout(title="Dev accuracy versus training-set size (mean ± std over seeds)",
                         xaxis={"title": "training sentences (log scale)", "type": "log"},
                         yaxis={"title": "dev accuracy (fraction correct)"}, height=420, width=900,
                         plot_bgcolor="white", legend={"title": "frozen depth or method"})
    figure.update_xaxes(gridcolor="#eee")
    figure.update_yaxes(gridcolor="#eee")
    return figure


def cka_plot(frame: pd.DataFrame, labels: list[str] | None = None) -> go.Figure:
    """Linear CKA between the pre-trained and the fine-tuned model, per layer (mean over seeds); 1 = unchanged."""
    runs = frame if labels is None else frame[frame["label"].isin(labels)]
    figure = Figure()
    for i, (label, part) in enumerate(runs.groupby("label", sort=False)):
        per_layer = pd.DataFrame(list(part["retention"].apply(lambda r: r["cka"])))
        figure.add_trace(go.Scatter(x=list(per_layer.columns), y=per_layer.mean(), name=label, mode="lines+markers",
                                    line={"color": LINE_COLOURS[i % len(LINE_COLOURS)]},
                                    error_y={"array": per_layer.std().fillna(0), "thickness": 1}))
    figure.update_layout(title="How much each layer's representations changed (linear CKA with the pre-trained model)",
                         xaxis={"title": "layer (data flows left to right)"},
                         yaxis={"title": "linear CKA (1 = unchanged, 0 = unrelated)", "range": [0, 1.05]},
                         height=430, width=900, plot_bgcolor="white", legend={"font": {"size": 10}})
    figure.update_yaxes(gridcolor="#eee")
    return figure


def layer_probe_plot(probes: pd.DataFrame, runs: pd.DataFrame | None = None, title: str = "") -> go.Figure:
    """What a logistic regression reads from each vector of the frozen encoder (`probes.layer_probes`, one row
    per seed and vector: mean ± std over seeds), with trained set-ups of `runs` as dashed lines to compare."""
    stats = probes.groupby("vector", sort=False)["dev accuracy"].agg(["mean", "std"])
    figure = Figure(go.Bar(x=list(stats.index), y=stats["mean"], error_y={"array": stats["std"].fillna(0)},
                           marker_color=FROZEN_COLOUR, name="linear probe on the frozen encoder"))
    if runs is not None:
        for i, (label, part) in enumerate(summary(runs).groupby("label", sort=False)):
            figure.add_hline(y=float(part["dev_metric mean"].iloc[0]), line_dash="dash",
                             line_color=LINE_COLOURS[i % len(LINE_COLOURS)], annotation_text=label,
                             annotation_position="bottom right", annotation_font_size=10)
    figure.update_layout(title=title or "Where the frozen encoder holds the task: a linear probe per layer",
                         xaxis={"title": "vector read from the frozen encoder (mean token vector per layer, then the "
                                         "top layer's [CLS] and pooler)"},
                         yaxis={"title": "dev accuracy (fraction correct)", "range": [0, 1.02]},
                         height=460, width=900, plot_bgcolor="white", showlegend=False)
    figure.update_yaxes(gridcolor="#eee")
    return figure


def loss_plot(frame: pd.DataFrame, labels: list[str], smooth: int = 10, guessing: float | None = math.log(2)) -> go.Figure:
    """Training loss per step for some set-ups, one line per seed (moving average over `smooth` steps).

    `guessing` marks the loss of a model that gives every class the same probability (ln 2 for two classes).
    """
    figure = Figure()
    for j, label in enumerate(labels):
        part = frame[frame["label"] == label]
        colour = LINE_COLOURS[j % len(LINE_COLOURS)]
        for i, run in enumerate(part.to_dict(orient="records")):
            losses = pd.Series(run["losses"]).rolling(smooth, min_periods=1).mean()
            figure.add_trace(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines",
                                        line={"width": 1.5, "color": colour, "dash": "solid" if i == 0 else "dot"},
                                        name=f"{label}, seed {run['seed']}", legendgroup=label))
    if guessing is not None:
        figure.add_hline(y=guessing, line={"dash": "dash", "color": "grey", "width": 1},
                         annotation_text=f"{guessing:.3f}: guessing", annotation_position="top right")
    figure.update_layout(title=f"Training loss (cross-entropy, moving average over {smooth} steps)",
                         xaxis={"title": "training step (batches of 32 sentences)"},
                         yaxis={"title": "loss (nats per sentence)"}, height=420, width=900, plot_bgcolor="white",
                         legend={"font": {"size": 10}})
    figure.update_yaxes(gridcolor="#eee")
    return figure


def sequential_plot(frame: pd.DataFrame, title: str | None = None) -> go.Figure:
    """What B costs A: per set-up of the second task, the first task's dev accuracy lost (bars, ± 1 std over
    seeds) beside the second task's own dev accuracy (diamonds, right axis). From a sweep whose settings name a
    `first_task` (`freezelab.sequential`); set-ups in the order of the sweep."""
    table = summary(frame, metrics=("dev_metric", "cost", "first_before", "first_after"))
    settings = frame.attrs.get("settings", {})
    first, second = (TASK_NAMES.get(settings.get(key), settings.get(key) or default)
                     for key, default in (("first_task", "first task"), ("task", "second task")))
    labels = [describe_setup(r, short=False) for r in table.to_dict(orient="records")]
    colours = [_colour(r) for r in table.to_dict(orient="records")]
    figure = Figure()
    figure.add_trace(go.Bar(
        x=labels, y=100 * table["cost mean"], marker={"color": colours}, name=f"{first} accuracy lost",
        error_y={"array": 100 * table["cost std"].fillna(0), "thickness": 1, "width": 4},
        hovertemplate="<b>%{x}</b><br>" + first + " lost %{y:.1f} points<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=labels, y=table["dev_metric mean"], yaxis="y2", mode="markers", name=f"{second} dev accuracy",
        marker={"symbol": "diamond", "size": 10, "color": BLACK_MARK, "line": {"width": 1, "color": "white"}},
        error_y={"array": table["dev_metric std"].fillna(0), "thickness": 1, "width": 3},
        hovertemplate="<b>%{x}</b><br>" + second + " dev accuracy %{y:.3f}<extra></extra>"))
    before = flatten(frame).groupby("seed")["first_before"].first().mean()  # one first-task model per seed
    figure.update_layout(
        title=title or f"What learning {second} costs {first} ({first} dev accuracy before: {before:.3f}; "
                       f"means over seeds, bars ± 1 std)",
        xaxis={"title": f"how the model learned {second}", "tickangle": -25},
        yaxis={"title": f"{first} dev accuracy lost (percentage points)", "zeroline": True, "zerolinecolor": "#999"},
        yaxis2={"title": f"{second} dev accuracy (fraction correct)", "overlaying": "y", "side": "right",
                "showgrid": False},
        legend={"orientation": "h", "y": 1.08, "x": 0}, height=520, width=1000, plot_bgcolor="white",
        margin={"t": 90, "l": 70, "r": 70, "b": 150},
    )
    figure.update_yaxes(gridcolor="#eee")
    return figure
