"""A plotly figure that says what it shows: in words and as a table, computed from its own data.

For: `Figure` (a `go.Figure` that shows its text alternative right under the drawing, wherever it is displayed:
JupyterLab, Colab, the course site), `describe(figure)` (title, axes with their units, the extremes and the
labelled values, in sentences), `data_table(figure)` (its numbers), `text_alternative_html` (the block under a
`Figure`), and the number formats every figure uses (`percent`, `human`). Every figure of the kit is built on it:
the anatomy grid's (`freezelab.plots`) and the runs' (`freezelab.run_plots`).

Not for: drawing any particular figure, or choosing colours (`freezelab.style`).
"""

from __future__ import annotations

import html
import math
import re

import pandas as pd
import plotly.graph_objects as go


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
