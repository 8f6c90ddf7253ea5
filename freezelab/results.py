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
    """An exported sweep (`sweeps.export`) as one row per run; every run checked first (`check_run`), so a
    file that a class filled cannot put markup or nonsense into a notebook: a bad run is an error naming it."""
    with open(path) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or data.get("freezelab_sweep") != 1 or not isinstance(data.get("runs"), list) \
            or not isinstance(data.get("settings"), dict):
        raise ValueError(f"{path} is not an exported freezelab sweep (missing 'freezelab_sweep': 1, 'settings' "
                         "or 'runs')")
    runs = []
    for number, run in enumerate(data["runs"]):
        try:
            runs.append(check_run(run))
        except ValueError as error:
            raise ValueError(f"{path}: run {number} is refused: {error}") from None
    frame = pd.DataFrame(runs)
    frame.attrs["settings"] = data["settings"]  # checkpoint, epochs, probes...: what every run shared
    return frame


# What a run's record may hold (`experiment.RunRecord.to_dict`, and a rehearsal's stand-in): key -> (type,
# lowest, highest). Records written by a class come from students' machines, so each is checked against this
# before it is shown, exported or loaded: known keys only, the right types, values in range.
_NUMBERS = {
    "lr": (float, 0.0, 1.0), "train_size": (int, 1, 10**8), "seed": (int, 0, 2**32), "epochs": (int, 1, 10**4),
    "warmup": (float, 0.0, 1.0), "layer_decay": (float, 0.0, 1.0), "num_blocks": (int, 0, 10**4),
    "frozen_blocks": (int, 0, 10**4), "dev_metric": (float, -1.0, 1.0), "trainable_params": (int, 0, 10**13),
    "total_params": (int, 0, 10**13), "train_time_s": (float, 0.0, 10**8), "examples_per_s": (float, 0.0, 10**10),
    "peak_memory_mb": (float, 0.0, 10**9), "steps": (int, 0, 10**10),
}
_OPTIONAL = ("warmup", "layer_decay", "dev_metric")  # NaN or None: not set (a table's empty cell) or not measured
_FLAGS = ("schedule", "cache_prefix", "rehearsal")
_WORDS = {"metric": ("accuracy", "spearman", "matthews"), "precision": ("fp32", "fp16", "bf16", "tf32"),
          "pooling": ("cls", "mean"), "head_start": ("random", "probe")}
_NAME = r"[A-Za-z0-9 _./()+-]{1,80}"  # a device, a probe's layer name, a task: plain words, never markup


def _number(value, kind, low, high, where, optional=False):
    if optional and (value is None or (isinstance(value, float) and math.isnan(value))):
        return None if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (kind is int and math.isfinite(value) and value != int(value)):
        raise ValueError(f"{where} must be {'a whole number' if kind is int else 'a number'}, got {value!r:.60}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{where} must lie in [{low:g}, {high:g}], got {value!r:.60}")
    return kind(value)


def _name(value, where):
    import re

    if not isinstance(value, str) or not re.fullmatch(_NAME, value):
        raise ValueError(f"{where} must be a plain name (letters, digits, space, _./()+-; up to 80), got {value!r:.60}")
    return value


def _measures(value, where, low=-1e6, high=1e6):
    """A dict of named numbers (a probe's per-layer values)."""
    if not isinstance(value, dict) or len(value) > 10_000:
        raise ValueError(f"{where} must be a table of named numbers")
    return {_name(k, f"{where} key"): _number(v, float, low, high, f"{where}[{k!r:.40}]", optional=True)
            for k, v in value.items()}


def check_run(run: dict) -> dict:
    """`run` checked against what a run's record may hold, with its labels rebuilt from its point; a ValueError
    that names the offending key otherwise. Unknown keys are refused, not dropped: a record that carries them was
    not written by the kit."""
    from .grids import OPTIONS, PLANS, describe

    if not isinstance(run, dict):
        raise ValueError(f"a run is a table of values, got {type(run).__name__}")
    known = set(_NUMBERS) | set(_FLAGS) | set(_WORDS) | {"plan", "label", "plan_label", "device", "losses",
                                                          "evaluations", "retention", "sequential", "interpolation"}
    unknown = sorted(map(str, set(run) - known))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(repr(k[:40]) for k in unknown[:5])}")
    if run.get("plan") not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)}, got {run.get('plan')!r:.60}")
    for key in ("lr", "train_size", "seed"):
        if key not in run:
            raise ValueError(f"{key} is missing")
    clean = {"plan": run["plan"]}
    for key, (kind, low, high) in _NUMBERS.items():
        if key in run:
            clean[key] = _number(run[key], kind, low, high, key, optional=key in _OPTIONAL)
    if clean["lr"] <= 0:
        raise ValueError(f"lr must be > 0, got {run['lr']!r}")
    for key in _FLAGS:
        if key in run:
            if not isinstance(run[key], bool):
                raise ValueError(f"{key} must be true or false, got {run[key]!r:.60}")
            clean[key] = run[key]
    for key, allowed in _WORDS.items():
        value = run.get(key)
        if key in OPTIONS and (value is None or value != value):
            continue  # an option the point did not set: absent, or NaN where a table made every key a column
        if key in run:
            if run[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {run[key]!r:.60}")
            clean[key] = run[key]
    if "device" in run:
        clean["device"] = _name(run["device"], "device")
    if "losses" in run:
        if not isinstance(run["losses"], list) or len(run["losses"]) > 10**6:
            raise ValueError("losses must be a list of numbers")
        clean["losses"] = [_number(x, float, -1e6, 1e6, "a loss", optional=True) for x in run["losses"]]
    if "evaluations" in run:
        if not isinstance(run["evaluations"], list) or len(run["evaluations"]) > 10**5:
            raise ValueError("evaluations must be a list of tables of numbers")
        clean["evaluations"] = [_measures(e, "an evaluation", -1e12, 1e12) for e in run["evaluations"]]
    retention = run.get("retention")
    if retention is not None and not (isinstance(retention, float) and math.isnan(retention)):
        if not isinstance(retention, dict) or set(retention) - {"sts_spearman", "mlm_accuracy", "cka", "weight_drift"}:
            raise ValueError("retention must hold only sts_spearman, mlm_accuracy, cka and weight_drift")
        clean["retention"] = {key: (_measures(value, f"retention {key}") if key in ("cka", "weight_drift")
                                    else _number(value, float, -1.0, 1.0, f"retention {key}", optional=True))
                              for key, value in retention.items()}
    sequential = run.get("sequential")
    if sequential is not None and not (isinstance(sequential, float) and math.isnan(sequential)):
        if not isinstance(sequential, dict) or set(sequential) - {"first_task", "first_lr", "first_before",
                                                                   "first_after", "cost"}:
            raise ValueError("sequential must hold only first_task, first_lr, first_before, first_after and cost")
        clean["sequential"] = {key: (_name(value, "sequential first_task") if key == "first_task" else
                                     _number(value, float, -1.0, 1.0, f"sequential {key}", optional=True))
                               for key, value in sequential.items()}
    walk = run.get("interpolation")
    if walk is not None and not (isinstance(walk, float) and math.isnan(walk)):
        if not isinstance(walk, list) or len(walk) > 101 or any(
                not isinstance(line, dict) or set(line) != {"alpha", "dev_metric", "sts_spearman"} for line in walk):
            raise ValueError("interpolation must be a list of tables of alpha, dev_metric and sts_spearman")
        clean["interpolation"] = [{"alpha": _number(line["alpha"], float, 0.0, 1.0, "interpolation alpha"),
                                   **{key: _number(line[key], float, -1.0, 1.0, f"interpolation {key}", optional=True)
                                      for key in ("dev_metric", "sts_spearman")}} for line in walk]
    # Labels come from the point, never from the record: what a notebook or the teacher's view shows as a
    # set-up's name is the kit's own text.
    point = {key: clean[key] for key in ("plan", "lr", "train_size", "seed")}
    point.update({o: clean[o] for o in OPTIONS if clean.get(o) is not None and clean[o] == clean[o]})
    clean["label"], clean["plan_label"] = describe(point), PLANS[clean["plan"]][0]
    return {**{key: clean[key] for key in run if key in clean}, **clean}  # the record's own key order first


def alpha_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """The walks back towards the pre-trained weights of a sweep made with `SweepSettings(alphas=...)`: one line
    per run and alpha (label "<the run's label> · α 0.70", seed, alpha, dev_metric, sts_spearman, the run's own
    label as `run`), ready for `summary` and `gap`."""
    lines = [{"label": f"{run['label']} · α {line['alpha']:.2f}", "seed": run["seed"], **line, "run": run["label"]}
             for run in frame.to_dict(orient="records") if isinstance(run.get("interpolation"), list)
             for line in run["interpolation"]]
    curves = pd.DataFrame(lines, columns=["label", "seed", "alpha", "dev_metric", "sts_spearman", "run"])
    curves.attrs = dict(frame.attrs)
    return curves


def walk_gains(curves: pd.DataFrame, cost: float = 0.005) -> pd.DataFrame:
    """Per run set-up of `alpha_curves`: the alpha with the most mean STS-B among those whose mean dev score is
    at most `cost` below the fine-tune's own (alpha 1), and what it changes against alpha 1, judged by
    `SPREAD_RULE` (columns run, alpha, dev change, STS-B change, dev and STS-B verdicts as `Gap`s)."""
    table = summary(curves, metrics=("dev_metric", "sts_spearman"))
    table = table.merge(curves.groupby("label")[["run", "alpha"]].first(), left_on="label", right_index=True)
    rows = []
    for run, curve in table.groupby("run", sort=False):
        end = curve[curve["alpha"] == 1.0]
        if end.empty:
            raise ValueError(f"{run!r} has no alpha 1 in its walk: the fine-tune itself is the reference")
        end = end.iloc[0]
        cheap = curve[curve["dev_metric mean"] >= end["dev_metric mean"] - cost]
        best = cheap.loc[cheap["sts_spearman mean"].idxmax()]
        dev, sts = (gap(table, best["label"], end["label"], metric) for metric in ("dev_metric", "sts_spearman"))
        rows.append({"run": run, "alpha": best["alpha"], "dev change": dev.gap, "STS-B change": sts.gap,
                     "dev": dev, "STS-B": sts})
    return pd.DataFrame(rows)


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
    if any(not isinstance(run.get(k), (int, float)) or run[k] != run[k] for k in ("frozen_blocks", "num_blocks")):
        return "not recorded"  # a rehearsal's stand-in record
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
            "warmup", "head_start"]
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
    # escape: a Styler renders its cells as raw HTML otherwise; labels are the kit's own text (check_run), and
    # escaping keeps it so for any frame a notebook passes in
    return shown.style.hide(axis="index").format(escape="html")
