"""Tables of sweep results: one row per run, one line per set-up (mean ± std over seeds), comparisons.

For: reading runs (`load(path)`, `shipped(name)` for the exported JSON files
the course ships in `freezelab/precomputed/`, no Optuna needed; live runs come
from `sweeps.run_grid` / `sweeps.results`), choosing a set-up by what it is
(`pick`), summarising over seeds (`summary`, `styled`) and stating a gap
against the seed spread (`compare`). All pandas.

Not for: running anything (`freezelab.sweeps`) or drawing (`freezelab.plots`
holds every figure, the frontier and data-size plots included).
"""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pandas as pd

from .style import METRIC_NAMES


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
    if "sequential" in frame:  # what the second task cost the first (`freezelab.sequential`)
        for key in ("first_before", "first_after", "cost"):
            frame[key] = frame["sequential"].apply(lambda r: r.get(key, np.nan) if isinstance(r, dict) else np.nan)
    return frame


def summary(frame: pd.DataFrame, by=("label",), metrics=("dev_metric", "sts_spearman", "mlm_accuracy", "cka_top",
                                                         "first_before", "first_after", "cost")) -> pd.DataFrame:
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


def against_curve(table: pd.DataFrame, reference: pd.DataFrame, retention: str = "sts_spearman") -> pd.DataFrame:
    """Each set-up of `table` against the learning-forgetting curve the `reference` set-ups trace (rows of
    `summary`; e.g. full fine-tuning at several learning rates, as Biderman et al. 2024 draw it).

    The curve is the reference's best trade-off: its points that no other reference point beats on both axes
    (a learning rate so high that training fails is not on it). `on curve` is the curve's retention at the
    set-up's accuracy, read off straight lines between its points (NaN outside their accuracy range: no curve
    there to be on); `gap` is the set-up's
    retention minus that; `spread` the larger standard deviation over seeds of the set-up and of the two
    reference points around it. The verdict says whether the gap exceeds the spread, as `compare` does.
    """
    kept_col = f"{retention} mean"
    beaten = [((reference["dev_metric mean"] >= r["dev_metric mean"]) & (reference[kept_col] >= r[kept_col])
               & ((reference["dev_metric mean"] > r["dev_metric mean"]) | (reference[kept_col] > r[kept_col]))).any()
              for r in reference.to_dict(orient="records")]
    curve = reference[~np.array(beaten)].sort_values("dev_metric mean")
    x, y = curve["dev_metric mean"].to_numpy(), curve[f"{retention} mean"].to_numpy()
    stds = curve[f"{retention} std"].to_numpy()
    rows = []
    for row in table.to_dict(orient="records"):
        accuracy, kept = row["dev_metric mean"], row[f"{retention} mean"]
        inside = x[0] <= accuracy <= x[-1]
        on_curve = float(np.interp(accuracy, x, y)) if inside else np.nan
        right = min(int(np.searchsorted(x, accuracy)), len(x) - 1)
        spread = np.nanmax([row[f"{retention} std"], stds[max(right - 1, 0)], stds[right]])
        gap = kept - on_curve
        verdict = ("outside the curve's accuracy range" if not inside else
                   f"{'above' if gap > 0 else 'below'} the curve, beyond the seed spread" if abs(gap) > spread else
                   "on the curve (within the seed spread)")
        rows.append({"label": row["label"], "dev_metric mean": accuracy, f"{retention} mean": kept,
                     "on curve": on_curve, "gap": gap, "spread": spread, "verdict": verdict})
    return pd.DataFrame(rows)


def styled(table: pd.DataFrame):
    """The summary as a notebook table: 'mean ± std' per metric, plain column names."""
    shown = pd.DataFrame({"set-up": table["label"]} if "label" in table else {})
    for metric, name in METRIC_NAMES.items():
        if f"{metric} mean" in table:
            shown[name] = [mean_std(row, metric) for row in table.to_dict(orient="records")]
    shown["seeds"] = table["seeds"]
    return shown.style.hide(axis="index")
