"""Tables of sweep results: one row per run, one line per set-up (mean ± std over seeds), comparisons.

For: reading runs (`load(path)`, `shipped(name)` for the exported JSON files
the course ships in `freezelab/precomputed/`, no Optuna needed; live runs come
from `sweeps.run_grid` / `sweeps.results`), choosing a set-up by what it is
(`pick`), summarising over seeds (`summary`, `styled`) and stating a gap
against the seed spread by the course's one rule (`SPREAD_RULE`, `gap`, `compare`). All pandas.

Not for: running anything (`freezelab.sweeps`) or drawing (`freezelab.plots`
holds every figure, the frontier and data-size plots included).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
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


def load_probes(path) -> pd.DataFrame:
    """Layer probes written by `python -m freezelab probe-layers` (one row per seed and vector)."""
    with open(path) as handle:
        data = json.load(handle)
    if data.get("freezelab_probes") != 1:
        raise ValueError(f"{path} is not a freezelab probe table (missing 'freezelab_probes': 1)")
    frame = pd.DataFrame(data["rows"])
    frame.attrs["settings"] = {key: data[key] for key in ("task", "checkpoint", "train_size", "dev_size")}
    return frame


def shipped_probes(name: str) -> pd.DataFrame:
    """Layer probes shipped with the course (`freezelab/precomputed/probes/NAME.json`), e.g. "word-order"."""
    folder = resources.files("freezelab") / "precomputed" / "probes"
    available = sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".json"))
    if name not in available:
        raise ValueError(f"no shipped probes named {name!r}; shipped: {', '.join(available) or 'none'}")
    return load_probes(folder / f"{name}.json")


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
    table = first.join(stats).reset_index()
    table.attrs["settings"] = frame.attrs.get("settings")  # what one dev answer is worth (`one_answer`)
    return table


def mean_std(row: dict, metric: str) -> str:
    """'0.812 ± 0.015' for a row of `summary`; just '0.812' where one seed gives no spread."""
    mean, std = row[f"{metric} mean"], row[f"{metric} std"]
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


SPREAD_RULE = (
    "Two set-ups differ beyond the spread when the gap between their means over seeds exceeds the larger of their "
    "two standard deviations (over seeds, ddof=1) by at least one dev answer (1 / the number of dev sentences, for "
    "accuracy; 0.001, the last printed digit, for the other measures). Otherwise they are about equal: the seeds "
    "cannot tell them apart, or the verdict would turn on less than one dev answer. One seed gives no spread and "
    "no verdict; two seeds give a verdict that says it rests on two."
)
ACCURACY_LIKE = ("dev_metric", "first_before", "first_after", "cost")  # scored as a share of dev sentences


def one_answer(table: pd.DataFrame, metric: str = "dev_metric") -> float:
    """What one dev answer is worth in `metric` for the runs of `table` (see `SPREAD_RULE`): 1 / dev sentences
    for accuracy on a known dev split, else 0.001."""
    from .data import DEV_SENTENCES

    from .training import TASK_METRICS

    settings = table.attrs.get("settings") or {}
    task = settings.get("first_task") if metric in ("first_before", "first_after", "cost") else settings.get("task")
    if task in TASK_METRICS:  # scored by a correlation, not a share of sentences
        return 0.001
    sentences = settings.get("dev_size") if metric == "dev_metric" else None
    sentences = sentences or DEV_SENTENCES.get(task)
    return 1 / sentences if metric in ACCURACY_LIKE and sentences else 0.001


def metric_name(table: pd.DataFrame, metric: str) -> str:
    """What `metric` is called for these runs: 'task dev accuracy', or the task's own measure (CoLA: Matthews)."""
    from .training import TASK_METRICS

    task = (table.attrs.get("settings") or {}).get("task")
    if metric == "dev_metric" and task in TASK_METRICS:
        return f"task dev {'Matthews correlation' if TASK_METRICS[task] == 'matthews' else 'Spearman ρ'}"
    return METRIC_NAMES.get(metric, metric)


@dataclass(frozen=True)
class Gap:
    """`a` minus `b` on `metric`, judged by `SPREAD_RULE`."""
    a: str
    b: str
    metric: str
    gap: float      # mean of a minus mean of b
    spread: float   # the larger of the two standard deviations over seeds (NaN: a single seed)
    answer: float   # one dev answer in this metric
    seeds: int      # the fewer seeds of the two set-ups
    name: str = ""  # what the metric is called (`metric_name`)

    @property
    def beyond(self) -> bool:
        return self.seeds >= 2 and abs(self.gap) - self.spread >= self.answer

    @property
    def outcome(self) -> str:
        """'higher' or 'lower' (a than b, beyond the spread), 'about equal', or 'one seed'."""
        if self.seeds < 2:
            return "one seed"
        return ("higher" if self.gap > 0 else "lower") if self.beyond else "about equal"

    def __str__(self) -> str:
        head = f"{self.a} minus {self.b}: {self.name or METRIC_NAMES.get(self.metric, self.metric)} {self.gap:+.3f}"
        if self.seeds < 2:
            return f"{head}, a single seed, so no spread to judge it by"
        measure = f"the larger standard deviation is {self.spread:.3f}, one dev answer {self.answer:.4f}"
        two = "; 2 seeds only" if self.seeds == 2 else ""
        if self.beyond:
            return f"{head}, beyond the seed spread ({measure}{two})"
        return f"{head}, about equal: within the seed spread ({measure}{two})"


def gap(table: pd.DataFrame, a, b, metric: str = "dev_metric") -> Gap:
    """How set-up `a` compares with `b` (rows of `summary`, by label or by the index `table` has) on `metric`."""
    rows = table.set_index("label") if "label" in table.columns else table
    mean, std = rows[f"{metric} mean"], rows[f"{metric} std"]
    seeds = min(int(rows.loc[a, "seeds"]), int(rows.loc[b, "seeds"])) if "seeds" in rows else 2
    if math.isnan(std[a]) or math.isnan(std[b]):
        seeds = 1
    return Gap(str(a), str(b), metric, float(mean[a] - mean[b]), float(max(std[a], std[b])),
               one_answer(table, metric), seeds, metric_name(table, metric))


def compare(table: pd.DataFrame, a: str, b: str, metric: str = "dev_metric") -> str:
    """How set-up `a` compares with `b` on `metric` (rows of `summary`), in words, by `SPREAD_RULE`."""
    return str(gap(table, a, b, metric))


def against_curve(table: pd.DataFrame, reference: pd.DataFrame, retention: str = "sts_spearman") -> pd.DataFrame:
    """Each set-up of `table` against the learning-forgetting curve the `reference` set-ups trace (rows of
    `summary`; e.g. full fine-tuning at several learning rates). Biderman et al. 2024 draw such curves over
    training duration; a curve over learning rates at one duration is another curve, and says nothing of theirs.

    The curve is the reference's best trade-off: its points that no other reference point beats on both axes
    (a learning rate so high that training fails is not on it). `on curve` is the curve's retention at the
    set-up's accuracy, read off straight lines between its points (NaN outside their accuracy range: no curve
    there to be on); `gap` is the set-up's
    retention minus that; `spread` the larger standard deviation over seeds of the set-up and of the two
    reference points around it. The verdict applies `SPREAD_RULE`, as `compare` does.
    """
    kept_col = f"{retention} mean"
    beaten = [((reference["dev_metric mean"] >= r["dev_metric mean"]) & (reference[kept_col] >= r[kept_col])
               & ((reference["dev_metric mean"] > r["dev_metric mean"]) | (reference[kept_col] > r[kept_col]))).any()
              for r in reference.to_dict(orient="records")]
    curve = reference[~np.array(beaten)].sort_values("dev_metric mean")
    x, y = curve["dev_metric mean"].to_numpy(), curve[f"{retention} mean"].to_numpy()
    stds = curve[f"{retention} std"].to_numpy()
    step = one_answer(reference, retention)
    rows = []
    for row in table.to_dict(orient="records"):
        accuracy, kept = row["dev_metric mean"], row[f"{retention} mean"]
        inside = x[0] <= accuracy <= x[-1]
        on_curve = float(np.interp(accuracy, x, y)) if inside else np.nan
        right = min(int(np.searchsorted(x, accuracy)), len(x) - 1)
        spread = np.nanmax([row[f"{retention} std"], stds[max(right - 1, 0)], stds[right]])
        off = kept - on_curve
        verdict = ("outside the curve's accuracy range" if not inside else
                   f"{'above' if off > 0 else 'below'} the curve, beyond the seed spread" if abs(off) - spread >= step
                   else "on the curve (within the seed spread)")
        rows.append({"label": row["label"], "dev_metric mean": accuracy, f"{retention} mean": kept,
                     "on curve": on_curve, "gap": off, "spread": spread, "verdict": verdict})
    return pd.DataFrame(rows)


def styled(table: pd.DataFrame):
    """The summary as a notebook table: 'mean ± std' per metric, plain column names."""
    shown = pd.DataFrame({"set-up": table["label"]} if "label" in table else {})
    for metric, name in METRIC_NAMES.items():
        if f"{metric} mean" in table:
            shown[name] = [mean_std(row, metric) for row in table.to_dict(orient="records")]
    shown["seeds"] = table["seeds"]
    return shown.style.hide(axis="index")
