"""Figures of runs: what sweeps, probes and sequences of tasks measured, drawn as plain plotly.

For: `frontier_plot` (adaptation against retention, notebooks 04-05 and 07), `data_size_heatmap` /
`data_size_lines` (notebook 06), `layer_probe_plot` and `cka_plot` and `loss_plot` (notebook 04),
`sequential_plot` (notebook 07), `range_test_plot` (a `lr_range.RangeTest`), `alpha_curve_plot` (walks back
towards the pre-trained weights, `results.alpha_curves`; notebook 08) and `advice_plot` (the advisor's
predictions beside what runs measured; notebook 09). Each takes a table of runs
(`sweeps.run_grid`, `results.load`) or a test's curve and returns a `freezelab.figure.Figure`, which shows what it draws in words and as a table. Colours and names come from
`freezelab.style`, and means over seeds from `freezelab.results`.

Not for: the anatomy grid's figures and the picker (`freezelab.plots`, `freezelab.widgets`), or computing
what the runs measured (`freezelab.experiment`, `freezelab.probes`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from .figure import Figure
from .grids import PLANS, option
from .methods import families
from .grids import describe as describe_setup  # a set-up in words
from .results import flatten, summary
from .style import BLACK as BLACK_MARK
from .style import TASK_NAMES
from .style import DEPTH_SCALE, FROZEN_COLOUR, LINE_COLOURS, METHOD_MARKS, METRIC_NAMES, SCHEDULE_COLOUR


def _marks() -> dict[str, tuple[str, str, str]]:
    """(colour, marker, legend words) by grid-key prefix: BitFit, LayerNorm-only and every method family."""
    return {**METHOD_MARKS, **{family.key: family.mark for family in families()}}


def _family(row) -> str | None:
    """The grid-key prefix of a method beyond freezing layers ('bitfit', 'lora', ...); None for a layer plan
    or a schedule."""
    return next((f for f in _marks() if str(row["plan"]).startswith(f)), None)


def _colour(row) -> str:
    if _family(row):
        return _marks()[_family(row)][0]
    if row["schedule"]:
        return SCHEDULE_COLOUR
    return sample_colorscale(DEPTH_SCALE, [row["frozen_blocks"] / row["num_blocks"]])[0]


def _symbol(row) -> str:
    if _family(row):
        return _marks()[_family(row)][1] + ("-open" if str(row["plan"]).endswith("-all") else "")
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
    layer-wise lr decay; methods beyond freezing layers have their own marks (`style.METHOD_MARKS` and each
    method family's `mark`: BitFit green x, LayerNorm-only black cross, LoRA orange triangle, open on all
    linear matrices, ...). `untouched` draws the pre-trained model's retention, `chance` the accuracy of
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
    shown = sorted({_family(r) for r in rows} - {None}, key=list(_marks()).index)  # the legend names marks drawn
    legend = "".join(f"<br>{_marks()[key][2]}" for key in shown)
    name = METRIC_NAMES.get(retention, retention)
    figure.update_layout(
        title=title or "Adaptation versus retention (means over seeds, bars ± 1 std)",
        xaxis={"title": "task dev accuracy (fraction correct)", "range": x_range},
        yaxis={"title": f"retention: {name} (1 = perfect)", "range": y_range},
        legend={"title": {"text": "set-up<br><sup>colour: blue all frozen → vermillion none frozen;"
                                  "<br>purple schedule; size: learning rate" + legend + "</sup>"}, "font": {"size": 10}},
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


def range_test_plot(test) -> go.Figure:
    """A `lr_range.RangeTest`: the smoothed training loss (left axis) and STS-B retention (right axis) against
    the learning rate on a log scale, the retention floor, and where each rule would set the rate."""
    curve = test.curve[test.curve["step"] > 0]
    probed = test.curve.dropna(subset=["sts_spearman"])
    low = float(curve["lr"].iloc[0])
    figure = Figure()
    figure.add_trace(go.Scatter(x=curve["lr"], y=curve["smooth_loss"], mode="lines", name="training loss (smoothed)",
                                line={"color": LINE_COLOURS[0], "width": 2},
                                hovertemplate="lr %{x:.1e}<br>loss %{y:.3f}<extra></extra>"))
    # the untouched model's retention drawn at the first rate, where the ramp starts
    figure.add_trace(go.Scatter(x=[max(x, low) for x in probed["lr"]], y=probed["sts_spearman"], yaxis="y2",
                                mode="lines+markers", name="STS-B retention (Spearman)",
                                line={"color": LINE_COLOURS[1], "width": 2}, marker={"size": 7},
                                hovertemplate="lr %{x:.1e}<br>STS-B Spearman %{y:.3f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=[low, float(curve["lr"].iloc[-1])], y=[test.floor, test.floor], yaxis="y2",
                                mode="lines", name=f"retention floor {test.floor:.3f}",
                                line={"color": LINE_COLOURS[1], "dash": "dash", "width": 1}))
    dashes = {"loss valley": "dot", "steepest loss": "dashdot", "retention floor": "solid"}
    for rule, lr in test.suggestions.items():
        if lr is not None:
            figure.add_vline(x=lr, line={"color": BLACK_MARK, "dash": dashes.get(rule, "dot"), "width": 1},
                             annotation_text=f"{rule}: {lr:.1e}", annotation_textangle=-90,
                             annotation_position="top left", annotation_font_size=10)
    figure.update_layout(
        title=f"Learning-rate range test: {len(curve)} steps, rate rising exponentially",
        xaxis={"title": "learning rate (log scale)", "type": "log", "exponentformat": "power"},
        yaxis={"title": "training loss (nats per sentence, smoothed)"},
        yaxis2={"title": "STS-B retention (Spearman)", "overlaying": "y", "side": "right", "showgrid": False},
        legend={"orientation": "h", "y": -0.2, "x": 0}, height=480, width=900, plot_bgcolor="white")
    figure.update_yaxes(gridcolor="#eee")
    return figure


def alpha_curve_plot(curves: pd.DataFrame, untouched: float | None = None, title: str | None = None) -> go.Figure:
    """Walks back towards the pre-trained weights (`results.alpha_curves`) on the adaptation-retention plane:
    one line per run set-up through its alphas (means over seeds, ± 1 std error bars), alpha written at each
    point; `untouched` draws the pre-trained model's retention."""
    figure = Figure()
    for i, (run, lines) in enumerate(curves.groupby("run", sort=False)):
        table = summary(lines, metrics=("dev_metric", "sts_spearman"))
        table = table.merge(lines.groupby("label")["alpha"].first(), left_on="label", right_index=True)
        table = table.sort_values("alpha")
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        figure.add_trace(go.Scatter(
            x=table["dev_metric mean"], y=table["sts_spearman mean"], name=run, mode="lines+markers+text",
            text=[f"α {a:g}" for a in table["alpha"]], textposition="top left", textfont={"size": 9, "color": colour},
            error_x={"array": table["dev_metric std"].fillna(0), "thickness": 1, "width": 0, "color": colour},
            error_y={"array": table["sts_spearman std"].fillna(0), "thickness": 1, "width": 0, "color": colour},
            line={"color": colour, "width": 2}, marker={"size": 7, "color": colour},
            hovertemplate="%{text}<br>dev accuracy %{x:.3f}<br>STS-B Spearman %{y:.3f}<extra>" + run + "</extra>"))
    if untouched is not None:
        figure.add_hline(y=untouched, line={"color": BLACK_MARK, "dash": "dash", "width": 1},
                         annotation_text=f"untouched model {untouched:.3f}", annotation_position="bottom right")
    figure.update_layout(
        title=title or "Walking fine-tuned weights back towards the pre-trained ones (α = 1: the fine-tune itself)",
        xaxis={"title": "task dev accuracy (share of sentences right)"},
        yaxis={"title": "STS-B retention (Spearman)"},
        legend={"orientation": "h", "y": -0.2, "x": 0}, height=520, width=900, plot_bgcolor="white")
    figure.update_xaxes(gridcolor="#eee")
    figure.update_yaxes(gridcolor="#eee")
    return figure


def advice_plot(predicted: pd.DataFrame, measured: pd.DataFrame | None = None, metric: str = "accuracy",
                floor: float | None = None) -> go.Figure:
    """The advisor's predictions (`Advice.predicted`: each set-up's predicted score and share of STS-B kept, with
    their intervals as a box) and, where `measured` has the set-up (columns setup, score, retention), what a
    run measured, joined to its prediction by a line. `floor` draws the retention floor."""
    figure = Figure()
    measured = measured if measured is not None else pd.DataFrame(columns=["setup", "score", "retention"])
    for i, row in enumerate(predicted.itertuples()):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        figure.add_trace(go.Scatter(
            x=[row.score_low, row.score_high, row.score_high, row.score_low, row.score_low],
            y=[row.retention_low, row.retention_low, row.retention_high, row.retention_high, row.retention_low],
            mode="lines", line={"color": colour, "width": 1, "dash": "dot"}, hoverinfo="skip", showlegend=False,
            name=f"{row.setup}: interval"))
        figure.add_trace(go.Scatter(
            x=[row.score], y=[row.retention], mode="markers", name=row.setup,
            marker={"symbol": "x", "size": 10, "color": colour}, legendgroup=row.setup,
            hovertemplate=f"predicted<br>{metric} %{{x:.3f}}<br>STS-B kept %{{y:.0%}}<extra>{row.setup}</extra>"))
        ran = measured[measured["setup"] == row.setup]
        if not ran.empty:
            got = ran.iloc[0]
            figure.add_trace(go.Scatter(
                x=[row.score, got["score"]], y=[row.retention, got["retention"]], mode="lines+markers",
                name=f"{row.setup}: measured", legendgroup=row.setup, line={"color": colour, "width": 1},
                marker={"size": [0, 11], "color": colour, "line": {"color": "white", "width": 1}},
                hovertemplate=f"measured<br>{metric} %{{x:.3f}}<br>STS-B kept %{{y:.0%}}<extra>{row.setup}</extra>"))
    if floor is not None:
        figure.add_hline(y=floor, line={"color": BLACK_MARK, "dash": "dash", "width": 1},
                         annotation_text=f"retention floor {floor:.0%}", annotation_position="bottom right")
    figure.update_layout(
        title="The advisor's predictions (crosses, 80% intervals dotted) and what runs measured (dots)",
        xaxis={"title": f"task dev {metric} ({'share of sentences right' if metric == 'accuracy' else 'from -1 to 1'})"},
        yaxis={"title": "STS-B kept (share of the untouched model's Spearman)", "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2, "x": 0}, height=560, width=900, plot_bgcolor="white")
    figure.update_xaxes(gridcolor="#eee")
    figure.update_yaxes(gridcolor="#eee")
    return figure
