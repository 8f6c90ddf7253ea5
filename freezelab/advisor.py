"""What should I freeze for my data? Predicted score and retention of each set-up, with intervals its own
leave-one-task-out validation sets.

For: `advise(data, retention_floor=..., minutes=..., memory_mb=...)` (a course task or your own CSV/TSV; the
same arguments as `load_task`) returns an `Advice`: the advisor's set-ups ranked, each with a predicted dev
score and STS-B retention (80% intervals), its predicted training time and peak memory on this machine, the
recommended set-up ready for `fine_tune`, the signals it read and what they cost, and how well the advisor did
on tasks it never saw (`validate`), with every target it misses named.

How it predicts: it reads one cheap signal from your data, the dev score of a logistic regression on the frozen
model's mean token vectors (`signals`), and carries over, set-up by set-up, what the reference tasks measured:
each set-up's gain over that frozen probe, as a share of the room left above it (`MODELS` has the simpler
rules it is validated against), and its retention. The reference runs are the same eight set-ups, 3 seeds each,
on 2,000 sentences of four tasks (`grids.advisor_points`, shipped in `precomputed/advisor/`).

Not for: training (`freezelab.training`), sweeping (`freezelab.sweeps`), or any checkpoint but the course's
MiniLM-L6: its reference runs are MiniLM-L6's, and it refuses to guess for another model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from .grids import ADVISOR_TASKS, PLANS, SWEEP_TRAINING, advisor_points, describe

CHECKPOINT = "minilm-l6"  # the reference runs' model
LEVEL = 0.8  # the intervals' nominal coverage
TARGETS = {"regret": (1.0, 0.8), "coverage": 0.75}  # regret <= 1 seed std on >= 80% of tasks; >= 75% covered
# The fixed rules a user would otherwise follow, by the advisor's set-up they are. LP-FT trains the head on frozen
# features first, then everything: the shape of fastai's `fine_tune(freeze_epochs=1)`, not its learning rates.
DEFAULTS = {
    "full fine-tuning at 2e-5": {"plan": "full", "lr": 2e-5},
    "bottom half frozen": {"plan": "half", "lr": 1e-4},
    "head only": {"plan": "head", "lr": 1e-2, "pooling": "mean"},
    "head first, then all (fastai's shape)": {"plan": "full", "lr": 1e-4, "head_start": "probe"},
}


def setups() -> list[dict]:
    """The advisor's set-ups: the reference grid's points without a seed or a size."""
    return [{k: v for k, v in p.items() if k not in ("seed", "train_size")} for p in advisor_points(seeds=(0,))]


def describe_setup(point: dict) -> str:
    """A set-up's label, as the reference runs and `Advice` name it."""
    return describe({**point, "train_size": 0, "seed": 0})


# --- signals: what the advisor reads from your data ------------------------------------------------------------

@dataclass(frozen=True)
class Signals:
    """What the advisor read from one task's data, and what reading it cost."""
    task: str
    metric: str          # the task's dev measure: "accuracy", or "matthews" (CoLA)
    frozen_probe: float  # the dev score of a logistic regression on the frozen model's mean token vectors
    chance: float        # the dev score of always answering the training set's most common class
    train_size: int      # training sentences the task has
    probe_size: int      # of them, the probe read this many
    dev_size: int
    classes: int
    seconds: float       # the whole signal pass: model, features, fit
    sentences_per_s: float  # the frozen forward pass's speed on this machine

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _score(predicted: np.ndarray, labels: np.ndarray, metric: str) -> float:
    from .training import matthews

    return matthews(predicted, labels) if metric == "matthews" else float((predicted == labels).mean())


def signals(data, task: str = "your data", *, probe_size: int = 2000, dev_size: int = 1000,
            checkpoint: str = CHECKPOINT) -> Signals:
    """Read the advisor's signals from `data` (a DatasetDict with train and dev splits, as `load_task` returns).

    probe_size / dev_size: the most training and dev sentences the frozen probe reads (a seeded subset; the
    reference tasks were read with 2,000 and 1,000).
    """
    import torch

    from .data import subset
    from .head_start import fit_logistic
    from .models import load_model
    from .probes import sentence_features
    from .training import TASK_METRICS

    start = time.perf_counter()
    labels = np.asarray(data["train"]["label"])
    if labels.dtype.kind == "f":
        raise ValueError("the advisor covers classification tasks; this data has numeric (regression) labels")
    classes = int(max(labels.max(), np.max(data["dev"]["label"]))) + 1
    metric = TASK_METRICS.get(task, "accuracy")
    train_n, dev_n = min(probe_size, len(data["train"])), min(dev_size, len(data["dev"]))
    read = subset({"train": data["train"], "dev": data["dev"]}, train_n, dev_n, seed=0)
    text = "text" if "text" in read["train"].column_names else "sentence"
    model, tokenizer = load_model(checkpoint, num_labels=classes)
    forward = time.perf_counter()
    train_x = sentence_features(model, tokenizer, list(read["train"][text]))
    dev_x = sentence_features(model, tokenizer, list(read["dev"][text]))
    speed = (train_n + dev_n) / (time.perf_counter() - forward)
    del model
    train_y, dev_y = np.asarray(read["train"]["label"]), np.asarray(read["dev"]["label"])
    head = fit_logistic(train_x, train_y, classes=classes)
    with torch.no_grad():
        predicted = head(dev_x.float()).argmax(1).numpy()
    common = np.bincount(train_y, minlength=classes).argmax()
    return Signals(task=task, metric=metric, frozen_probe=_score(predicted, dev_y, metric),
                   chance=_score(np.full_like(dev_y, common), dev_y, metric), train_size=len(data["train"]),
                   probe_size=train_n, dev_size=dev_n, classes=classes,
                   seconds=time.perf_counter() - start, sentences_per_s=speed)


# --- the reference: what the kit measured ----------------------------------------------------------------------

def _shipped():
    return resources.files("freezelab") / "precomputed" / "advisor"


def reference_signals() -> dict[str, Signals]:
    """The reference tasks' signals as `python -m freezelab advise --reference-signals` wrote them."""
    with open(_shipped() / "signals.json") as handle:
        stored = json.load(handle)
    if stored.get("freezelab_advisor_signals") != 1:
        raise ValueError("precomputed/advisor/signals.json is not a freezelab advisor signal table")
    return {row["task"]: Signals(**row) for row in stored["signals"]}


def reference() -> pd.DataFrame:
    """One row per reference task and set-up: mean dev score and its variance over seeds, STS-B retention (the
    share of the frozen model's STS-B Spearman kept) and its variance, and seconds per step (on a 2-core CPU, in
    the kit's default micro-batches; NaN for runs made in whole batches). Peak memory is `reference_memory`'s."""
    from .results import flatten, load

    rows = []
    labels = {describe_setup(p): p for p in setups()}
    for task in ADVISOR_TASKS:
        runs = flatten(load(_shipped() / f"{task}.json"))
        # Timed the way a CPU trains by default (micro-batches), not in whole batches as the frontier was made.
        timed = runs.attrs["settings"].get("micro_batch_size") is not None
        runs = runs[runs["label"].isin(labels)]
        before = runs.loc[runs["plan"] == "head", "sts_spearman"].mean()  # the head alone leaves the encoder as it was
        for label, group in runs.groupby("label", sort=False):
            rows.append({"task": task, "setup": label, "score": group["dev_metric"].mean(),
                         "score_var": group["dev_metric"].var(ddof=1), "retention": (group["sts_spearman"] / before).mean(),
                         "retention_var": (group["sts_spearman"] / before).var(ddof=1), "seeds": len(group),
                         "s_per_step": (group["train_time_s"] / group["steps"]).median() if timed else np.nan,
                         "metric": group["metric"].iloc[0]})
    return pd.DataFrame(rows)


def measure_memory(label: str, sentences: int = 256) -> float:
    """The peak resident memory (MB) of this process after training set-up `label` on `sentences` SST-2
    sentences for one epoch, as a CPU trains by default. A process's peak only grows, so the reference sweeps'
    records (one worker, many runs) cannot give a set-up's own: call this in a fresh process for each set-up
    (`python -m freezelab advise --reference-memory OUT` does). Memory does not grow with the data's size: the
    batches, the micro-batches and the sentence length (64 tokens at most) are the same."""
    import resource

    from .data import load_task
    from .models import load_model
    from .training import fine_tune

    point = _point(label)
    model, tokenizer = load_model(CHECKPOINT, num_labels=2, pooling=point.get("pooling", "cls"))
    setup = _recommendation(label, 2, 1, model)  # the plan built on this model: no second model in the peak
    fine_tune(model, tokenizer, load_task("sst2", train_size=sentences, dev_size=32), setup.config, plan=setup.plan)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_memory() -> dict[str, float]:
    """Each set-up's peak resident MB, measured in a fresh process (`measure_memory`), as shipped."""
    with open(_shipped() / "memory.json") as handle:
        stored = json.load(handle)
    if stored.get("freezelab_advisor_memory") != 1:
        raise ValueError("precomputed/advisor/memory.json is not a freezelab advisor memory table")
    return stored["peak_mb"]


# --- the predictor -------------------------------------------------------------------------------------------

# How a set-up's score on a new task is carried over from the reference tasks: rule(signals) -> (anchor, scale),
# and the prediction is anchor + scale * (mean over reference tasks of (score - anchor) / scale).
MODELS = {
    "probe + headroom": lambda s: (s.frozen_probe, max(1.0 - s.frozen_probe, 1e-6)),  # a share of the room left
    "probe": lambda s: (s.frozen_probe, 1.0),   # the same gain over the frozen probe
    "label balance": lambda s: (s.chance, 1.0),  # the same gain over always answering the common class
}
MODEL = "probe + headroom"


def _t(n: int) -> float:
    """The two-sided `LEVEL` quantile of Student's t for a prediction from n reference tasks."""
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df=max(n - 1, 1)))


def predict(table: pd.DataFrame, known: dict[str, Signals], new: Signals, model: str = MODEL) -> pd.DataFrame:
    """Each set-up's predicted score and retention on the `new` task, from the reference rows of `table` (tasks
    in `known`), with `LEVEL` intervals: the reference tasks' spread (as a prediction for one more task) plus
    the seeds' spread."""
    rule = MODELS[model]
    rows = []
    for setup, group in table[table["task"].isin(known)].groupby("setup", sort=False):
        signs = [known[task] for task in group["task"]]
        anchors = np.array([rule(s) for s in signs])
        gains = (group["score"].to_numpy() - anchors[:, 0]) / anchors[:, 1]
        anchor, scale = rule(new)
        n, z = len(group), _t(len(group))
        spread = math.sqrt((gains.var(ddof=1) if n > 1 else np.nan) * scale ** 2 * (1 + 1 / n)
                           + group["score_var"].mean())
        kept = group["retention"].to_numpy()
        kept_spread = math.sqrt((kept.var(ddof=1) if n > 1 else np.nan) * (1 + 1 / n) + group["retention_var"].mean())
        score = anchor + scale * gains.mean()
        retention = kept.mean()
        lowest = -1.0 if new.metric == "matthews" else 0.0  # no interval runs past what the measure can be
        rows.append({"setup": setup, "score": score, "score_low": max(score - z * spread, lowest),
                     "score_high": min(score + z * spread, 1.0), "retention": retention,
                     "retention_low": max(retention - z * kept_spread, 0.0),
                     "retention_high": min(retention + z * kept_spread, 1.0),  # the untouched model's, at most
                     "s_per_step": group["s_per_step"].median(), "tasks": n})
    return pd.DataFrame(rows)


def choose(predicted: pd.DataFrame, retention_floor: float | None = None) -> str:
    """The set-up with the highest predicted score among those predicted to keep `retention_floor` of the
    frozen model's STS-B; where none is, the one predicted to keep the most."""
    floor = -np.inf if retention_floor is None else retention_floor
    meets = predicted[predicted["retention"] >= floor]
    if meets.empty:
        return str(predicted.loc[predicted["retention"].idxmax(), "setup"])
    return str(meets.loc[meets["score"].idxmax(), "setup"])


# --- validation: leave one task out --------------------------------------------------------------------------

def _best(measured: pd.DataFrame, floor: float | None) -> pd.Series:
    floor = -np.inf if floor is None else floor
    meets = measured[measured["retention"] >= floor]
    return (meets if not meets.empty else measured).sort_values("score").iloc[-1]


def validate(retention_floor: float | None = None, model: str = MODEL, table: pd.DataFrame | None = None,
             known: dict[str, Signals] | None = None) -> pd.DataFrame:
    """Leave one task out: for each reference task, advise from the other tasks alone and score the advice on
    the task's measured runs. One row per held-out task: the advised set-up, its regret (the best set-up that
    meets the floor minus the advised one, in the task's seed standard deviations, pooled over set-ups; 0 is
    perfect), whether it broke the floor, how many of the set-ups' measured score and retention fell inside the
    intervals, and each of `DEFAULTS`' regret."""
    table = reference() if table is None else table
    known = reference_signals() if known is None else known
    labels = {name: describe_setup(point) for name, point in DEFAULTS.items()}
    floor = -np.inf if retention_floor is None else retention_floor
    rows = []
    for task in [t for t in ADVISOR_TASKS if t in known]:
        measured = table[table["task"] == task].set_index("setup", drop=False)
        others = {t: s for t, s in known.items() if t != task}
        predicted = predict(table, others, known[task], model).set_index("setup")
        sd = math.sqrt(measured["score_var"].mean())
        best = _best(measured, retention_floor)
        advised = choose(predicted.reset_index(), retention_floor)
        both = predicted.join(measured[["score", "retention"]].add_suffix("_measured"))
        row = {"task": task, "advised": advised, "best": best["setup"], "seed sd": sd,
               "regret": (best["score"] - measured.loc[advised, "score"]) / sd,
               "broke floor": bool(measured.loc[advised, "retention"] < floor),
               "score covered": float(both["score_measured"].between(both["score_low"], both["score_high"]).mean()),
               "retention covered": float(both["retention_measured"].between(both["retention_low"],
                                                                             both["retention_high"]).mean())}
        for name, label in labels.items():
            row[f"{name}: regret"] = (best["score"] - measured.loc[label, "score"]) / sd
            row[f"{name}: broke floor"] = bool(measured.loc[label, "retention"] < floor)
        rows.append(row)
    return pd.DataFrame(rows)


def compare_models(retention_floor: float | None = None) -> pd.DataFrame:
    """Which signals carry weight: each rule of `MODELS` validated the same way (one row each: mean regret, the
    share of held-out tasks within one seed standard deviation, the intervals' coverage). `MODEL` was chosen
    before the reference runs existed, not from this table."""
    table, known = reference(), reference_signals()
    rows = []
    for model in MODELS:
        check = validate(retention_floor, model, table, known)
        rows.append({"rule": model, "mean regret": check["regret"].mean(),
                     "tasks at most 1 sd": float((check["regret"] <= TARGETS["regret"][0]).mean()),
                     "score covered": check["score covered"].mean(), "floor broken": int(check["broke floor"].sum())})
    return pd.DataFrame(rows)


def verdicts(validation: pd.DataFrame) -> list[str]:
    """Each of the advisor's targets, met or not, in a sentence computed from `validation` (one floor's rows)."""
    limit, share = TARGETS["regret"]
    within = float((validation["regret"] <= limit).mean())
    covered = float(pd.concat([validation["score covered"], validation["retention covered"]]).mean())
    ours, ours_broke = validation["regret"].mean(), int(validation["broke floor"].sum())
    lines = [f"regret within {limit:g} seed standard deviation on {within:.0%} of held-out tasks "
             f"(target {share:.0%}): {'met' if within >= share else 'NOT met'}",
             f"{LEVEL:.0%} intervals covered {covered:.0%} of measured points (target {TARGETS['coverage']:.0%}): "
             f"{'met' if covered >= TARGETS['coverage'] else 'NOT met'}"]
    for name in DEFAULTS:
        # Better: no worse on both counts and ahead on one. A rule that breaks the floor can score above every
        # set-up that keeps it (a negative regret), so its regret alone would flatter it.
        theirs, broke = validation[f"{name}: regret"].mean(), int(validation[f"{name}: broke floor"].sum())
        better = ours <= theirs and ours_broke <= broke and (ours < theirs or ours_broke < broke)
        lines.append(f"mean regret {ours:.2f} against {theirs:.2f} for {name}, floor broken on {ours_broke} against "
                     f"{broke} of {len(validation)} tasks: {'better' if better else 'NOT better'}")
    return lines


# --- advice ----------------------------------------------------------------------------------------------------

@dataclass
class Recommendation:
    """A set-up ready for `fine_tune`: `model, tokenizer = load_model("minilm-l6", num_labels, pooling=r.pooling)`,
    then `fine_tune(model, tokenizer, data, r.config, plan=r.plan)`. The plan is a `FreezePlan` (or `LoRA`),
    editable like any other; the config the reference runs' settings at this set-up's rate and options."""
    label: str
    point: dict
    plan: object
    config: object

    @property
    def pooling(self) -> str:
        return self.point.get("pooling", "cls")

    def to_dict(self) -> dict:
        return {"setup": self.label, "checkpoint": CHECKPOINT, "pooling": self.pooling,
                "plan": self.plan.to_dict(), "config": self.config.to_dict()}


@dataclass(repr=False)
class Advice:
    """What `advise` returns. `predicted`: one row per set-up, best first (those that meet every constraint,
    then the rest, with the reason), in numbers; `table` the same in words, to read; `recommended` (None where
    no set-up meets every constraint) and `setup(label)` for any other row; `signals`; `validation` (leave one
    task out at this floor) and `verdicts` (its targets, met or not); `warnings`: where your data lies outside
    what was validated."""
    predicted: pd.DataFrame
    recommended: Recommendation | None
    signals: Signals
    validation: pd.DataFrame
    verdicts: list[str]
    warnings: list[str] = field(default_factory=list)
    epochs: int = 2

    @property
    def table(self) -> pd.DataFrame:
        return _format(self.predicted, self.signals.metric)

    def setup(self, label: str) -> Recommendation:
        """Any set-up of the table, ready for `fine_tune` like the recommended one."""
        return _recommendation(label, self.signals.classes, self.epochs)

    def __str__(self) -> str:
        shown = self.table
        lines = [f"Advice for {self.signals.task} ({self.signals.train_size} training sentences; signals read in "
                 f"{self.signals.seconds:.0f} s: frozen probe {self.signals.frozen_probe:.3f}, always the common "
                 f"class {self.signals.chance:.3f}, {self.signals.metric})", shown.to_string(index=False), ""]
        lines += [f"Recommended: {self.recommended.label}" if self.recommended else
                  "No set-up is predicted to meet every constraint."]
        lines += ["", "How this advisor did on tasks it never saw (leave one task out):"]
        lines += [f"- {line}" for line in self.verdicts]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from html import escape

        s = self.signals
        head = (f"<p><b>Advice for {escape(s.task)}</b> ({s.train_size:,} training sentences). Signals read in "
                f"{s.seconds:.0f} s: frozen probe {s.frozen_probe:.3f}, always the common class {s.chance:.3f} "
                f"({escape(s.metric)}).</p>")
        chosen = (f"<p><b>Recommended:</b> {escape(self.recommended.label)}</p>" if self.recommended else
                  "<p><b>No set-up is predicted to meet every constraint.</b></p>")
        record = "".join(f"<li>{escape(line)}</li>" for line in self.verdicts)
        warned = "".join(f"<p><b>Warning:</b> {escape(w)}</p>" for w in self.warnings)
        return (head + self.table.to_html(index=False, escape=True) + chosen
                + f"<p>How this advisor did on tasks it never saw (leave one task out):</p><ul>{record}</ul>" + warned)


def _point(label: str) -> dict:
    points = {describe_setup(p): p for p in setups()}
    if label not in points:
        raise ValueError(f"no set-up {label!r}; the advisor's set-ups: {'; '.join(points)}")
    return points[label]


def _recommendation(label: str, classes: int, epochs: int, model=None) -> Recommendation:
    """The set-up `label` as the reference runs trained it (`SweepSettings.config`: their settings, then the
    point's rate and options), on the whole training split; its plan built on `model`, or on the course
    model's anatomy."""
    from .grids import SweepSettings

    point = _point(label)
    config = SweepSettings(epochs=epochs).config({**point, "train_size": None, "seed": 0})
    where = model if model is not None else _anatomy(classes, point.get("pooling", "cls"))
    return Recommendation(label, point, PLANS[point["plan"]][1](where, epochs), config)


@lru_cache(maxsize=4)
def _anatomy(classes: int, pooling: str):
    """The course model's anatomy (from its architecture: no weights are read), to build a plan on; once per
    head size and pooling, since every set-up's plan is built on the same one."""
    from .anatomy import anatomy
    from .models import load_model

    return anatomy(load_model(CHECKPOINT, num_labels=classes, random_weights=True, pooling=pooling)[0])


def _format(predicted: pd.DataFrame, metric: str) -> pd.DataFrame:
    table = pd.DataFrame({
        "set-up": predicted["setup"],
        f"predicted {metric}": [f"{s:.3f} ({lo:.3f} to {hi:.3f})" for s, lo, hi in
                                predicted[["score", "score_low", "score_high"]].to_numpy()],
        "predicted STS-B kept": [f"{s:.0%} ({lo:.0%} to {hi:.0%})" for s, lo, hi in
                                 predicted[["retention", "retention_low", "retention_high"]].to_numpy()],
        "minutes": predicted["minutes"].round(1), "peak MB": predicted["peak_memory_mb"].round(-1).astype(int),
        "meets": predicted["meets"], "why not": predicted["why not"]})
    return table


def advise(data=None, *, task: str | None = None, path=None, text_column=None, label_column=None,
           train_size: int | None = None, retention_floor: float | None = None, minutes: float | None = None,
           memory_mb: float | None = None, epochs: int | None = None, probe_size: int = 2000,
           checkpoint: str = CHECKPOINT) -> Advice:
    """Which set-up to train on `data`: a course task name ("sst2", "subj", "cola", "word-order"), a DatasetDict
    from `load_task`, or your own file (`path=`, `text_column=`, `label_column=`, as `load_task` takes them).

    retention_floor: the share of the frozen model's STS-B Spearman a set-up must be predicted to keep (0.8:
        80%); minutes / memory_mb: the most predicted training time and peak memory (on this machine's CPU).
    task: the name your data goes by in the output (a DatasetDict's; a course task's name is its own).
    train_size: train on this many of the training sentences (a seeded subset, as `load_task` takes it).
    epochs: passes over your training data (default: the reference runs' 2).
    probe_size: the most training sentences the signal pass reads (fewer: faster, a noisier signal).
    """
    from .data import load_task

    if checkpoint != CHECKPOINT:
        raise ValueError(f"the advisor's reference runs are {CHECKPOINT}'s; it has none for {checkpoint!r} and "
                         "will not guess (run `grids.advisor_points` on your checkpoint to build a reference)")
    if retention_floor is not None and not 0 <= retention_floor <= 1:
        raise ValueError(f"retention_floor is a share from 0 to 1 (0.8: keep 80% of STS-B), got {retention_floor!r}")
    for name, value in (("minutes", minutes), ("memory_mb", memory_mb)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a number > 0 (or None: no limit), got {value!r}")
    task = task or (data if isinstance(data, str) else str(path) if path is not None else "your data")
    if path is not None:
        data = load_task(path=path, text_column=text_column, label_column=label_column, train_size=train_size)
    elif isinstance(data, str):
        if data == "stsb":
            raise ValueError("the advisor covers classification tasks; stsb is a regression task")
        data = load_task(data, train_size=train_size)
    elif data is None:
        raise ValueError("give a course task (advise('sst2')), a DatasetDict, or path=... for your own file")
    known = reference_signals()
    table = reference()
    mine = signals(data, task, probe_size=probe_size)
    use = {t: s for t, s in known.items() if t != task}  # a course task is advised without its own runs
    predicted = predict(table, use, mine)
    config = SWEEP_TRAINING.replace(**({"epochs": epochs} if epochs else {}))
    steps = config.epochs * math.ceil(mine.train_size / config.batch_size)
    speed = np.median([s.sentences_per_s for s in known.values()]) / mine.sentences_per_s  # > 1: slower here
    predicted["minutes"] = predicted["s_per_step"] * steps * speed / 60
    predicted["peak_memory_mb"] = predicted["setup"].map(reference_memory())
    predicted["why not"] = ""
    for column, limit, reason in (("retention", retention_floor, "keeps too little"),
                                  ("minutes", minutes, "too slow"), ("peak_memory_mb", memory_mb, "too much memory")):
        if limit is not None:
            short = predicted[column] < limit if column == "retention" else predicted[column] > limit
            predicted.loc[short, "why not"] = [f"{w}, {reason}".lstrip(", ") for w in predicted.loc[short, "why not"]]
    predicted["meets"] = predicted["why not"] == ""
    predicted = predicted.sort_values(["meets", "score"], ascending=False).reset_index(drop=True)
    recommended = None
    if predicted["meets"].any():
        recommended = _recommendation(str(predicted.loc[0, "setup"]), mine.classes, config.epochs)
    warnings = []
    reference_steps = SWEEP_TRAINING.epochs * math.ceil(2000 / SWEEP_TRAINING.batch_size)
    if steps != reference_steps:
        warnings.append(f"your run takes {steps} steps; every reference run took {reference_steps} (2,000 sentences, "
                        f"2 epochs): retention especially is predicted outside what was validated")
    if mine.classes != 2:
        warnings.append(f"your task has {mine.classes} classes; every reference task has 2")
    validation = validate(retention_floor, table=table, known=known)
    return Advice(predicted, recommended, mine, validation, verdicts(validation), warnings, config.epochs)
