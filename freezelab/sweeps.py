"""Resumable sweeps over plans x learning rates x train sizes x seeds, stored in Optuna's RDB storage.

For: precomputing the course's full-size results (instructors, on a GPU) and
small live grids (students, on a CPU). Each grid point is one run: a
`fine_tune` plus, optionally, the retention probes; its record is stored as
JSON in the Optuna trial. Storage is an Optuna RDB URL: a local SQLite file
by default; a PostgreSQL URL lets several machines share one sweep.

Guarantees: every grid point is enqueued once; workers pop queued points
atomically (two workers never run the same point); a finished run is never
lost or redone; a run killed mid-way is marked failed once its heartbeat is
older than the grace period and re-queued, so the next worker redoes it.

Not for: choosing hyper-parameters by search (the grid is fixed), or plotting (`freezelab.plots`).
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from .plans import FreezePlan

PLANS = {
    "head": ("head only", FreezePlan.head_only),
    "feature": ("pooler + head (feature extractor)", FreezePlan.feature_extractor),
    "top1": ("train top 1 + head", lambda m: FreezePlan.train_top(m, 1)),
    "top2": ("train top 2 + head", lambda m: FreezePlan.train_top(m, 2)),
    "top4": ("train top 4 + head", lambda m: FreezePlan.train_top(m, 4)),
    "full": ("full fine-tune", FreezePlan.full_finetune),
}


@dataclass(frozen=True)
class SweepSettings:
    """What every run of a sweep shares (stored with the study, so all workers agree)."""

    task: str = "sst2"
    checkpoint: str = "minilm-l6"
    epochs: int = 2
    dev_size: int | None = None
    warmup: float = 0.06
    probes: bool = True
    sts_dev_size: int | None = None


def grid(plans, lrs, train_sizes, seeds) -> list[dict]:
    """Every combination, as the parameter dicts that become trials."""
    unknown = [p for p in plans if p not in PLANS]
    if unknown:
        raise ValueError(f"unknown plan {unknown[0]!r}; plans: {', '.join(PLANS)}")
    return [{"plan": p, "lr": float(lr), "train_size": int(n), "seed": int(s)}
            for p, lr, n, s in itertools.product(plans, lrs, train_sizes, seeds)]


def storage(url: str, heartbeat: int = 30, grace: int = 120) -> RDBStorage:
    """Optuna RDB storage with heartbeats: a worker that dies stops beating, and its run is retried."""
    with warnings.catch_warnings():  # Optuna marks the heartbeat API experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))


def create_sweep(name: str, url: str, points: list[dict], settings: SweepSettings, **storage_options) -> optuna.Study:
    """Create (or reopen) the study and enqueue each grid point once; reopening never enqueues twice."""
    study = optuna.create_study(study_name=name, storage=storage(url, **storage_options), direction="maximize",
                                load_if_exists=True)
    if "grid" in study.user_attrs:
        if study.user_attrs["grid"] != points or study.user_attrs["settings"] != settings.__dict__:
            raise ValueError(f"sweep {name!r} already exists with another grid or settings; use another name")
        return study
    study.set_user_attr("grid", points)
    study.set_user_attr("settings", settings.__dict__)
    for point in points:
        study.enqueue_trial(point)
    return study


def run_point(point: dict, settings: SweepSettings) -> dict:
    """One grid point: load the checkpoint, fine-tune with the plan, probe retention. Returns a JSON-able record."""
    from . import probes
    from .models import load_model
    from .training import fine_tune

    num_labels = 1 if settings.task == "stsb" else 2
    model, tokenizer = load_model(settings.checkpoint, num_labels=num_labels, seed=point["seed"])
    original = load_model(settings.checkpoint, num_labels=num_labels, seed=point["seed"])[0] if settings.probes else None
    label, make_plan = PLANS[point["plan"]]
    result = fine_tune(model, tokenizer, settings.task, plan=make_plan(model), lr=point["lr"], epochs=settings.epochs,
                       train_size=point["train_size"], dev_size=settings.dev_size, seed=point["seed"],
                       warmup=settings.warmup, dashboard="none")
    record = {**point, "plan_label": label, "dev_metric": result.dev_metric, "metric": result.metric_name,
              "trainable_params": result.trainable_params, "train_time_s": result.train_time_s,
              "examples_per_s": result.examples_per_s, "history": result.history}
    if settings.probes:
        record["retention"] = probes.retention(original, model, tokenizer, sts_dev_size=settings.sts_dev_size)
    return record


def run_sweep(name: str, url: str, run=run_point, log=print, **storage_options) -> int:
    """Work through the queue until it is empty; return how many runs this worker finished.

    Safe to start several times, on several machines, and to kill at any time.
    """
    study = optuna.load_study(study_name=name, storage=storage(url, **storage_options))
    settings = SweepSettings(**study.user_attrs["settings"])
    with warnings.catch_warnings():  # Optuna marks fail_stale_trials experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)  # runs whose worker died long enough ago go back to the queue
    total = len(study.user_attrs["grid"])
    done, started = 0, time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        if "fixed_params" not in frozen.system_attrs:  # the queue is empty: do not sample new points
            trial.study.stop()
            raise optuna.TrialPruned("queue empty")
        point = dict(frozen.system_attrs["fixed_params"])
        trial.set_user_attr("point", point)  # not suggest_*: Optuna's distributions cannot vary per trial
        record = run(point, settings)
        trial.set_user_attr("record", json.dumps(record))
        return float(record["dev_metric"])

    def progress(study: optuna.Study, trial) -> None:
        nonlocal done
        if trial.state != TrialState.COMPLETE:
            return
        done += 1
        finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        rate = (time.perf_counter() - started) / done
        left = total - finished
        log(f"[{finished}/{total}] {trial.user_attrs['point']} -> {trial.value:.4f} · ETA {left * rate / 60:.1f} min "
            f"(at this worker's pace)")
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.stop()

    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, callbacks=[progress], catch=())
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if running:
        log(f"{running} run(s) still RUNNING: another worker's, or killed ones that the next worker retries "
            f"once their heartbeat is stale")
    return done


def results(name: str, url: str) -> pd.DataFrame:
    """One row per finished run (records of retried runs appear once: only COMPLETE trials count)."""
    study = optuna.load_study(study_name=name, storage=url)
    rows = [json.loads(t.user_attrs["record"]) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    return pd.DataFrame(rows)


def export(name: str, url: str, path: str) -> int:
    """Write the finished runs to a small JSON file (no per-step history) for the course to ship."""
    frame = results(name, url)
    rows = frame.drop(columns=["history"], errors="ignore").to_dict(orient="records")
    with open(path, "w") as handle:
        json.dump({"freezelab_sweep": 1, "name": name, "runs": rows}, handle, indent=1)
    return len(rows)
