"""Class mode, against a real PostgreSQL server (`.ci/postgres` starts one; CI requires it).

A teacher creates the class's sweep and lets the students' role in; students' kernels join with the address from
the environment; the queue holds across many workers, killed ones and interrupted ones; the students' role
cannot drop or alter the class's tables; every connection failure is a clear error that never shows a password.
Runs here are rehearsal runs (a fixed wait): the queue is under test, not the training (tests/test_sweeps.py
runs real fine-tunes through the same queue, on SQLite and PostgreSQL).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy
from optuna.trial import TrialState

from freezelab import classroom, grids, results, sweeps

ROOT = Path(__file__).resolve().parents[1]

GRID = grids.grid(["head", "top2"], [1e-4, 1e-3, 1e-2], [100], [0, 1])  # 12 runs
SETTINGS = grids.SweepSettings(probes=False)


@pytest.fixture
def room(postgres_database):
    """A class sweep of 12 runs, created by the teacher; the students' role let in."""
    classroom.create_class("lab", postgres_database.teacher, GRID, SETTINGS)
    classroom.grant_students("lab", postgres_database.teacher, postgres_database.role)
    return postgres_database


def student(url, name, seconds=0.3, minutes=None, extra=()):
    """A student's kernel, as a separate process: joins with the address from the environment only."""
    code = (f"from freezelab import classroom; classroom.join('lab', minutes={minutes!r}, student={name!r}, "
            f"progress=False, run=classroom.rehearsal({seconds}))")
    return subprocess.Popen([sys.executable, "-c", code, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, classroom.ENV: url})


def complete(url):
    study = classroom._study("lab", url)
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]


def keys(trials):
    return sorted(sweeps._key(t.user_attrs["point"], SETTINGS) for t in trials)


ALL = sorted(sweeps._key(p, SETTINGS) for p in GRID)


def test_the_address_as_people_write_it_works(room):
    assert room.student.startswith("postgresql://")  # no +driver: psycopg (version 3) is picked
    assert classroom.normalize(room.student).startswith("postgresql+psycopg://")
    assert classroom.join("lab", room.student, runs=2, student="ada", progress=False, run=classroom.rehearsal(0)) == 2
    assert classroom.status("lab", room.teacher)["per_student"].to_dict() == {"ada": 2}


def test_four_students_share_the_queue_with_no_run_twice_and_none_lost(room):
    kernels = [student(room.student, f"student-{i}") for i in range(4)]
    outputs = [k.communicate(timeout=120)[0] for k in kernels]
    assert [k.returncode for k in kernels] == [0] * 4, outputs
    assert keys(complete(room.teacher)) == ALL  # every run once: no duplicate, nothing lost
    now = classroom.status("lab", room.teacher)
    assert (now["done"], now["running"], now["queued"]) == (12, 0, 0)
    assert now["per_student"].sum() == 12 and len(now["per_student"]) >= 2  # the work was shared
    assert "student-secret" not in "".join(outputs)


def test_a_killed_kernel_loses_nothing_finished_and_its_run_is_reissued(room):
    classroom.create_class("fast-beat", room.teacher, GRID, SETTINGS, heartbeat=1, grace=3)
    classroom.grant_students("fast-beat", room.teacher, room.role)
    address = classroom.class_url(room.student, "fast-beat")
    code = ("from freezelab import classroom, sweeps; sweeps.run_sweep('fast-beat', "
            f"{address!r}, run=classroom.rehearsal(1.0), progress=False, worker='killed', heartbeat=1, grace=3)")
    killed = subprocess.Popen([sys.executable, "-c", code])
    study = classroom._study("fast-beat", room.teacher)
    deadline = time.time() + 60
    while time.time() < deadline and not [t for t in study.get_trials() if t.state == TrialState.COMPLETE]:
        time.sleep(0.2)
    time.sleep(0.5)  # mid-way through its next run
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    finished = {t.number: t.datetime_complete for t in study.get_trials() if t.state == TrialState.COMPLETE}
    time.sleep(4)  # past the grace period: the killed run is stale
    sweeps.run_sweep("fast-beat", address, run=classroom.rehearsal(0), progress=False, worker="rescuer",
                     heartbeat=1, grace=3)
    after = study.get_trials()
    assert sorted(sweeps._key(t.user_attrs["point"], SETTINGS) for t in after if t.state == TrialState.COMPLETE) == ALL
    assert all(after[n].datetime_complete == when for n, when in finished.items())  # kept, not redone
    assert classroom.status("fast-beat", room.teacher)["reissued"] == 1


def test_the_stop_button_puts_the_run_in_progress_back_in_the_queue(room):
    calls = []

    def interrupted_on_the_third_run(point, settings):
        calls.append(point)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {**point, "dev_metric": 0.5}

    assert classroom.join("lab", room.student, minutes=1, student="bob", progress=False,
                          run=interrupted_on_the_third_run) == 0  # stopped: the cell ends quietly
    now = classroom.status("lab", room.teacher)
    assert (now["done"], now["running"], now["queued"]) == (2, 0, 10)  # the third run waits for someone else


def test_a_time_limit_or_a_run_limit_ends_the_work(room):
    started = time.monotonic()
    done = classroom.join("lab", room.student, minutes=0.02, student="eve", progress=False,
                          run=classroom.rehearsal(0.5))
    assert 1 <= done < 12 and time.monotonic() - started < 10
    assert classroom.join("lab", room.student, runs=3, student="eve", progress=False, run=classroom.rehearsal(0)) == 3


def test_the_students_role_cannot_drop_or_alter_the_class_tables(room):
    engine = sqlalchemy.create_engine(classroom.class_url(room.student, "lab"))
    try:
        for statement in ("DROP TABLE trials", "ALTER TABLE trials ADD COLUMN graffiti int",
                          "TRUNCATE trials CASCADE", "CREATE TABLE mine (x int)"):
            with engine.begin() as connection, pytest.raises(sqlalchemy.exc.ProgrammingError,
                                                             match="must be owner|permission denied"):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    assert len(classroom._study("lab", room.teacher).get_trials()) == 12  # all still there


def test_the_class_exports_into_the_shipped_results_format(room, tmp_path):
    classroom.join("lab", room.student, student="ada", progress=False, minutes=None, run=classroom.rehearsal(0))
    path = tmp_path / "class.json"
    assert classroom.export("lab", room.teacher, path) == 12
    frame = results.load(path)
    assert len(frame) == 12 and frame.attrs["settings"]["probes"] is False


def test_a_wrong_password_is_named_and_never_shown(room):
    wrong = room.student.replace("student-secret", "guess-again")
    with pytest.raises(classroom.ClassConnectionError, match="refused the login of 'freezelab_student'") as caught:
        classroom.join("lab", wrong, progress=False)
    assert "guess-again" not in str(caught.value) and "***" in str(caught.value)


def test_an_unreachable_host_is_named_with_the_fix(room):
    port = int(room.student.split(":")[-1].split("/")[0])
    closed = room.student.replace(f":{port}/", ":1/")  # nothing listens on port 1
    with pytest.raises(classroom.ClassConnectionError, match=r"127\.0\.0\.1:1 refused the connection"):
        classroom.check_connection(closed, timeout=2)
    with pytest.raises(classroom.ClassConnectionError, match="unknown host 'no-such-host.invalid'"):
        classroom.check_connection(room.student.replace("127.0.0.1", "no-such-host.invalid"), timeout=2)


def test_a_wrong_class_name_says_how_the_class_is_made(room):
    with pytest.raises(ValueError, match="no class sweep named 'lba'.*class create --name lba"):
        classroom.join("lba", room.student, progress=False)


def test_the_address_comes_from_the_environment_or_a_hidden_prompt(monkeypatch):
    monkeypatch.delenv(classroom.ENV, raising=False)
    with pytest.raises(classroom.ClassConnectionError, match=f"set {classroom.ENV}"):
        classroom.database_url(prompt=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "postgresql://s:pw@db.example.org/lab")
    assert classroom.database_url().startswith("postgresql+psycopg://s:pw@db.example.org")
    monkeypatch.setenv(classroom.ENV, "postgresql://s:pw@elsewhere/lab")
    assert "elsewhere" in classroom.database_url()


def test_a_missing_driver_and_a_non_address_are_clear_errors(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("psycopg") else real(name, *a))
    with pytest.raises(classroom.ClassConnectionError, match=r"no PostgreSQL driver is installed: pip install 'freezelab\[sweeps\]'"):
        classroom.normalize("postgresql://s:pw@db/lab")
    with pytest.raises(ImportError, match="asks for the driver 'psycopg2', which is not installed"):
        sweeps.storage_url("postgresql+psycopg2://s:pw@db/lab")
    with pytest.raises(ValueError, match="not a storage address"):
        sweeps.storage_url("my class database")
    with pytest.raises(ValueError, match="not a database address: http://example.org/x"):
        sweeps.storage_url("http://example.org/x")
    with pytest.raises(ValueError, match="the folder '/no/such/folder' does not exist"):
        sweeps.storage_url("sqlite:////no/such/folder/sweep.db")
    assert sweeps.storage_url("sqlite:///:memory:") == "sqlite:///:memory:"
    assert sweeps.masked("postgresql://s:secret@db/lab") == "postgresql://s:***@db/lab"


def test_the_teachers_notebook_creates_grants_watches_and_exports(postgres_database, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "teacher" / "class.ipynb", as_version=4)
    environment = {classroom.ENV: postgres_database.teacher, "FREEZELAB_CLASS_NAME": "nb-class",
                   "FREEZELAB_CLASS_STUDENT_ROLE": postgres_database.role, "FREEZELAB_WATCH_ROUNDS": "1"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "runs queued; role 'freezelab_students' may take them" in text and "0/51 done" in text
    assert "student-secret" not in text and "teacher-secret" not in text
    assert (tmp_path / "our-class.json").exists()
    assert classroom.join("nb-class", postgres_database.student, runs=1, student="ada", progress=False,
                          run=classroom.rehearsal(0)) == 1  # the grant let the students' role in
