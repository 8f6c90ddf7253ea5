"""Specification of sweeps: every grid point runs exactly once, across kills and across workers.

The tests that start worker processes run twice: on a SQLite file and on a real PostgreSQL server (the one
`.ci/postgres` starts), where a class's workers meet.
"""

import dataclasses
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from freezelab import experiment, grids, results, sweeps

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data

GRID = ["--plans", "head,top1", "--lrs", "1e-4,1e-3", "--train-sizes", "16", "--seeds", "0"]
FAST = ["--epochs", "1", "--dev-size", "16", "--no-probes", "--heartbeat", "1", "--grace", "3"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """Where a sweep lives: a SQLite file, or a fresh database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sweep.db'}"
    return request.getfixturevalue("postgres_database").teacher


def worker(db, name="s"):
    command = [sys.executable, "-m", "freezelab", "sweep", "--name", name, "--storage", db, *GRID, *FAST]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def trials(db, name="s"):
    try:
        return optuna.load_study(study_name=name, storage=sweeps.storage_url(db)).get_trials()
    except KeyError:  # the worker has not created the study yet
        return []


def pause_outside_a_write(process, db):
    """SIGSTOP a worker at a moment it holds no lock on a SQLite file.

    A worker paused inside one of its writes (a heartbeat takes a few milliseconds each second) keeps the
    file locked, and no other process can write it until it resumes: SQLite locks whole files, and that
    stall is one no rescuer can end (the sweep command then says so, see the test below). This test is about
    the stall that can be rescued, so it resumes and pauses again until the file is free. PostgreSQL locks
    rows, and a paused heartbeat write does not block the rescuer there.
    """
    for _ in range(50):
        process.send_signal(signal.SIGSTOP)
        if not db.startswith("sqlite"):
            return
        probe = sqlite3.connect(db.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
        try:  # an exclusive lock is granted only when no other connection holds any lock on the file
            probe.execute("BEGIN EXCLUSIVE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            probe.close()
    raise AssertionError("the worker held the SQLite file's lock at every one of 50 tries")


def completed_points(db):
    return sorted((t.user_attrs["point"]["plan"], t.user_attrs["point"]["lr"])
                  for t in trials(db) if t.state == TrialState.COMPLETE)


ALL = sorted((p, lr) for p in ("head", "top1") for lr in (1e-4, 1e-3))


def test_grid_is_every_combination():
    points = grids.grid(["head", "full"], [1e-4], [100, 200], [0, 1, 2])
    assert len(points) == 12 and points[0] == {"plan": "head", "lr": 1e-4, "train_size": 100, "seed": 0}
    with pytest.raises(ValueError, match="unknown plan 'top9'; plans: head, feature, top1"):
        grids.grid(["top9"], [1e-4], [100], [0])


@pytest.mark.parametrize("lrs, sizes, seeds, message", [
    ([0.0], [16], [0], "every lr must be a finite number > 0, got 0.0"),
    ([float("nan")], [16], [0], "every lr must be a finite number > 0, got nan"),
    ([1e-3], [0], [0], "every train size must be a whole number >= 1, got 0"),
    ([1e-3], [16.5], [0], "every train size must be a whole number >= 1, got 16.5"),
    ([1e-3], [16], [-1], "every seed must be a whole number >= 0, got -1"),
    ([True], [16], [0], "every lr must be a finite number > 0, got True"),
])
def test_a_grid_refuses_what_fine_tune_would_refuse_when_it_is_made(lrs, sizes, seeds, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        grids.grid(["head"], lrs, sizes, seeds)


def test_points_carry_their_own_options_and_labels():
    points = grids.grid(["full"], [2e-3], [2000], [0], warmup=0.0)
    assert points == [{"plan": "full", "lr": 2e-3, "train_size": 2000, "seed": 0, "warmup": 0.0}]
    assert grids.describe(points[0]) == "full fine-tune, lr 0.002, no warm-up"
    assert grids.describe({"plan": "head", "lr": 1e-2, "pooling": "mean"}) == "head only (mean-pooled), lr 0.01"
    with pytest.raises(ValueError, match="unknown option 'momentum'; a point may set: epochs, warmup, pooling"):
        grids.grid(["full"], [1e-4], [100], [0], momentum=0.9)
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean', got 'max'"):
        grids.grid(["full"], [1e-4], [100], [0], pooling="max")
    with pytest.raises(ValueError, match="warmup must be a fraction of the training steps, from 0 to below 1, got 6"):
        grids.grid(["full"], [1e-4], [100], [0], warmup=6)


def test_the_course_presets():
    frontier = grids.frontier_points()
    assert len(frontier) == 51 and {p["seed"] for p in frontier} == {0, 1, 2}
    assert {("head", 1e-3), ("head", 1e-2)} <= {(p["plan"], p["lr"]) for p in frontier}  # the head at 10x its rate
    diverging = [p for p in frontier if p.get("warmup") == 0.0]
    assert {(p["plan"], p["lr"]) for p in diverging} == {("full", 5e-4), ("full", 1e-3), ("full", 2e-3)}
    # each no-warm-up rate also runs with warm-up: the grid can tell the learning rate from the warm-up apart
    warm = {(p["plan"], p["lr"]) for p in frontier if "warmup" not in p and "layer_decay" not in p}
    assert {(p["plan"], p["lr"]) for p in diverging} - {("full", 2e-3)} <= warm
    sizes = grids.data_size_points(seeds=[0])
    assert {p["train_size"]: p["epochs"] for p in sizes} == {100: 20, 300: 7, 1000: 2, 3000: 2}
    assert all(p["pooling"] == "mean" for p in sizes)


def test_at_two_epochs_100_sentences_take_8_steps_and_2000_take_126_so_small_sets_get_more_epochs():
    """The guide's reason for the data-size grid's epochs: the sweep's batches of 32 at its 2 epochs."""
    settings = grids.SWEEP_TRAINING
    steps = {n: math.ceil(n / settings.batch_size) * settings.epochs for n in (100, 2000)}
    assert (settings.batch_size, settings.epochs, steps) == (32, 2, {100: 8, 2000: 126})
    for point in grids.data_size_points(seeds=[0]):
        assert point["epochs"] * point["train_size"] >= 2000


def test_a_killed_sweep_resumes_without_losing_or_redoing_a_finished_run(db):
    first = worker(db)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if any(t.state == TrialState.COMPLETE for t in trials(db)):
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)  # a crash: no cleanup, no goodbye
    first.wait()
    finished_before = {t.number: t.datetime_complete for t in trials(db) if t.state == TrialState.COMPLETE}
    assert finished_before, "the first worker finished nothing before the kill"

    time.sleep(4)  # longer than the grace period: a run killed mid-way is now stale
    second = worker(db)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    after = trials(db)
    assert completed_points(db) == ALL, output  # every point done, each exactly once
    for number, when in finished_before.items():  # finished runs kept as they were, not redone
        assert after[number].state == TrialState.COMPLETE and after[number].datetime_complete == when
    print(f"\nkill-and-resume: {len(finished_before)} run(s) finished before the kill, kept; "
          f"{len(ALL) - len(finished_before)} completed after restart; states "
          f"{[t.state.name for t in after]}")


def test_a_worker_that_stalls_past_the_grace_period_drops_its_run_and_goes_on(db):
    """SIGSTOP a worker mid-run: another declares the run dead and redoes it; the stalled one must not crash."""
    sweeps.create_sweep("s", db, grids.grid(["head", "top1"], [1e-4, 1e-3], [16], [0]),
                        grids.SweepSettings(epochs=1, dev_size=16, probes=False), heartbeat=1, grace=3)
    stalled = worker(db)
    deadline = time.time() + 240
    while time.time() < deadline and not any(t.state == TrialState.RUNNING for t in trials(db)):
        time.sleep(0.1)
    pause_outside_a_write(stalled, db)
    rescuer = worker(db)
    while time.time() < deadline and not any(t.state == TrialState.FAIL for t in trials(db)):
        time.sleep(0.2)  # the rescuer found the stalled run's heartbeat stale and re-queued it
    stalled.send_signal(signal.SIGCONT)
    outputs = [w.communicate(timeout=300)[0] for w in (stalled, rescuer)]
    assert [w.returncode for w in (stalled, rescuer)] == [0, 0], outputs
    assert completed_points(db) == ALL  # every point done exactly once
    assert "result for it is dropped" in outputs[0]


def test_a_sqlite_file_locked_by_a_paused_process_is_named_not_a_traceback(tmp_path):
    """The stall no rescuer can end on SQLite: another process holds the file's lock and does not let go."""
    db = f"sqlite:///{tmp_path / 'sweep.db'}"
    sweeps.create_sweep("s", db, grids.grid(["head"], [1e-3], [16], [0]),
                        grids.SweepSettings(epochs=1, dev_size=16, probes=False), heartbeat=1, grace=3)
    holder = sqlite3.connect(tmp_path / "sweep.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # what a worker paused in the middle of a heartbeat write holds
    try:
        locked = worker(db)
        output = locked.communicate(timeout=120)[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == 1, output
    assert "Traceback" not in output
    assert "stayed locked by another process" in output and "resume or end that worker" in output
    assert "finished runs are kept" in output and "PostgreSQL" in output


def test_a_run_whose_worker_died_before_its_first_heartbeat_is_redone_a_grace_period_later(db):
    """Optuna never fails a run that has no heartbeat; the next worker must still get its point done."""
    beat = {"heartbeat": 1, "grace": 4}
    sweeps.create_sweep("s", db, grids.grid(["head", "top1"], [1e-4, 1e-3], [16], [0]),
                        grids.SweepSettings(epochs=1, dev_size=16, probes=False), **beat)
    with pytest.warns(UserWarning, match="Heartbeat of storage is supposed to be used with Study.optimize"):
        # a worker that took this run and died before its heartbeat thread wrote: RUNNING, no heartbeat
        orphan = optuna.load_study(study_name="s", storage=sweeps.storage(db, **beat)).ask()

    def stand_in(point, settings):
        return {**point, "dev_metric": 0.5}

    logged = []  # the first worker does the other three points, well within the grace period, and says so
    assert sweeps.run_sweep("s", db, run=stand_in, progress=False, log=logged.append, **beat) == 3
    assert trials(db)[orphan.number].state == TrialState.RUNNING and "1 run(s) still RUNNING" in logged[-1]
    # One grace period after the first worker started the orphan's clock, and a second more: Optuna compares
    # the database's clock, which SQLite keeps in whole seconds (4.5 s can read as 4, not past a grace of 4).
    time.sleep(beat["grace"] + 1.5)
    assert sweeps.run_sweep("s", db, run=stand_in, progress=False, **beat) == 1
    assert trials(db)[orphan.number].state == TrialState.FAIL
    assert completed_points(db) == ALL


def test_two_workers_split_the_grid_without_duplicates(db):
    sweeps.create_sweep("s", db, grids.grid(["head", "top1"], [1e-4, 1e-3], [16], [0]),
                        grids.SweepSettings(epochs=1, dev_size=16, probes=False), heartbeat=1, grace=3)
    workers = [worker(db), worker(db)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert completed_points(db) == ALL
    assert len([t for t in trials(db) if t.state == TrialState.COMPLETE]) == len(ALL)


def test_export_writes_the_finished_runs(tmp_path):
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    settings = grids.SweepSettings(epochs=1, dev_size=16, probes=False)
    sweeps.create_sweep("e", url, grids.grid(["head"], [1e-3], [16], [0]), settings)
    assert sweeps.run_sweep("e", url, progress=False, log=lambda line: None) == 1
    assert sweeps.run_sweep("e", url, progress=False, log=lambda line: None) == 0  # nothing left: nothing redone
    out = tmp_path / "e.json"
    assert sweeps.export("e", url, str(out)) == 1
    run = json.loads(out.read_text())["runs"][0]
    assert run["plan"] == "head" and run["trainable_params"] == 770 and 0 <= run["dev_metric"] <= 1
    assert len(run["losses"]) == run["steps"] == 1 and run["cache_prefix"] is True
    assert results.load(str(out)).loc[0, "label"] == "head only, lr 0.001"


def test_run_grid_reuses_finished_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    points = grids.grid(["head"], [1e-3], [16], [0], pooling="mean")
    settings = grids.SweepSettings(epochs=1, dev_size=16, probes=False)
    first = sweeps.run_grid(points, settings, url, progress=False)
    again = sweeps.run_grid(points, settings, url, progress=False)  # a notebook cell run twice
    assert len(optuna.get_all_study_summaries(url)) == 1
    assert again.to_dict() == first.to_dict() and first.loc[0, "pooling"] == "mean"
    assert first.loc[0, "trainable_params"] == 770


def test_a_run_is_reused_point_by_point_across_grids_and_notebooks(tmp_path):
    """Notebook 04's exercise 4: add a set-up, then a second seed; 05 and 07 share 04's full fine-tuning."""
    settings = grids.SweepSettings(epochs=1, dev_size=16, probes=False)
    ran = []

    def stand_in(point, settings):
        ran.append((point["plan"], point["seed"]))
        return {**point, "pooling": "cls", "epochs": settings.epochs, "label": grids.describe(point), "dev_metric": 0.5}

    url = f"sqlite:///{tmp_path / 'notebooks.db'}"
    grid = grids.grid(["head", "full"], [1e-3], [16], [0])
    sweeps.run_grid(grid, settings, url, progress=False, run=stand_in)
    assert ran == [("head", 0), ("full", 0)]
    ran.clear()
    grown = grid + grids.grid(["top4"], [1e-3], [16], [0])  # add a set-up: that one trains
    frame = sweeps.run_grid(grown, settings, url, progress=False, run=stand_in)
    assert ran == [("top4", 0)] and (frame.attrs["reused"], frame.attrs["trained"]) == (2, 1)
    assert [r["plan"] for r in frame.to_dict(orient="records")] == ["head", "full", "top4"]  # grid order
    ran.clear()
    seeds = grids.grid(["head", "full", "top4"], [1e-3], [16], [0, 1])  # then a second seed: 3 new runs
    sweeps.run_grid(seeds, settings, url, progress=False, run=stand_in)
    assert sorted(ran) == [("full", 1), ("head", 1), ("top4", 1)]
    ran.clear()
    other_notebook = grids.grid(["full"], [1e-3], [16], [0]) + grids.grid(["gradual"], [1e-3], [16], [0])
    sweeps.run_grid(other_notebook, settings, url, progress=False, run=stand_in)
    assert ran == [("gradual", 0)]
    ran.clear()
    sweeps.run_grid(grid, dataclasses.replace(settings, epochs=2), url, progress=False, run=stand_in)
    assert ran == [("head", 0), ("full", 0)]  # other settings: nothing to reuse


def test_reopening_a_sweep_with_another_grid_or_settings_is_an_error_that_names_the_difference(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    settings = grids.SweepSettings(probes=False)
    sweeps.create_sweep("x", url, grids.grid(["head"], [1e-3], [16], [0]), settings)
    sweeps.create_sweep("x", url, grids.grid(["head"], [1e-3], [16], [0]), settings)  # same: fine
    assert len(trials(f"sqlite:///{tmp_path / 'sweep.db'}", "x")) == 1
    with pytest.raises(ValueError, match="already exists with another grid"):
        sweeps.create_sweep("x", url, grids.grid(["full"], [1e-3], [16], [0]), settings)
    with pytest.raises(ValueError, match=r"other settings \(micro_batch_size 'auto' there, 8 here\); use those"):
        sweeps.create_sweep("x", url, grids.grid(["head"], [1e-3], [16], [0]),
                            grids.SweepSettings(probes=False, micro_batch_size=8))


def test_a_grown_grid_trains_only_its_new_points(tmp_path):
    """`finished=` (CLI `--finished`): runs of an exported sweep stand in for the same points of a larger grid."""
    settings = grids.SweepSettings(epochs=1, dev_size=16, probes=False)
    ran = []

    def stand_in(point, settings):
        ran.append(point)
        # as run_point does: the record spells out the options the point left at the sweep's values
        return {**point, "pooling": "cls", "epochs": settings.epochs, "label": grids.describe(point), "dev_metric": 0.5}

    url = f"sqlite:///{tmp_path / 'grow.db'}"
    small = grids.grid(["head"], [1e-3], [16], [0, 1])
    sweeps.create_sweep("small", url, small, settings)
    sweeps.run_sweep("small", url, run=stand_in, progress=False)
    sweeps.export("small", url, tmp_path / "small.json")
    finished = json.loads((tmp_path / "small.json").read_text())

    grown = grids.grid(["head"], [1e-3], [16], [0, 1, 2]) + grids.grid(["full"], [1e-4], [16], [0], warmup=0.0)
    ran.clear()
    sweeps.create_sweep("grown", url, grown, settings, finished=finished)
    sweeps.run_sweep("grown", url, run=stand_in, progress=False)
    assert ran == [grown[2], grown[3]]  # only the points the export lacked
    frame = sweeps.results("grown", url)
    assert [(r["plan"], r["seed"]) for r in frame.to_dict(orient="records")] == [("head", 0), ("head", 1),
                                                                               ("head", 2), ("full", 0)]
    with pytest.raises(ValueError, match="made with other settings"):
        sweeps.create_sweep("other", url, grown, grids.SweepSettings(epochs=3), finished=finished)


def test_the_shipped_files_read_as_whole_batches_and_refuse_to_mix_with_other_runs(tmp_path):
    shipped = json.loads((Path(results.__file__).parent / "precomputed" / "frontier.json").read_text())
    assert "group_by_length" not in shipped["settings"]  # stored before the setting existed
    as_made = dataclasses.replace(grids.COURSE_SWEEPS["frontier"][1], micro_batch_size=None)  # `--whole-batches`
    assert grids.SweepSettings.from_dict(shipped["settings"]) == as_made
    for other in (grids.COURSE_SWEEPS["frontier"][1], dataclasses.replace(as_made, group_by_length=True)):
        with pytest.raises(ValueError, match="made with other settings"):
            sweeps.create_sweep("g", f"sqlite:///{tmp_path / 'g.db'}", grids.frontier_points(), other,
                                finished=shipped)


def test_a_sweep_gives_optunas_log_level_back(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        url = f"sqlite:///{tmp_path / 'sweep.db'}"
        sweeps.create_sweep("q", url, grids.grid(["head"], [1e-3], [16], [0]), grids.SweepSettings(probes=False))
        sweeps.run_sweep("q", url, run=lambda point, settings: {**point, "dev_metric": 0.5}, progress=False)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(optuna.logging.INFO)


def test_several_workers_never_take_the_same_queued_run(db, tmp_path):
    """Each queued run is handed to one worker only, even on SQLite (Optuna reads WAITING, then writes RUNNING;
    without a write lock taken before the read, two workers on one SQLite file both ran a point: 38 runs for 36
    points). Every call of the run function is counted, across four worker processes."""
    points = grids.grid(["head", "top1", "top2", "full"], [1e-4, 1e-3, 1e-2], [16], [0, 1, 2])  # 36
    sweeps.create_sweep("race", db, points, grids.SweepSettings(probes=False))
    calls = tmp_path / "calls"
    code = ("import json; from freezelab import sweeps\n"
            "def run(point, settings):\n"
            f"    with open({str(calls)!r}, 'a') as handle: handle.write(json.dumps(point) + '\\n')\n"
            "    return {**point, 'dev_metric': 0.5}\n"
            f"sweeps.run_sweep('race', {db!r}, run=run, progress=False, log=lambda *a: None)")
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(4)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    ran = [json.loads(line) for line in calls.read_text().splitlines()]
    assert sorted(map(points.index, ran)) == list(range(len(points)))  # each point run once, by one worker
