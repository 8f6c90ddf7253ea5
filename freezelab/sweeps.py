"""The queue: resumable sweeps of grid points, stored in Optuna's RDB storage, worked by any number of workers.

For: precomputing the course's full-size results (`python -m freezelab sweep
--preset frontier`, on a GPU or a patient CPU), small live grids in the
notebooks (`run_grid`) and class mode (`freezelab.classroom`). Points come
from `freezelab.grids`; each is run by `freezelab.experiment.run_point` and
its record is stored as JSON in an Optuna trial. Storage is an Optuna RDB
URL: a local SQLite file by default; a PostgreSQL URL lets several machines
share one sweep.

Guarantees: every grid point is enqueued once; workers pop queued points
atomically (two workers never run the same point); a finished run is never
lost or redone; a run killed mid-way is marked failed once its heartbeat is
older than the grace period and re-queued, so the next worker redoes it. That
holds too for a worker killed before its first heartbeat, which Optuna alone
would leave RUNNING for ever (`_start_heartbeat_clocks`).

Not for: choosing hyper-parameters by search (the grid is fixed), what a point is (`freezelab.grids`), running
one (`freezelab.experiment`) or plotting (`freezelab.plots`).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState
from tqdm.auto import tqdm

from .grids import OPTIONS, SweepSettings, describe, option
from .results import check_run


# --- storage and workers ---------------------------------------------------------------------

POSTGRES_DRIVERS = ("psycopg", "psycopg2")  # SQLAlchemy's names for them; psycopg (3) comes with the sweeps extra
STALE_RETRIES = 3  # times a run whose worker went silent is queued again
FAILED_RETRIES = 2  # times a run that raised is queued again; then it is abandoned (shown to the teacher)
FAILING_WORKER = 2  # failed runs in a row after which a worker stops: a broken machine must not use up the queue's
                    # retries, each of its runs failing in a second


RECONNECT_S = 120  # how long a worker waits for a database that went away (a restart) before it stops


def _connection_lost(error: BaseException) -> bool:
    """Whether an error (however Optuna and SQLAlchemy wrapped it) is a lost connection, not a refusal."""
    import sqlite3

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(getattr(error, "orig", None), sqlite3.Error):  # a locked file, not a lost server
            return False
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or \
                getattr(error, "connection_invalidated", False):
            return True
        error = error.__cause__ or error.__context__
    return False


def _first_line(error: BaseException) -> str:
    """The first line of the innermost database error: what psycopg said, without SQL or addresses."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = str(getattr(error, "orig", error)).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


class _RunFailed(Exception):
    """A run raised (or returned a record that check_run refuses); the worker goes on with the next run."""


SECRET_PARAMETERS = ("password", "sslpassword")  # libpq's parameters that hold a secret (passfile holds a path)


def masked(url: str) -> str:
    """A storage address with every secret replaced by ***: what every message and log line shows.

    Every form libpq accepts: a URL with user:password@, a URL with ?password= or ?sslpassword=, and a key=value
    string (`host=db user=s password=...`, quoted values included). Anything else is shown as nothing of it."""
    import re

    from sqlalchemy.engine import make_url

    text = str(url)
    if "://" not in text:  # libpq's key=value form, or not an address at all
        if not re.match(r"\s*\w+\s*=", text):
            return "<not a database address>"
        secret = "|".join(SECRET_PARAMETERS)
        return re.sub(rf"\b({secret})(\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", r"\1\2***", text)
    try:
        address = make_url(text)
        query = {key: ("***" if key.lower() in SECRET_PARAMETERS else value) for key, value in address.query.items()}
        shown = address.set(query=query).render_as_string(hide_password=True)
    except Exception:  # not even an address: show nothing of it
        return "<not a database address>"
    return shown.replace("%2A%2A%2A", "***")


def storage_url(url: str) -> str:
    """The address Optuna gets: `postgresql://` (the form people write) uses the PostgreSQL driver that is
    installed, psycopg 3 first; others pass through. Not an address, or a driver missing: a clear error."""
    import importlib.util

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        address = make_url(url)
    except (ArgumentError, TypeError, ValueError):
        raise ValueError(f"not a storage address: {masked(url)}; expected e.g. sqlite:///runs/sweep.db or "
                         "postgresql://user@host/database") from None
    backend, _, driver = address.drivername.partition("+")
    if backend not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise ValueError(f"not a database address: {masked(url)} ({backend!r} is no database Optuna can store a "
                         "sweep in); expected e.g. sqlite:///runs/sweep.db or postgresql://user@host/database")
    if backend == "sqlite":
        folder = Path(address.database or ".").expanduser().parent
        if address.database and not folder.is_dir():
            raise ValueError(f"{masked(url)}: the folder {str(folder)!r} does not exist (SQLite creates the file, "
                             "not its folder)")
        return url
    if backend not in ("postgresql", "postgres"):
        return url
    installed = [d for d in POSTGRES_DRIVERS if importlib.util.find_spec(d) is not None]
    if driver and driver not in installed:
        raise ImportError(f"{masked(url)} asks for the driver {driver!r}, which is not installed: "
                          f"pip install 'freezelab[sweeps]' installs psycopg (version 3); or write the address "
                          f"without '+{driver}' to use whichever driver is installed")
    if not installed:
        raise ImportError("no PostgreSQL driver is installed: pip install 'freezelab[sweeps]' (it installs psycopg, "
                          "version 3)")
    return address.set(drivername=f"postgresql+{driver or installed[0]}").render_as_string(hide_password=False)


@contextmanager
def _optuna_quiet(quiet: int = optuna.logging.WARNING):
    """Optuna's INFO lines off while the kit works with it; the caller's level comes back afterwards."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(quiet)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def storage(url: str, heartbeat: int = 30, grace: int = 120) -> RDBStorage:
    """Optuna RDB storage with heartbeats: a worker that dies stops beating, and its run is retried."""
    url = storage_url(url)
    sqlite = url.startswith("sqlite")
    # pre-ping: a pooled connection that died with a database restart is replaced, not handed to Optuna.
    # SQLite: the driver's own transactions off (isolation_level None), so that each transaction can begin
    # IMMEDIATE (below).
    options = {"connect_args": {"isolation_level": None}} if sqlite else {"pool_pre_ping": True}
    with warnings.catch_warnings():  # Optuna marks the heartbeat API experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        rdb = _Storage(url, engine_kwargs=options, heartbeat_interval=heartbeat, grace_period=grace,
                       heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=STALE_RETRIES))
    if sqlite:
        # Optuna takes a queued run by reading that it is WAITING, then writing RUNNING. SQLite's driver starts
        # a transaction only at the write, so two workers could both read WAITING and both run the point
        # (measured: 38 runs for 36 points, 4 workers). BEGIN IMMEDIATE takes SQLite's write lock before the
        # read, so one worker at a time reads-and-takes: several workers on one SQLite file each get a run
        # of their own (tests/test_sweeps.py). Optuna's documentation warns against SQLite for parallel
        # workers for this reason; PostgreSQL locks the row instead (SELECT ... FOR UPDATE).
        sqlalchemy.event.listen(rdb.engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    return rdb


class _Storage(RDBStorage):
    """Optuna's RDB storage, whose heartbeat thread survives a lost connection.

    Optuna beats from a thread of its own; an error there ends the thread with a traceback in the student's
    output, and the run beats no more. A beat missed while the database restarts is harmless (the next one
    lands; a run that misses a whole grace period is retried by another worker, and this worker's result for it
    is dropped, as for a stalled worker), so a lost connection skips the beat; any other error still surfaces."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:
            if not _connection_lost(error):
                raise


@contextmanager
def _one_creator(url: str, name: str):
    """Let one creator of sweep `name` through at a time, so two creators started at once queue each point once.

    PostgreSQL: an advisory lock, keyed by the schema the address opens and the sweep's name, held by a session
    of its own (a killed creator's lock ends with its connection). SQLite: an exclusive lock on a file beside
    the database."""
    url = storage_url(url)
    if url.startswith("sqlite"):
        import fcntl

        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.create-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if not url.startswith("postgresql"):
        yield
        return
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    key = "SELECT hashtext('freezelab-sweep:' || coalesce(current_schema(), '') || ':' || %(name)s)"
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock(({key}))", {"name": name})
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock(({key}))", {"name": name})
    finally:
        engine.dispose()


def _start_heartbeat_clocks(study: optuna.Study, rdb: RDBStorage) -> None:
    """Give a heartbeat now to every running run that never had one.

    Optuna fails a run whose heartbeat is stale, but skips a run with no heartbeat at all: a worker killed or
    paused between taking a run and its first heartbeat (a few milliseconds, one database write) would leave
    that run RUNNING for ever, and its point never done. From this beat on, the run is an ordinary one: if its
    worker is gone, it is stale one grace period later and goes back to the queue; if the worker is alive, its
    own heartbeats take over. The database clock stamps it, so workers' clocks need not agree.
    """
    study_id = rdb.get_study_id_from_name(study.study_name)
    query = sqlalchemy.text(  # Optuna's schema: a trial has at most one row in trial_heartbeats
        "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "WHERE t.study_id = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL")
    with rdb.engine.connect() as connection:
        unbeaten = connection.execute(query, {"study": study_id}).scalars().all()
    for trial_id in unbeaten:
        rdb.record_heartbeat(trial_id)


def create_sweep(name: str, url: str, points: list[dict], settings: SweepSettings, finished: dict | None = None,
                 **storage_options) -> optuna.Study:
    """Create (or reopen) the study and enqueue each grid point once; reopening never enqueues twice.

    Atomic and idempotent: one creator at a time (`_one_creator`); a creation that was interrupted is completed
    by the next one, which queues only the points not queued yet; the "grid" marker, which workers wait for, is
    written last, once every point is queued.
    finished: an exported sweep (`json.load` of an `export` file) made with the same settings. Its runs of
    points in this grid are stored as finished instead of being queued, so a grown grid trains only its new
    points (how the course's shipped frontier gained runs without redoing the old ones).
    """
    with _one_creator(url, name), _optuna_quiet():  # no "new study created" line in a notebook's stderr
        study = optuna.create_study(study_name=name, storage=storage(url, **storage_options), direction="maximize",
                                    load_if_exists=True)
        attrs = study.user_attrs
        if "settings" in attrs:  # made before, completely ("grid" set) or not
            stored = SweepSettings.from_dict(attrs["settings"])
            if attrs.get("grid", points) != points:
                raise ValueError(f"sweep {name!r} already exists with another grid; use another name")
            if stored != settings:
                here = settings.to_dict()
                differ = [f"{k} {v!r} there, {here.get(k)!r} here" for k, v in stored.to_dict().items()
                          if here.get(k) != v]
                raise ValueError(f"sweep {name!r} already exists with other settings ({'; '.join(differ)}); "
                                 "use those settings to go on with it, or another name")
            if "grid" in attrs:
                return study
        known = {}
        if finished is not None:
            if SweepSettings.from_dict(finished.get("settings", {})) != settings:
                raise ValueError(f"the finished runs were made with other settings ({finished.get('settings')}) than "
                                 f"this sweep's ({settings.to_dict()}); they cannot stand in for its runs")
            known = {_key(run, settings): run for run in finished["runs"]}
        study.set_user_attr("settings", settings.to_dict())
        queued = {_key(t.system_attrs["fixed_params"], settings) for t in study.get_trials(deepcopy=False)
                  if "fixed_params" in t.system_attrs}  # by an interrupted creation
        for point in points:  # in grid order, so that results come back in grid order
            if _key(point, settings) in queued:
                continue
            run = known.get(_key(point, settings))
            if run is None:
                study.enqueue_trial(point)
                continue
            study.add_trial(optuna.trial.create_trial(
                value=float(run["dev_metric"]), system_attrs={"fixed_params": point},
                user_attrs={"point": point, "record": json.dumps(run)}))
        study.set_user_attr("grid", points)  # last: the sweep is complete, workers may start
        return study


def _key(point: dict, settings: SweepSettings) -> str:
    """What identifies a grid point: plan, lr, size, seed and the options it sets. A run's record also spells out
    the options it left at the sweep's values (pooling "cls", the sweep's epochs), so those are left out."""
    defaults = {"pooling": "cls", "epochs": settings.epochs, "head_start": settings.head_start}
    options = {o: option(point, o) for o in OPTIONS if option(point, o) not in (None, defaults.get(o))}
    return json.dumps([point["plan"], float(point["lr"]), int(point["train_size"]), int(point["seed"]), options],
                      sort_keys=True)


def _run_point(point: dict, settings: SweepSettings) -> dict:
    from .experiment import run_point  # torch and transformers load with the first run, not with the queue

    return run_point(point, settings).to_dict()


def run_sweep(name: str, url: str, run: Callable | None = None, log=print, progress: bool = True, *, worker: str | None = None,
              max_runs: int | None = None, minutes: float | None = None, memory: str = "fast",
              **storage_options) -> int:
    """Work through the queue until it is empty; return how many runs this worker finished.

    Safe to start several times, on several machines, and to kill at any time. Interrupted (the kernel's
    stop button, Ctrl-C), the run in progress goes back to the queue before the interrupt is raised again.
    run: what one point does, `run(point, settings) -> dict` (default: `experiment.run_point`'s record).
    worker: a name stored with each run this worker finishes (class mode counts runs per student).
    max_runs / minutes: stop after that many finished runs, or start no new run after that many minutes.
    memory: this worker's `TrainConfig.memory`, "fast" or "lean" (it changes no number, so it is not the sweep's).
    """
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1):
        raise ValueError(f"max_runs must be a whole number >= 1 (or None: until the queue is empty), got {max_runs!r}")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise ValueError(f"minutes must be a number > 0 (or None: until the queue is empty), got {minutes!r}")
    run = run or _run_point
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    rdb = storage(url, **storage_options)
    study = optuna.load_study(study_name=name, storage=rdb)
    if "grid" not in study.user_attrs:  # written last by create_sweep: the queue may still be filling
        raise ValueError(f"sweep {name!r} is not completely created yet (its creation is running, or was "
                         "interrupted): wait for it, or run the create command again, which completes it")
    settings = SweepSettings.from_dict(study.user_attrs["settings"]).replace(memory=memory)
    with warnings.catch_warnings():  # Optuna marks fail_stale_trials experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)  # runs whose worker died long enough ago go back to the queue
    _start_heartbeat_clocks(study, rdb)  # and runs whose worker died before its first heartbeat, a grace period on
    total = len(study.user_attrs["grid"])
    finished_at_start = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    bar = tqdm(total=total, initial=finished_at_start, unit="run", desc=name, disable=not progress, smoothing=0)
    done, started, failing = 0, time.perf_counter(), []  # failing: this worker's failed runs since its last success

    def objective(trial: optuna.Trial) -> float:
        # Only the running trials (at most one per worker): reading every trial per run grows with the sweep.
        frozen = next(t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                      if t.number == trial.number)
        if "fixed_params" not in frozen.system_attrs:  # the queue is empty: do not sample new points
            trial.study.stop()
            raise optuna.TrialPruned("queue empty")
        point = dict(frozen.system_attrs["fixed_params"])
        failures = int(frozen.user_attrs.get("failures", 0))  # earlier attempts at this point that raised
        try:
            return attempt(trial, point, failures)
        except KeyboardInterrupt:
            # The stop button, at any step from taking the run to storing its result: Optuna marks this trial
            # failed, so its point is queued again here, for the next worker.
            trial.study.enqueue_trial(point, user_attrs={"failures": failures})
            log(f"interrupted: {describe(point)}, seed {point['seed']} went back to the queue")
            raise

    def attempt(trial: optuna.Trial, point: dict, failures: int) -> float:
        trial.set_user_attr("point", point)  # not suggest_*: Optuna's distributions cannot vary per trial
        if worker is not None:
            trial.set_user_attr("worker", worker)
        try:
            record = run(point, settings)
            check_run(record)  # a record that would be refused when shown or loaded is a failed run here
            value = float(record["dev_metric"])
        except Exception as error:
            reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
            trial.set_user_attr("error", reason)
            failing.append(reason)
            if failures < FAILED_RETRIES:
                trial.study.enqueue_trial(point, user_attrs={"failures": failures + 1})
                log(f"failed ({reason}): {describe(point)}, seed {point['seed']} went back to the queue "
                    f"(retry {failures + 1} of {FAILED_RETRIES})")
            else:
                trial.set_user_attr("abandoned", True)
                log(f"failed ({reason}): {describe(point)}, seed {point['seed']} failed {failures + 1} times and "
                    "is abandoned; the teacher's status names it")
            if len(failing) >= FAILING_WORKER:
                trial.study.stop()
            raise _RunFailed(reason) from None
        failing.clear()
        trial.set_user_attr("record", json.dumps(record))
        return value

    def enough() -> bool:
        return (max_runs is not None and done >= max_runs) or (deadline is not None and time.monotonic() >= deadline)

    def after_each(study: optuna.Study, trial) -> None:
        nonlocal done
        if trial.state != TrialState.COMPLETE:
            return
        done += 1
        finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        left = total - finished
        eta = left * (time.perf_counter() - started) / done
        point = trial.user_attrs["point"]
        line = (f"[{finished}/{total}] {describe(point)}, {point['train_size']} sentences, seed {point['seed']}"
                f" -> {trial.value:.4f} · ETA {eta / 60:.1f} min at this worker's pace")
        bar.update(finished - bar.n)
        bar.write(line) if progress else log(line)
        if enough() or not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.stop()

    # ERROR: a failed run's line is this worker's own (above); Optuna's warning would repeat it with a traceback
    with _optuna_quiet(optuna.logging.ERROR):  # the progress line says what Optuna would
        lost_since = None  # when this worker lost the database; None while it answers
        while True:
            try:
                if enough() or len(failing) >= FAILING_WORKER or \
                        not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                    break
                study.optimize(objective, callbacks=[after_each], catch=(_RunFailed,))
                lost_since = None
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
                if isinstance(error, ValueError) and not str(error).startswith("Cannot tell a"):
                    raise
                # This worker stalled (a paused machine, a starved CPU) past the grace period: another worker
                # declared its run dead and re-queued it. Drop this copy of the result and go on with the queue.
                log(f"a run of this worker went more than {storage_options.get('grace', 120)} s without a heartbeat; "
                    f"it was re-queued for another worker, so this worker's result for it is dropped")
            except Exception as error:
                if not _connection_lost(error):
                    raise
                # A database restart or a network cut: the run in progress was not stored, and is retried (by
                # anyone) once its heartbeat is stale; finished runs are in the database. Wait for it to return.
                lost_since = lost_since or time.monotonic()
                reason = _first_line(error)
                if time.monotonic() - lost_since > RECONNECT_S:
                    bar.close()
                    raise ConnectionError(
                        f"this worker stopped: the database {masked(url)} has not answered for {RECONNECT_S} s "
                        f"({reason}). Its finished runs are kept; the run it had in progress goes back to the queue "
                        "once its heartbeat is stale. Start the worker again when the database is back") from None
                log(f"lost the database ({reason}); trying again in 5 s, for up to {RECONNECT_S} s")
                time.sleep(5)
    bar.close()
    if len(failing) >= FAILING_WORKER:
        log(f"this worker stopped after {len(failing)} failed runs in a row (last: {failing[-1]}); their points "
            "went back to the queue for others. Mend what the message says, then start it again")
    running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if running:
        log(f"{running} run(s) still RUNNING: another worker's, or killed ones that the next worker retries "
            f"once their heartbeat is stale")
    return done


def run_grid(points: list[dict], settings: SweepSettings, url: str, name: str | None = None,
             progress: bool = True, log=print, run: Callable | None = None) -> pd.DataFrame:
    """Create (or reopen) a sweep for these points and train only what no earlier run holds; return every run.

    Runs are reused point by point: a point that any finished sweep in this storage already ran with the same
    settings (another grid, another notebook) is stored as finished, not trained again, so adding a point to a
    grid trains that point only. The default name is a hash of the grid and settings, so re-running a cell
    reopens the same sweep. The returned frame's `attrs["reused"]` and `attrs["trained"]` say how many runs
    came from earlier sweeps and how many this call trained. run: as for `run_sweep`.
    """
    if name is None:
        key = json.dumps([points, settings.to_dict()], sort_keys=True)
        name = "grid-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    earlier = finished_runs(url, settings, exclude=name)
    wanted = {_key(point, settings) for point in points}
    reused = [run for key, run in earlier.items() if key in wanted]
    study = create_sweep(name, url, points, settings, finished={"settings": settings.to_dict(), "runs": reused})
    before = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    trained = run_sweep(name, url, run=run, progress=progress, log=log, memory=settings.memory)
    frame = results(name, url)
    frame.attrs.update(reused=before, trained=trained)
    if before:
        log(f"{before} of {len(points)} runs reused from earlier runs with the same settings; {trained} trained now")
    return frame


def finished_runs(url: str, settings: SweepSettings, exclude: str | None = None) -> dict[str, dict]:
    """Every checked finished run in this storage made with these settings, keyed by its point (`_key`):
    the run store that `run_grid` reuses. Sweeps with other settings, and the sweep named `exclude`, are skipped."""
    found = {}
    rdb = storage(url)
    with _optuna_quiet():
        for summary in rdb.get_all_studies():
            attrs = summary.user_attrs
            if summary.study_name == exclude or "grid" not in attrs:
                continue
            try:
                if SweepSettings.from_dict(attrs["settings"]) != settings:
                    continue
            except (TypeError, ValueError):  # settings of a sweep this version cannot read: not ours to reuse
                continue
            study = optuna.load_study(study_name=summary.study_name, storage=rdb)
            for run in checked(study)["runs"]:
                found.setdefault(_key(run, settings), run)
    return found


def results(name: str, url: str) -> pd.DataFrame:
    """One row per finished grid point (records of retried runs appear once: only COMPLETE trials count)."""
    return records(optuna.load_study(study_name=name, storage=storage_url(url)))


def records(study: optuna.Study) -> pd.DataFrame:
    """`results` of a study already open (a watcher that redraws keeps one connection instead of opening more)."""
    return pd.DataFrame(checked(study)["runs"])


def checked(study: optuna.Study) -> dict:
    """The study's finished runs as the teacher may trust them to be shown: one per grid point, in grid order,
    each record checked (`results.check_run`) and of the point it was queued for.

    Returns runs (the records), refused (trial number -> why, for records that failed the check), extra
    (finished runs of a point already counted, or of no grid point: ignored) and missing (grid points with no
    finished run and none queued or running: failed past their retries, or lost)."""
    settings = SweepSettings.from_dict(study.user_attrs["settings"])
    grid = {_key(point, settings): point for point in study.user_attrs.get("grid", [])}
    runs, refused, extra, pending = {}, {}, 0, set()
    for trial in study.get_trials(deepcopy=False):
        try:  # fixed_params: the point as it was queued, which a student cannot rewrite (the class's guards)
            key = _key(trial.system_attrs["fixed_params"], settings)
        except (KeyError, TypeError, ValueError):
            key = None
        if trial.state in (TrialState.WAITING, TrialState.RUNNING):
            pending.add(key)
        if trial.state != TrialState.COMPLETE:
            continue
        if key not in grid or key in runs:
            extra += 1
            continue
        try:
            record = check_run(json.loads(trial.user_attrs["record"]))
            if _key(record, settings) != key:
                raise ValueError("the record is of another point than the run was queued for")
        except (KeyError, TypeError, ValueError) as error:  # json's errors are ValueErrors
            refused[trial.number] = str(error)
            continue
        runs[key] = record
    return {"runs": [runs[key] for key in grid if key in runs], "refused": refused, "extra": extra,
            "missing": [grid[key] for key in grid if key not in runs and key not in pending]}


def merge_exports(paths: list[str]) -> dict:
    """Several exported sweeps made with the same settings, read as one (their runs together), for `finished`."""
    files = []
    for path in paths:
        with open(path) as handle:
            files.append(json.load(handle))
    first = SweepSettings.from_dict(files[0].get("settings", {}))
    for path, found in zip(paths[1:], files[1:]):
        if SweepSettings.from_dict(found.get("settings", {})) != first:
            raise ValueError(f"{path} was made with other settings than {paths[0]}; only runs made with the same "
                             "settings can stand in for one sweep's runs")
    return {"settings": files[0].get("settings", {}), "runs": [run for found in files for run in found["runs"]]}


def export(name: str, url: str, path: str, log=print) -> int:
    """Write the finished runs to a small JSON file (losses kept, per-evaluation history dropped) to ship.
    Points without a trustworthy finished run are named (in the log and the file's "missing")."""
    study = optuna.load_study(study_name=name, storage=storage_url(url))
    found = checked(study)
    rows = pd.DataFrame(found["runs"]).drop(columns=["evaluations"], errors="ignore").to_dict(orient="records")
    settings = SweepSettings.from_dict(study.user_attrs["settings"])
    done = {_key(run, settings) for run in found["runs"]}
    absent = [point for point in study.user_attrs.get("grid", []) if _key(point, settings) not in done]
    with open(path, "w") as handle:
        json.dump({"freezelab_sweep": 1, "name": name, "settings": study.user_attrs["settings"], "runs": rows,
                   "missing": absent}, handle, indent=None, separators=(",", ":"))
    if absent:
        log(f"{len(absent)} of {len(study.user_attrs['grid'])} grid points have no finished run in this export: "
            + "; ".join(f"{describe(p)}, {p['train_size']} sentences, seed {p['seed']}" for p in absent[:10])
            + (" ..." if len(absent) > 10 else ""))
    return len(rows)
