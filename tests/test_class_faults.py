"""Nothing lost, nothing twice: class mode under faults, against the real PostgreSQL that `.ci/postgres` starts.

Specification: a run that raises goes back to the queue, up to `sweeps.FAILED_RETRIES` times, then is abandoned
and named to the teacher; a broken worker stops before it uses up the queue's retries; an interrupted `create`
is completed by the next one; two creators at once queue each point once; a database restart in the middle of a
class loses no finished run and duplicates none, and the workers either carry on or say that they stopped; the
`class` commands answer bad input with one clear line, never a traceback. Runs are rehearsal-like stand-ins.
"""

import os
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from freezelab import classroom, grids, sweeps

GRID = grids.grid(["head", "top2"], [1e-4, 1e-3], [100], [0])  # 4 runs
SETTINGS = grids.SweepSettings(probes=False)
KEYS = sorted(sweeps._key(p, SETTINGS) for p in GRID)


def finished_keys(url, name="lab"):
    study = classroom._study(name, url)
    return sorted(sweeps._key(t.system_attrs["fixed_params"], SETTINGS)
                  for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)


@pytest.fixture
def room(postgres_database):
    classroom.create_class("lab", postgres_database.teacher, GRID, SETTINGS)
    classroom.grant_students("lab", postgres_database.teacher, postgres_database.role)
    return postgres_database


def test_a_run_that_raises_is_retried_then_abandoned_and_named(room, tmp_path):
    attempts = []

    def one_point_always_fails(point, settings):
        if point == GRID[1]:
            attempts.append(point)
            raise FileNotFoundError("no checkpoint at /models/minilm")
        return {**point, "dev_metric": 0.5}

    logged = []
    done = sweeps.run_sweep("lab", classroom.class_url(room.student, "lab"), run=one_point_always_fails,
                            progress=False, log=logged.append, worker="ada")
    assert done == 3 and len(attempts) == 1 + sweeps.FAILED_RETRIES  # tried, retried twice, then abandoned
    assert any("went back to the queue (retry 1 of 2)" in line for line in logged)
    assert any("is abandoned" in line for line in logged)
    now = classroom.status("lab", room.teacher)
    assert (now["done"], now["running"], now["queued"]) == (3, 0, 0)
    assert len(now["missing"]) == 1 and "seed 0" in now["missing"][0]
    assert "FileNotFoundError: no checkpoint at /models/minilm" in now["missing"][0]
    assert classroom.watch("lab", room.teacher, every=0, rounds=5)["done"] == 3  # stops: nothing left to wait for
    logged.clear()
    assert sweeps.export("lab", classroom.class_url(room.teacher, "lab"), tmp_path / "c.json", log=logged.append) == 3
    assert "1 of 4 grid points have no finished run" in logged[0]
    assert classroom.requeue("lab", room.teacher) == 1  # the teacher mended the cause: the point runs again
    classroom.join("lab", room.student, minutes=None, student="ada", progress=False,
                   run=lambda point, settings: {**point, "dev_metric": 0.5})
    assert finished_keys(room.teacher) == KEYS


def test_a_broken_worker_stops_and_leaves_the_queue_to_others(room):
    def broken(point, settings):
        raise RuntimeError("CUDA out of memory")

    logged = []
    assert sweeps.run_sweep("lab", classroom.class_url(room.student, "lab"), run=broken, progress=False,
                            log=logged.append) == 0
    assert f"stopped after {sweeps.FAILING_WORKER} failed runs in a row" in logged[-2] + logged[-1]
    now = classroom.status("lab", room.teacher)
    assert (now["done"], now["queued"], now["missing"]) == (0, 4, [])  # its two runs wait for someone else
    classroom.join("lab", room.student_b, minutes=None, student="bob", progress=False,
                   run=lambda point, settings: {**point, "dev_metric": 0.5})
    assert finished_keys(room.teacher) == KEYS


def test_an_interrupted_create_is_completed_by_the_next_one_and_workers_wait_for_it(postgres_database, monkeypatch):
    db = postgres_database
    real, calls = optuna.Study.enqueue_trial, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the teacher's Ctrl-C, a closed laptop: after two points were queued
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        classroom.create_class("lab", db.teacher, GRID, SETTINGS)
    monkeypatch.setattr(optuna.Study, "enqueue_trial", real)
    with pytest.raises(ValueError, match="not completely created yet"):
        sweeps.run_sweep("lab", classroom.class_url(db.teacher, "lab"), run=lambda p, s: {**p, "dev_metric": 0.5},
                         progress=False)
    assert classroom.create_class("lab", db.teacher, GRID, SETTINGS) == 4
    study = classroom._study("lab", db.teacher)
    assert sorted(sweeps._key(t.system_attrs["fixed_params"], SETTINGS) for t in study.get_trials()) == KEYS
    assert study.user_attrs["grid"] == GRID


def test_two_teachers_creating_at_once_queue_each_point_once(postgres_database):
    db, start, errors = postgres_database, threading.Barrier(2), []

    def create():
        start.wait()
        try:
            classroom.create_class("lab", db.teacher, GRID, SETTINGS)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    trials = classroom._study("lab", db.teacher).get_trials()
    assert sorted(sweeps._key(t.system_attrs["fixed_params"], SETTINGS) for t in trials) == KEYS


@pytest.mark.restarts_postgres
def test_a_database_restart_mid_class_loses_nothing_and_duplicates_nothing(postgres_database):
    restart = os.environ.get("FREEZELAB_TEST_POSTGRES_RESTART")
    if not restart:
        pytest.skip("no restart command (.ci/postgres exports FREEZELAB_TEST_POSTGRES_RESTART)")
    db = postgres_database
    grid = grids.grid(["head", "top2"], [1e-4, 1e-3, 1e-2], [100], [0, 1, 2])  # 18 runs
    classroom.create_class("big", db.teacher, grid, SETTINGS, heartbeat=1, grace=3)
    classroom.grant_students("big", db.teacher, db.role)
    code = ("from freezelab import classroom, sweeps; sweeps.run_sweep('big', "
            f"{classroom.class_url(db.student, 'big')!r}, run=classroom.rehearsal(0.3), progress=False, "
            "worker='w', heartbeat=1, grace=3)")
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    study = classroom._study("big", db.teacher)
    deadline = time.time() + 60
    while time.time() < deadline and len([t for t in study.get_trials() if t.state == TrialState.COMPLETE]) < 3:
        time.sleep(0.2)
    before = {t.number: (t.datetime_complete, t.value) for t in study.get_trials() if t.state == TrialState.COMPLETE}
    subprocess.run(restart, shell=True, check=True, timeout=60)
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all("Traceback" not in out for out in outputs), outputs
    assert all(w.returncode == 0 or "this worker stopped" in out for w, out in zip(workers, outputs)), outputs
    for _ in range(3):  # a rescuer, as the next student to join; a run taken just as the server went down had
        # no heartbeat yet, and its clock starts with the first rescuer: it is stale one grace period later
        time.sleep(4)  # past the grace period: a run cut by the restart is stale
        sweeps.run_sweep("big", classroom.class_url(db.student, "big"), run=classroom.rehearsal(0), progress=False,
                         heartbeat=1, grace=3)
        if not classroom.status("big", db.teacher)["running"]:
            break
    study = classroom._study("big", db.teacher)
    after = study.get_trials()
    done = sorted(sweeps._key(t.system_attrs["fixed_params"], SETTINGS) for t in after if t.state == TrialState.COMPLETE)
    assert done == sorted(sweeps._key(p, SETTINGS) for p in grid)  # every point once: none lost, none twice
    assert all((after[n].datetime_complete, after[n].value) == kept for n, kept in before.items())
    print(f"\nrestart: {len(before)} runs finished before, kept; worker outputs: "
          + " | ".join(out.strip().splitlines()[-1] if out.strip() else "(silent)" for out in outputs))


def cli(*args, url):
    return subprocess.run([sys.executable, "-m", "freezelab", "class", *args], capture_output=True, text=True,
                          env={**os.environ, classroom.ENV: url}, timeout=120)


def test_every_class_command_answers_bad_input_with_one_clear_line(room):
    wrong = room.student.replace("student-secret", "guess")
    cases = [
        (("status", "--name", "lab"), wrong, "refused the login of 'freezelab_student'"),
        (("create", "--name", "lab2", "--preset", "frontier"), room.student, "needs the teacher's address"),
        (("grant", "--name", "lab", "--role", "freezelab_student"), room.student, "needs the teacher's address"),
        (("status", "--name", "nope"), room.teacher, "no class sweep named 'nope'"),
        (("status", "--name", "Bad Name!"), room.teacher, "a class name is 1-40 lower-case"),
        (("work", "--name", "lab", "--runs", "0"), room.student, "max_runs must be a whole number >= 1"),
        (("work", "--name", "lab", "--minutes", "-1"), room.student, "minutes must be a number > 0"),
        (("create", "--name", "lab", "--preset", "frontier", "--seeds", "a,b"), room.teacher, "invalid _ints value"),
        (("export", "--name", "lab", "--out", "/no/such/folder/x.json"), room.teacher, "No such file or directory"),
    ]
    for args, url, message in cases:
        answer = cli(*args, url=url)
        text = answer.stdout + answer.stderr
        assert answer.returncode != 0 and message in text and "Traceback" not in text, (args, text)
        assert "student-secret" not in text and "teacher-secret" not in text and "guess" not in text


@pytest.mark.parametrize("stage", ["point", "worker", "run", "record"])
def test_the_stop_button_at_any_step_of_a_run_loses_nothing(room, monkeypatch, stage):
    """The interrupt arrives while the worker stores the run's point, its name, runs it, or stores the result."""
    real = optuna.Trial.set_user_attr

    def stopped_at(self, key, value):
        if key == stage:
            raise KeyboardInterrupt
        return real(self, key, value)

    def run(point, settings):
        if stage == "run":
            raise KeyboardInterrupt
        return {**point, "dev_metric": 0.5}

    monkeypatch.setattr(optuna.Trial, "set_user_attr", stopped_at)
    assert classroom.join("lab", room.student, minutes=None, student="ada", progress=False, run=run) == 0
    monkeypatch.setattr(optuna.Trial, "set_user_attr", real)
    now = classroom.status("lab", room.teacher)
    assert (now["done"], now["running"], now["queued"], now["missing"]) == (0, 0, 4, [])
    classroom.join("lab", room.student, minutes=None, student="ada", progress=False,
                   run=lambda point, settings: {**point, "dev_metric": 0.5})
    assert finished_keys(room.teacher) == KEYS  # every point once
