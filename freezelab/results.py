"""Reading sweep results: one line per set-up (mean ± std over seeds) and the course's plots of them.

For: the adaptation-retention frontier (notebooks 04 and 05), the train size x
frozen depth heatmap (notebook 06), CKA-per-layer and loss curves. Input is a
table with one row per run: `sweeps.run_grid` / `sweeps.results` for live
runs, or `load(path)` / `shipped(name)` for the exported JSON files the course
ships in `freezelab/precomputed/` (no Optuna needed to read those).

Not for: running anything (`freezelab.sweeps`) or drawing the anatomy grid
(`freezelab.plots`).
"""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

# Okabe-Ito blue (everything frozen) to vermillion (nothing frozen); reddish purple for schedules.
DEPTH_SCALE = [[0.0, "#D55E00"], [1.0, "#0072B2"]]
SCHEDULE_COLOUR = "#CC79A7"
# Curves of several set-ups at once: the Okabe-Ito palette, colour-blind safe, one colour per set-up.
LINE_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
METRIC_NAMES = {
    "dev_metric": "task dev accuracy",
    "sts_spearman": "STS-B Spearman ρ",
    "mlm_accuracy": "masked-LM accuracy",
    "cka_top": "CKA of the top block",
}


def load(path) -> pd.DataFrame:
    """An exported sweep (`sweeps.export`) as one row per run."""
    with open(path) as handle:
        data = json.load(handle)
    if data.get("freezelab_sweep") != 1:
        raise ValueError(f"{path} is not an exported freezelab sweep (missing 'freezelab_sweep': 1)")
    frame = pd.DataFrame(data["runs"])
    frame.attrs["settings"] = data["settings"]  # checkpoint, epochs, probes...: what every run shared
    return frame


def shipped(name: str) -> pd.DataFrame:
    """A sweep precomputed for the course and shipped inside the package: "frontier" or "data-size".

    Made with `python -m freezelab sweep --preset NAME` then `export` (see `freezelab/precomputed/README.md`).
    """
    folder = resources.files("freezelab") / "precomputed"
    available = sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".json"))
    if name not in available:
        raise ValueError(f"no shipped results named {name!r}; shipped: {', '.join(available) or 'none'}")
    return load(folder / f"{name}.json")


def shipped_for(checkpoint: str, name: str) -> pd.DataFrame | None:
    """The shipped sweep `name` if it was made with `checkpoint`, else None: shipped results are only ever
    drawn against their own model's baseline."""
    from .course import canonical

    frame = shipped(name)
    return frame if canonical(frame.attrs["settings"]["checkpoint"]) == canonical(checkpoint) else None


def pick(frame: pd.DataFrame, plan: str, lr: str | float = "max", **options) -> str:
    """The label of a set-up chosen by what it is, not by its label's text: the `plan` run at the highest
    (lr="max"), the lowest ("min") or a given learning rate, among the runs whose options match (warmup=0.0,
    pooling="mean", ...; None: the option was not set). Notebooks pick this way so that their choices hold
    for any grid and any checkpoint."""
    runs = frame[frame["plan"] == plan]
    for option, value in options.items():
        column = runs[option] if option in runs else pd.Series(np.nan, index=runs.index)
        runs = runs[column.isna()] if value is None else runs[column == value]
    if not isinstance(lr, str):
        runs = runs[np.isclose(runs["lr"], lr)]
    if runs.empty:
        raise ValueError(f"no run of plan {plan!r} at lr {lr!r} with options {options} in this frame")
    return str(runs.loc[runs["lr"].idxmin() if lr == "min" else runs["lr"].idxmax(), "label"])


def depth(run) -> str:
    """'6 of 6 blocks frozen', or 'schedule' for runs whose plan changed during training."""
    if run.get("schedule"):
        return "schedule"
    return f"{int(run['frozen_blocks'])} of {int(run['num_blocks'])} blocks frozen"


def flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs with the nested retention record spread into columns: sts_spearman, cka_top, mlm_accuracy."""
    frame = frame.copy()
    frame["depth"] = [depth(run) for run in frame.to_dict(orient="records")]
    if "retention" in frame:
        retention = frame["retention"].apply(lambda r: r if isinstance(r, dict) else {})
        frame["sts_spearman"] = retention.apply(lambda r: r.get("sts_spearman", np.nan))
        frame["cka_top"] = retention.apply(lambda r: list(r["cka"].values())[-1] if "cka" in r else np.nan)
        if retention.apply(lambda r: "mlm_accuracy" in r).any():
            frame["mlm_accuracy"] = retention.apply(lambda r: r.get("mlm_accuracy", np.nan))
    return frame


def summary(frame: pd.DataFrame, by=("label",), metrics=("dev_metric", "sts_spearman", "mlm_accuracy", "cka_top")
            ) -> pd.DataFrame:
    """Mean, standard deviation (over seeds, ddof=1) and number of seeds of each metric the runs have, per set-up.

    Rows keep the order in which set-ups first appear in the sweep.
    """
    frame = flatten(frame)
    metrics = [m for m in metrics if m in frame]
    by = list(by)
    keys = ["plan", "lr", "train_size", "depth", "frozen_blocks", "num_blocks", "schedule", "pooling", "layer_decay",
            "warmup"]
    first = frame.groupby(by, sort=False)[[k for k in keys if k in frame and k not in by]].first()
    stats = frame.groupby(by, sort=False)[metrics].agg(["mean", "std"])
    stats.columns = [f"{m} {s}" for m, s in stats.columns]
    stats["seeds"] = frame.groupby(by, sort=False)["seed"].nunique()
    return first.join(stats).reset_index()


def mean_std(row: dict, metric: str) -> str:
    """'0.812 ± 0.015' for a row of `summary`; just '0.812' where one seed gives no spread."""
    mean, std = row[f"{metric} mean"], row[f"{metric} std"]
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def compare(table: pd.DataFrame, a: str, b: str, metric: str = "dev_metric") -> str:
    """How set-up `a` compares with `b` on `metric` (rows of `summary`), measured against the seed spread.

    "Beyond the spread" means the gap in means exceeds the larger of the two standard deviations over seeds:
    the rule every comparison in the course's prose follows.
    """
    rows = table.set_index("label")
    gap = rows.loc[a, f"{metric} mean"] - rows.loc[b, f"{metric} mean"]
    stds = rows.loc[a, f"{metric} std"], rows.loc[b, f"{metric} std"]
    spread = max(stds)
    if any(math.isnan(s) for s in stds):
        verdict = "a single seed, so no spread to judge it by"
    elif abs(gap) > spread:
        verdict = f"beyond the seed spread ({abs(gap) / spread:.1f} x the larger standard deviation, {spread:.3f})"
    else:
        verdict = f"within the seed spread (the larger standard deviation is {spread:.3f})"
    return f"{a} minus {b}: {METRIC_NAMES.get(metric, metric)} {gap:+.3f}, {verdict}"


def styled(table: pd.DataFrame):
    """The summary as a notebook table: 'mean ± std' per metric, plain column names."""
    shown = pd.DataFrame({"set-up": table["label"]} if "label" in table else {})
    for metric, name in METRIC_NAMES.items():
        if f"{metric} mean" in table:
            shown[name] = [mean_std(row, metric) for row in table.to_dict(orient="records")]
    shown["seeds"] = table["seeds"]
    return shown.style.hide(axis="index")


def _colour(row) -> str:
    if row["schedule"]:
        return SCHEDULE_COLOUR
    return sample_colorscale(DEPTH_SCALE, [row["frozen_blocks"] / row["num_blocks"]])[0]


def _layer_decay(row) -> bool:
    return pd.notna(row.get("layer_decay"))  # a point's own options are absent (NaN) where it did not set them


def _short(row) -> str:
    """'full · 5e-4', 'head (mean) · 1e-2', 'full · 2e-3 · no warm-up' for labels on the points."""
    text = row["plan"] + (" (mean)" if row.get("pooling") == "mean" else "") + f" · {row['lr']:.0e}".replace("e-0", "e-")
    if _layer_decay(row):
        text += " · layer decay"
    if row.get("warmup") == 0:
        text += " · no warm-up"
    return text


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
    layer-wise lr decay. `untouched` draws the pre-trained model's retention, `chance` the accuracy of
    always answering the majority class. The corners are labelled with the failure each one shows.
    """
    table = summary(frame, metrics=("dev_metric", retention))
    x, y = table["dev_metric mean"], table[f"{retention} mean"]
    x_range = [min(x.min(), chance or 1) - 0.03, x.max() + 0.04]
    y_range = [y.min() - 0.1, max(y.max(), untouched or 0) + 0.16]  # room above for the corner labels
    rows = table.to_dict(orient="records")
    positions = _label_positions([(r["dev_metric mean"], r[f"{retention} mean"], np.nan_to_num(r["dev_metric std"]),
                                   np.nan_to_num(r[f"{retention} std"]), _short(r)) for r in rows], x_range, y_range)
    figure = go.Figure()
    for row, position in zip(rows, positions):
        figure.add_trace(go.Scatter(
            x=[row["dev_metric mean"]], y=[row[f"{retention} mean"]], name=row["label"], mode="markers+text",
            text=[_short(row)], textposition=position, textfont={"size": 9, "color": "#333"},
            marker={"color": _colour(row), "size": 7 + 3 * math.log10(row["lr"] / 1e-5),
                    "symbol": "diamond" if row["schedule"] else ("square" if _layer_decay(row) else "circle"),
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
                                  "<br>purple schedule; size: learning rate</sup>"}, "font": {"size": 10}},
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
    figure = go.Figure(go.Heatmap(
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
    """The same numbers as `data_size_heatmap`, as accuracy-versus-size lines, one per frozen depth."""
    table = summary(frame, by=("depth", "train_size"), metrics=("dev_metric",)).sort_values("train_size")
    figure = go.Figure()
    for name, part in table.groupby("depth", sort=False):
        row = part.iloc[0]
        figure.add_trace(go.Scatter(
            x=part["train_size"], y=part["dev_metric mean"], name=name, mode="lines+markers",
            error_y={"array": part["dev_metric std"], "thickness": 1}, line={"color": _colour(row)},
        ))
    figure.update_layout(title="Dev accuracy versus training-set size (mean ± std over seeds)",
                         xaxis={"title": "training sentences (log scale)", "type": "log"},
                         yaxis={"title": "dev accuracy (fraction correct)"}, height=420, width=900,
                         plot_bgcolor="white", legend={"title": "frozen depth"})
    figure.update_xaxes(gridcolor="#eee")
    figure.update_yaxes(gridcolor="#eee")
    return figure


def cka_plot(frame: pd.DataFrame, labels: list[str] | None = None) -> go.Figure:
    """Linear CKA between the pre-trained and the fine-tuned model, per layer (mean over seeds); 1 = unchanged."""
    runs = frame if labels is None else frame[frame["label"].isin(labels)]
    figure = go.Figure()
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


def loss_plot(frame: pd.DataFrame, labels: list[str], smooth: int = 10, guessing: float | None = math.log(2)) -> go.Figure:
    """Training loss per step for some set-ups, one line per seed (moving average over `smooth` steps).

    `guessing` marks the loss of a model that gives every class the same probability (ln 2 for two classes).
    """
    figure = go.Figure()
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
