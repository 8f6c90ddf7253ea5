"""Class mode: a whole class fills one sweep together, on a shared PostgreSQL database.

For: the teacher (`create_class`, `grant_students`, `status`, `frontier`, `watch`; `python -m freezelab class
...`) and the student (`join`: one notebook cell works through queued runs for some minutes and stops cleanly).
Everything queue-like is `freezelab.sweeps` on Optuna's RDB storage: workers pop queued runs atomically, beat
a heartbeat, and a run whose worker vanished goes back to the queue. The class's results export into the
shipped results' format with `python -m freezelab export`, so notebooks 04-06 can read the class's frontier.

Database addresses hold passwords: they come from the environment (FREEZELAB_CLASS_DB) or a hidden prompt,
and every message here shows them masked. Not for: running the database server (docs/class_mode.md shows
Debian's package, a container or a hosted PostgreSQL), or grading.
"""

from __future__ import annotations

import getpass
import os
import socket
import time

import pandas as pd

from .sweeps import masked, storage_url

ENV = "FREEZELAB_CLASS_DB"


class ClassConnectionError(ConnectionError):
    """The class database cannot be used: no address, no driver, unreachable, or the login was refused."""


def normalize(url: str) -> str:
    """`sweeps.storage_url`, with a missing driver reported as a ClassConnectionError."""
    try:
        return storage_url(url)
    except ImportError as error:
        raise ClassConnectionError(str(error)) from None


def database_url(url: str | None = None, prompt: bool = True) -> str:
    """The class database's address: `url`, else FREEZELAB_CLASS_DB, else a hidden prompt (never echoed)."""
    url = url or os.environ.get(ENV)
    if not url and prompt:
        url = getpass.getpass("Class database address (your teacher gives it; it is not shown): ").strip()
    if not url:
        raise ClassConnectionError(f"no class database address: set {ENV} (%env {ENV}=... in a notebook, "
                                   "or export it before starting Jupyter) or pass url=...")
    return normalize(url)


def check_connection(url: str, timeout: float = 10) -> None:
    """Log in once, within `timeout` seconds; raise ClassConnectionError that says what failed and the fix."""
    import sqlalchemy
    from sqlalchemy.exc import DBAPIError

    url = normalize(url)
    postgres = url.startswith("postgresql")
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": max(1, round(timeout))} if postgres else {})
    try:
        with engine.connect():
            pass
    except DBAPIError as error:
        raise ClassConnectionError(_explain(str(error.orig), url, timeout)) from None
    finally:
        engine.dispose()


def _explain(reason: str, url: str, timeout: float) -> str:
    from sqlalchemy.engine import make_url

    address = make_url(url)
    where = f"{address.host or 'the local socket'}:{address.port or 5432}"
    text = reason.lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return (f"the database at {where} refused the login of {address.username!r}: wrong user name or password "
                f"({masked(url)}); ask your teacher for the class's address again")
    if "does not exist" in text and "database" in text:
        return f"{where} has no database {address.database!r} ({masked(url)}); check the address's last part"
    if "timeout" in text or "timed out" in text:
        return (f"no answer from {where} within {timeout:g} s ({masked(url)}). The host may be down or a firewall "
                "may drop the connection; from Binder or Colab the database must be reachable from the internet")
    if "could not translate host name" in text or "name or service not known" in text:
        return f"unknown host {address.host!r} ({masked(url)}): check the spelling of the address"
    if "connection refused" in text:
        return (f"{where} refused the connection ({masked(url)}): nothing listens there. The server may be "
                "stopped, or listen on another port or address (PostgreSQL's listen_addresses)")
    return f"cannot use the class database {masked(url)}: {reason.strip().splitlines()[0]}"


def create_class(name: str, url: str, points: list[dict], settings) -> int:
    """The teacher creates the class's sweep (and Optuna's tables, owned by the teacher's role); returns its size."""
    from .sweeps import create_sweep

    url = normalize(url)
    check_connection(url)
    create_sweep(name, url, points, settings)
    return len(points)


def grant_students(url: str, role: str) -> None:
    """Let `role` work in the class: read and write the sweep's rows, nothing more. The tables stay the teacher's,
    so the role cannot drop or alter them. Run with the teacher's address, after `create_class`."""
    import sqlalchemy

    if not role.replace("_", "").isalnum():
        raise ValueError(f"role must be a plain PostgreSQL name (letters, digits, _), got {role!r}")
    engine = sqlalchemy.create_engine(normalize(url))
    try:
        with engine.begin() as connection:
            database = connection.exec_driver_sql("select current_database()").scalar()
            for statement in (f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"',
                              f'GRANT USAGE ON SCHEMA public TO "{role}"',
                              f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
                              f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def rehearsal(seconds: float = 2.0):
    """A stand-in for one run that only waits `seconds` and returns a record marked `rehearsal`: try the class's
    database, roles and queue before the lesson (`python -m freezelab class work --rehearse 2`), and simulate a
    class (benchmarks/class_mode.py). Its records say `rehearsal: True` and score 0: never results."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")

    def run(point: dict, settings) -> dict:
        time.sleep(seconds)
        return {**point, "rehearsal": True, "dev_metric": 0.0}

    return run


def _study(name: str, url: str):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=normalize(url))
    except KeyError:
        raise ValueError(f"no class sweep named {name!r} in {masked(url)}; the teacher creates it with "
                         f"`python -m freezelab class create --name {name} ...`") from None


def join(name: str, url: str | None = None, *, minutes: float | None = 10, runs: int | None = None,
         student: str | None = None, progress: bool = True, run=None) -> int:
    """Work through the class's queued runs for `minutes` (or `runs` runs); return how many this kernel finished.

    The address comes from `url`, FREEZELAB_CLASS_DB or a hidden prompt. The kernel's stop button ends the work
    cleanly: the run in progress goes back to the queue for someone else.
    run: what one run does (default: the real experiment, `experiment.run_point`); a stand-in for simulations.
    """
    from .sweeps import run_sweep

    url = database_url(url)
    check_connection(url)
    _study(name, url)  # a clear error for a wrong class name, before anything starts
    student = student or f"{getpass.getuser()}@{socket.gethostname()}"
    print(f"joined {name!r} on {masked(url)} as {student}; "
          f"{'until the queue is empty' if minutes is None else f'for up to {minutes:g} min'}")
    try:
        done = run_sweep(name, url, run=run, progress=progress, worker=student, max_runs=runs,
                         minutes=minutes)
    except KeyboardInterrupt:
        print("stopped; the run in progress went back to the queue")
        return 0
    print(f"{student} finished {done} run(s) for the class. Thank you!")
    return done


def status(name: str, url: str) -> dict:
    """What the class has done: runs done / running / queued, runs re-issued after their worker went silent,
    and finished runs per student."""
    return _status(_study(name, url))


def _status(study) -> dict:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = lambda state: sum(t.state == state for t in trials)  # noqa: E731
    reissued = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    workers = pd.Series([t.user_attrs.get("worker", "(unnamed)") for t in trials if t.state == TrialState.COMPLETE],
                        dtype=object)
    return {"runs": len(study.user_attrs["grid"]), "settings": study.user_attrs["settings"],
            "done": count(TrialState.COMPLETE), "running": count(TrialState.RUNNING), "queued": count(TrialState.WAITING),
            "reissued": len(reissued), "per_student": workers.value_counts().rename_axis("student").rename("runs done")}


def frontier(name: str, url: str) -> pd.DataFrame:
    """The class's finished runs, in the frame that `freezelab.results` tables and plots read."""
    from .sweeps import records

    return records(_study(name, url))


def watch(name: str, url: str | None = None, every: float = 15, rounds: int | None = None, retention: str | None = None):
    """The teacher's live view: the class frontier (error bars narrow as seeds arrive), progress and runs per
    student, redrawn every `every` seconds until the queue is empty (or `rounds` redraws, or the stop button)."""
    import ipywidgets
    from IPython.display import display

    from .plots import frontier_plot
    from .probes import retention_probe
    from .results import styled, summary
    from .sweeps import records

    study = _study(name, database_url(url))  # one open study for every redraw: no new connections each time
    out = ipywidgets.Output()
    display(out)
    shown = 0
    while rounds is None or shown < rounds:
        now = _status(study)
        frame = records(study)
        with out:
            out.clear_output(wait=True)
            print(f"{name}: {now['done']}/{now['runs']} done, {now['running']} running, {now['queued']} queued, "
                  f"{now['reissued']} re-issued after a worker went silent")
            if len(frame) and now["settings"]["probes"]:
                probe = retention or retention_probe(now["settings"]["checkpoint"])
                display(frontier_plot(frame, retention=probe, title=f"Class frontier: {len(frame)} runs so far"))
            elif len(frame):
                display(styled(summary(frame, metrics=("dev_metric",))))
            display(now["per_student"].to_frame())
        shown += 1
        if now["done"] == now["runs"]:
            break
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            break
    return _status(study)
