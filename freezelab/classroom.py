"""Class mode: a whole class fills one sweep together, on a shared PostgreSQL database.

For: the teacher (`create_class`, `grant_students`, `status`, `frontier`, `watch`, `export`, `requeue`,
`audit`;
`python -m freezelab class ...`) and the student (`join`: one notebook cell works through queued runs for some
minutes and stops cleanly). Everything queue-like is `freezelab.sweeps` on Optuna's RDB storage: workers pop
queued runs atomically, beat a heartbeat, and a run whose worker vanished goes back to the queue. The class's
results export into the shipped results' format (`export`), so notebooks 04-06 can read the class's frontier.

Each class is a PostgreSQL schema of its own, owned by the teacher's role; the students' group role gets only
what a worker needs there (column grants), and triggers refuse the rest (`_guards`): docs/class_mode.md has the
table of who may do what. What students store is data: it is checked (`results.check_run`) and shown as text.
Database addresses hold passwords: they come from the environment (FREEZELAB_CLASS_DB), Colab's secrets or a
hidden prompt, never from a cell, and every message here shows them masked.

Not for: running the database server (docs/class_mode.md shows Debian's package, a container or a hosted
PostgreSQL), creating roles (the database's administrator does), or grading.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import time
import warnings

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
    """The class database's address: `url`, else FREEZELAB_CLASS_DB from the environment, else Colab's secret of
    that name, else a hidden prompt (never echoed). Never from a cell's text: that is saved in the notebook."""
    url = url or os.environ.get(ENV) or _colab_secret()
    if not url and prompt:
        url = getpass.getpass("Class database address (your teacher gives it; it is not shown): ").strip()
    if not url:
        raise ClassConnectionError(f"no class database address: answer the prompt, store it as Colab's secret {ENV}, "
                                   f"or set {ENV} in the environment before starting Jupyter (never in a cell: a "
                                   "cell's text is saved in the notebook file)")
    return normalize(url)


def _colab_secret() -> str | None:
    """Colab's secret FREEZELAB_CLASS_DB (the key icon), where the kernel runs on Colab and the notebook may read
    it; None elsewhere, or where it is not stored or not granted."""
    try:
        from google.colab import userdata
    except ImportError:
        return None
    try:
        return userdata.get(ENV)
    except Exception:  # SecretNotFoundError, NotebookAccessError: fall through to the prompt
        return None


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


# PostgreSQL 13 is the oldest release its developers still supported when this was written; what the class
# relies on (row triggers, column grants, has_*_privilege, txid_current) is older, and what differs between
# versions (CREATE on schema public, granted to every role before 15) is revoked and then checked on the
# server itself, not assumed from its version. The tests run on 15.
SUPPORTED = 13
NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def class_schema(name: str) -> str:
    """The PostgreSQL schema that holds class `name`: each class its own, so grants on it reach no other."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"a class name is 1-40 lower-case letters, digits, '-' or '_', starting with a letter; "
                         f"got {name!r}")
    return f"class_{name}"


def class_url(url: str, name: str) -> str:
    """The address with the class's schema as the connection's only search path (libpq's `options`): Optuna's
    tables are found, and made, there. Options already in the address are kept."""
    from sqlalchemy.engine import make_url

    address = make_url(normalize(url))
    before = address.query.get("options", "")
    if isinstance(before, tuple):
        before = " ".join(before)
    path = f'-csearch_path="{class_schema(name)}"'  # quoted: names may hold '-'
    return address.update_query_dict({"options": f"{before} {path}".strip()}).render_as_string(hide_password=False)


def _postgres_only(url: str) -> str:
    if not url.startswith("postgresql"):
        raise ValueError(f"class mode needs PostgreSQL (its roles and grants keep students to their part), not "
                         f"{masked(url)}; a sweep of one's own runs on SQLite with `python -m freezelab sweep`")
    return url


def check_server(connection) -> int:
    """The server's major version, or a ValueError naming it and what is supported."""
    number = int(connection.exec_driver_sql("SHOW server_version_num").scalar())
    if number < SUPPORTED * 10000:
        shown = connection.exec_driver_sql("SHOW server_version").scalar().split()[0]
        raise ValueError(f"the class database runs PostgreSQL {shown}; class mode supports PostgreSQL {SUPPORTED} and "
                         "newer (older releases no longer get security fixes): upgrade the server, or use a hosted "
                         "PostgreSQL")
    return number // 10000


def _refused(error, url: str, doing: str) -> str:
    """A database error as one clear line: a refused privilege names the role to use; nothing shows a password."""
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
    if "permission denied" in reason or "must be owner" in reason or "freezelab class:" in reason:
        return (f"could not {doing}: the database refused ({reason}). This needs the teacher's address (the role "
                f"that created the class), not a student's ({masked(url)})")
    return f"could not {doing} in {masked(url)}: {reason}"


def create_class(name: str, url: str, points: list[dict], settings, **storage_options) -> int:
    """The teacher creates the class: its own schema (owned by the teacher's role), Optuna's tables inside it, the
    guards that keep students to a worker's part, and the queued runs; returns the class's size.

    Safe to run again and from two places at once: a PostgreSQL advisory lock lets one creator through at a
    time, and `sweeps.create_sweep` queues only the points not queued yet. Refuses a server older than
    PostgreSQL 13 (SUPPORTED says why)."""
    import sqlalchemy

    from .sweeps import create_sweep

    schema = class_schema(name)
    url = _postgres_only(normalize(url))
    check_connection(url)
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            check_server(connection)
            # One creator at a time per class; a session lock, so a killed creator's lock goes with its connection.
            connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext(%(key)s))", {"key": f"freezelab-class:{name}"})
            try:
                owner = connection.exec_driver_sql(
                    "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %(s)s", {"s": schema}).scalar()
                me = connection.exec_driver_sql("SELECT current_user").scalar()
                if owner is None:
                    connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                elif owner != me and not connection.exec_driver_sql(
                        "SELECT pg_has_role(current_user, %(o)s, 'MEMBER')", {"o": owner}).scalar():
                    raise ValueError(f"class {name!r} exists and belongs to the role {owner!r}, not to {me!r}: "
                                     "create it with the teacher's address it was made with, or choose another name")
                create_sweep(name, class_url(url, name), points, settings, **storage_options)
                tables = connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = %(s)s",
                                                    {"s": schema}).scalars().all()
                with connection.connection.cursor() as cursor:  # no parameters: plpgsql's '%' stays as it is
                    cursor.execute(_guards(schema, tables))
            finally:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(hashtext(%(key)s))",
                                           {"key": f"freezelab-class:{name}"})
    except sqlalchemy.exc.DBAPIError as error:
        raise ClassConnectionError(_refused(error, url, "create the class")) from None
    finally:
        engine.dispose()
    return len(points)


# The tables a worker writes, and the columns it updates there (what `sweeps.run_sweep` does through Optuna:
# take a queued run, beat, fail a stale run, queue a retry, store attributes and the value). Everything else
# in the class's schema is read-only to students. UPDATE is granted per column: PostgreSQL then refuses
# LOCK TABLE (which needs a table-wide UPDATE), so no student can freeze the queue with a table lock.
WORKER_WRITES = {
    "trials": ("state", "number", "datetime_start", "datetime_complete"),
    "trial_values": ("value", "value_type"),
    "trial_user_attributes": ("value_json",),
    "trial_system_attributes": ("value_json",),
    "trial_heartbeats": ("heartbeat",),
}


def _guards(schema: str, tables: list[str]) -> str:
    """Triggers that hold for every role but the class's owner (the teacher). Grants say which tables and
    columns a student may write; these say which rows and transitions: no finished run changes, no queued point
    is rewritten, the class's definition never changes. A trial changed earlier in the same transaction is
    being created or finished right now (Optuna writes a trial, then its value and attributes, in one
    transaction), which is how a worker's own writes are told from a rewrite of a finished run."""
    finished = "('COMPLETE', 'FAIL', 'PRUNED')"
    return f"""
CREATE OR REPLACE FUNCTION "{schema}".freezelab_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog AS $guard$
DECLARE
  parent record;
  is_owner boolean;
BEGIN
  SELECT pg_has_role(current_user, n.nspowner, 'MEMBER') INTO is_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = TG_RELID;
  IF is_owner THEN  -- the teacher: creates the class, may mend or delete it
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'freezelab class: students may not delete (%)', TG_TABLE_NAME USING ERRCODE = '42501';
  END IF;
  IF TG_TABLE_NAME = 'trials' THEN
    IF TG_OP = 'INSERT' THEN
      IF NEW.state NOT IN ('RUNNING', 'WAITING') THEN
        RAISE EXCEPTION 'freezelab class: a new run starts RUNNING or WAITING, not %', NEW.state USING ERRCODE = '42501';
      END IF;
      RETURN NEW;
    END IF;
    IF OLD.state IN {finished} THEN
      RAISE EXCEPTION 'freezelab class: run % is finished (%); finished runs never change', OLD.number, OLD.state
        USING ERRCODE = '42501';
    END IF;
    IF OLD.state = 'WAITING' AND NEW.state NOT IN ('WAITING', 'RUNNING') THEN
      RAISE EXCEPTION 'freezelab class: a queued run is taken (RUNNING) before it ends' USING ERRCODE = '42501';
    END IF;
    IF OLD.number IS NOT NULL AND NEW.number IS DISTINCT FROM OLD.number THEN
      RAISE EXCEPTION 'freezelab class: a run keeps its number' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
  END IF;
  IF TG_TABLE_NAME IN ('trial_values', 'trial_user_attributes', 'trial_system_attributes', 'trial_heartbeats') THEN
    IF TG_OP = 'UPDATE' AND NEW.trial_id IS DISTINCT FROM OLD.trial_id THEN
      RAISE EXCEPTION 'freezelab class: a value or attribute stays with its run' USING ERRCODE = '42501';
    END IF;
    SELECT t.state, t.xmin::text = (txid_current() % 4294967296)::text AS mine_now INTO parent
      FROM "{schema}".trials t WHERE t.trial_id = NEW.trial_id;
    IF parent.state IN {finished} AND NOT parent.mine_now THEN
      RAISE EXCEPTION 'freezelab class: run is finished (%); its values and attributes never change', parent.state
        USING ERRCODE = '42501';
    END IF;
    IF TG_TABLE_NAME = 'trial_system_attributes' AND (TG_OP = 'UPDATE' OR NOT parent.mine_now) THEN
      -- a run's system attributes (its grid point, its retry history) are written once, as it is queued
      RAISE EXCEPTION 'freezelab class: a run''s point is set when it is queued, never later' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'freezelab class: % belongs to the class''s definition, which only the teacher changes',
    TG_TABLE_NAME USING ERRCODE = '42501';
END
$guard$;
REVOKE ALL ON FUNCTION "{schema}".freezelab_guard() FROM PUBLIC;
""" + "".join(  # every table of the class: one Optuna adds later is read-only to students (the last RAISE)
        f'DROP TRIGGER IF EXISTS freezelab_guard ON "{schema}"."{table}";\n'
        f'CREATE TRIGGER freezelab_guard BEFORE INSERT OR UPDATE OR DELETE ON "{schema}"."{table}" '
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".freezelab_guard();\n'
        for table in tables)


def grant_students(name: str, url: str, role: str) -> None:
    """Let `role` work in class `name`, and nothing more: read the class, take and finish queued runs, beat,
    queue retries. Run with the teacher's address, after `create_class`.

    `role` is best a group role (NOLOGIN) whose members are one login role per student (docs/class_mode.md
    says why). Refused when the role could do more than the class needs: a superuser, a role that may create
    roles or databases or bypass row security, a member of a predefined pg_* role or of the teacher's role; and
    when the database would still let it create objects (PostgreSQL 13-14 grant CREATE on schema public to
    every role; the teacher revokes it here where the teacher may, else the error says what to run)."""
    import sqlalchemy

    schema = class_schema(name)
    if not (role.replace("_", "").isalnum() and role.isascii()) or role.lower() != role:
        raise ValueError(f"role must be a plain lower-case PostgreSQL name (letters, digits, _), got {role!r}")
    url = _postgres_only(normalize(url))
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            sql = connection.exec_driver_sql
            check_server(connection)
            owner = sql("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %(s)s", {"s": schema}).scalar()
            if owner is None:
                raise ValueError(f"no class named {name!r} in {masked(url)}: create it first "
                                 f"(`python -m freezelab class create --name {name} ...`)")
            if not sql("SELECT pg_has_role(current_user, %(o)s, 'MEMBER')", {"o": owner}).scalar():
                raise ClassConnectionError(f"could not grant the students' role: class {name!r} belongs to the role "
                                           f"{owner!r}. This needs the teacher's address (the role that created the "
                                           f"class), not {masked(url)}")
            _check_student_role(connection, role)
            database = sql("SELECT current_database()").scalar()
            # Students create nothing: no table in public (granted to PUBLIC before PostgreSQL 15), no
            # temporary table, no schema. Revoked explicitly, then checked below, whatever the version.
            for statement in ("REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                              f'REVOKE TEMPORARY, CREATE ON DATABASE "{database}" FROM PUBLIC',
                              f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"',
                              f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"',
                              f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
                              f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
                              f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
                              # Optuna locks the study's row (SELECT ... FOR UPDATE) to number a new run, which
                              # needs UPDATE on one column; the guard refuses any actual update of it.
                              f'GRANT UPDATE (study_name) ON "{schema}".studies TO "{role}"'):
                try:
                    with connection.begin_nested():
                        sql(statement)
                except sqlalchemy.exc.ProgrammingError:  # not the owner of public (13-14): checked below
                    pass
            for table, columns in WORKER_WRITES.items():
                sql(f'GRANT INSERT, UPDATE ({", ".join(columns)}) ON "{schema}".{table} TO "{role}"')
            _check_creates_nothing(connection, role, database)
    except sqlalchemy.exc.DBAPIError as error:
        raise ClassConnectionError(_refused(error, url, "grant the students' role")) from None
    finally:
        engine.dispose()


def _check_student_role(connection, role: str) -> None:
    """Refuse a role that would be more than a worker: the class's guards and grants would not bind it."""
    row = connection.exec_driver_sql(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, pg_has_role(%(r)s, current_user, 'MEMBER'), "
        "pg_has_role(current_user, %(r)s, 'MEMBER') FROM pg_roles WHERE rolname = %(r)s", {"r": role}).first()
    if row is None:
        raise ValueError(f"no role {role!r} on this server: the database's administrator creates it "
                         "(docs/class_mode.md, 'Two kinds of roles')")
    superuser, createrole, createdb, bypassrls, is_teacher, teacher_in_it = row
    powers = [what for what, has in (("SUPERUSER", superuser), ("CREATEROLE", createrole), ("CREATEDB", createdb),
                                     ("BYPASSRLS", bypassrls)) if has]
    if is_teacher or teacher_in_it:
        powers.append("the teacher's own role (or a member of it)")
    predefined = connection.exec_driver_sql(
        "SELECT string_agg(rolname, ', ') FROM pg_roles WHERE rolname LIKE 'pg\\_%%' "
        "AND pg_has_role(%(r)s, oid, 'MEMBER')", {"r": role}).scalar()
    if predefined:
        powers.append(f"member of {predefined}")
    if powers:
        raise ValueError(f"the role {role!r} may do more than a student's worker needs ({'; '.join(powers)}): "
                         "give students a plain role (LOGIN or a NOLOGIN group, no other attribute)")


def _check_creates_nothing(connection, role: str, database: str) -> None:
    """After the grants: the role may create no object anywhere in this database, whatever the server version."""
    sql = connection.exec_driver_sql
    schemas = sql("SELECT string_agg(nspname, ', ') FROM pg_namespace WHERE has_schema_privilege(%(r)s, oid, 'CREATE')",
                  {"r": role}).scalar()
    if schemas:
        raise ValueError(f"the role {role!r} may still create tables in schema(s) {schemas} (PostgreSQL before 15 "
                         "grants CREATE on schema public to every role, and only its owner may revoke it): as the "
                         f"database's administrator run `REVOKE CREATE ON SCHEMA public FROM PUBLIC;` in {database!r}, "
                         "then grant again")
    for privilege in ("CREATE", "TEMPORARY"):
        if sql("SELECT has_database_privilege(%(r)s, current_database(), %(p)s)", {"r": role, "p": privilege}).scalar():
            raise ValueError(f"the role {role!r} has {privilege} on database {database!r} (granted to it or to PUBLIC): "
                             f"as the administrator run `REVOKE {privilege} ON DATABASE \"{database}\" FROM PUBLIC;` "
                             f"and `REVOKE {privilege} ON DATABASE \"{database}\" FROM \"{role}\";`, then grant again")


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
    """Class `name`'s study, opened in its schema; a clear error where there is no such class or no access."""
    import optuna
    import sqlalchemy

    address = class_url(_postgres_only(url), name)
    engine = sqlalchemy.create_engine(address)
    try:
        with engine.connect() as connection:
            found, usable = connection.exec_driver_sql(
                "SELECT count(*) > 0, bool_or(has_schema_privilege(oid, 'USAGE')) FROM pg_namespace "
                "WHERE nspname = %(s)s", {"s": class_schema(name)}).one()
    except sqlalchemy.exc.DBAPIError as error:
        raise ClassConnectionError(_explain(str(error.orig), url, 10)) from None
    finally:
        engine.dispose()
    if not found:
        raise ValueError(f"no class sweep named {name!r} in {masked(url)}; the teacher creates it with "
                         f"`python -m freezelab class create --name {name} ...`")
    if not usable:
        raise ValueError(f"class {name!r} exists, but this role may not use it ({masked(url)}): the teacher lets "
                         f"students in with `python -m freezelab class grant --name {name} --role ...`")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # skip_table_creation: opening a class never creates anything (a student could not, and should not)
        return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(
            address, skip_table_creation=True, engine_kwargs={"pool_pre_ping": True}))


def export(name: str, url: str, path) -> int:
    """Write the class's finished runs to `path`, in the shipped results' format (`sweeps.export`)."""
    from .sweeps import export as export_sweep

    _study(name, url)  # the clear errors first
    return export_sweep(name, class_url(url, name), str(path))


def join(name: str, url: str | None = None, *, minutes: float | None = 10, runs: int | None = None,
         student: str | None = None, progress: bool = True, run=None, memory: str = "fast") -> int:
    """Work through the class's queued runs for `minutes` (or `runs` runs); return how many this kernel finished.

    The address comes from `url`, FREEZELAB_CLASS_DB or a hidden prompt. The kernel's stop button ends the work
    cleanly: the run in progress goes back to the queue for someone else.
    run: what one run does (default: the real experiment, `experiment.run_point`); a stand-in for simulations.
    memory: this kernel's `TrainConfig.memory` (a notebook passes `course.memory`).
    """
    from .sweeps import run_sweep

    url = database_url(url)
    check_connection(url)
    _study(name, url)  # a clear error for a wrong class name, before anything starts
    student = student or f"{getpass.getuser()}@{socket.gethostname()}"
    print(f"joined {name!r} on {masked(url)} as {student}; "
          f"{'until the queue is empty' if minutes is None else f'for up to {minutes:g} min'}")
    try:
        done = run_sweep(name, class_url(url, name), run=run, progress=progress, worker=student, max_runs=runs,
                         minutes=minutes, memory=memory)
    except KeyboardInterrupt:
        print("stopped; the run in progress went back to the queue")
        return 0
    except ConnectionError as error:  # the database went away for longer than a restart takes
        raise ClassConnectionError(str(error)) from None
    print(f"{student} finished {done} run(s) for the class. Thank you!")
    return done


def status(name: str, url: str) -> dict:
    """What the class has done: runs done / running / queued, runs re-issued after their worker went silent,
    finished runs per student, and the points that will not be done without the teacher (`missing`: failed past
    their retries, or lost) with the last error of each; records refused by the check (`refused`)."""
    return _status(_study(name, url))


WORKER_NAME = re.compile(r"[\w .@+-]{1,60}")  # what a worker's name may be when shown; anything else is replaced


def _status(study) -> dict:
    from optuna.trial import TrialState

    from .grids import SweepSettings, describe
    from .sweeps import _key, checked

    trials = study.get_trials(deepcopy=False)
    count = lambda state: sum(t.state == state for t in trials)  # noqa: E731
    reissued = {t.system_attrs["failed_trial"] for t in trials if "failed_trial" in t.system_attrs}
    workers = pd.Series([_shown_name(t.user_attrs.get("worker")) for t in trials if t.state == TrialState.COMPLETE],
                        dtype=object)
    found = checked(study)
    settings = SweepSettings.from_dict(study.user_attrs["settings"])
    errors = {}  # a missing point's last error, as its worker stored it (text, shown as text)
    for t in trials:
        if "error" in t.user_attrs and "fixed_params" in t.system_attrs:
            errors[_key(t.system_attrs["fixed_params"], settings)] = str(t.user_attrs["error"])[:200]
    missing = [f"{describe(p)}, {p['train_size']} sentences, seed {p['seed']}"
               + (f" (last error: {errors[_key(p, settings)]})" if _key(p, settings) in errors else "")
               for p in found["missing"]]
    return {"runs": len(study.user_attrs["grid"]), "settings": study.user_attrs["settings"],
            "done": len(found["runs"]), "running": count(TrialState.RUNNING), "queued": count(TrialState.WAITING),
            "reissued": len(reissued), "missing": missing, "refused": found["refused"],
            "per_student": workers.value_counts().rename_axis("student").rename("runs done")}


def _shown_name(name) -> str:
    """A worker's self-given name as the teacher's view may show it: plain text, or a stand-in."""
    if name is None:
        return "(unnamed)"
    return name if isinstance(name, str) and WORKER_NAME.fullmatch(name) else "(name not shown: not plain text)"


def frontier(name: str, url: str) -> pd.DataFrame:
    """The class's finished runs, in the frame that `freezelab.results` tables and plots read."""
    from .sweeps import records

    return records(_study(name, url))


def requeue(name: str, url: str) -> int:
    """Queue again every point of class `name` that has no finished run and none queued or running (`status`'s
    missing: abandoned after its retries, or failed by hand); returns how many. The teacher's address: once the
    cause is mended (a checkpoint installed, a broken machine out of the class)."""
    from .sweeps import checked

    study = _study(name, url)
    missing = checked(study)["missing"]
    for point in missing:
        study.enqueue_trial(point)
    return len(missing)


def audit(name: str, url: str, sample: int = 3, *, least: float = 0.005, run=None, seed: int | None = None,
          log=print) -> pd.DataFrame:
    """Re-run `sample` finished runs of the class, drawn at random, on this machine, and flag those whose stored
    dev metric differs from the re-run by more than the seed spread: the way to catch an invented result, since a
    class's compute runs on students' machines and the database cannot tell a real result from a made-up one.

    The tolerance of a run is its set-up's standard deviation over the seeds the class finished (a result within
    the seeds' own spread cannot be told from a real one), and at least `least` (a set-up with one seed, or a
    device that rounds differently). run: what one run does (default: the real experiment, as the students'
    kernels ran it). Returns one row per audited run: label, seed, worker, stored, re-run, difference,
    tolerance, flagged."""
    import random

    from .grids import SweepSettings
    from .sweeps import _key, _run_point, checked

    study = _study(name, url)
    settings = SweepSettings.from_dict(study.user_attrs["settings"])
    runs = checked(study)["runs"]
    if not runs:
        raise ValueError(f"class {name!r} has no finished run to audit yet")
    frame = pd.DataFrame(runs)
    spread = frame.groupby("label")["dev_metric"].std().fillna(0.0)
    workers = {}
    for trial in study.get_trials(deepcopy=False):
        if "record" in trial.user_attrs and "fixed_params" in trial.system_attrs:
            workers.setdefault(json.dumps(trial.system_attrs["fixed_params"], sort_keys=True),
                               _shown_name(trial.user_attrs.get("worker")))
    rows = []
    for record in random.Random(seed).sample(runs, min(sample, len(runs))):
        point = next(p for p in study.user_attrs["grid"] if _key(p, settings) == _key(record, settings))
        again = float((run or _run_point)(dict(point), settings)["dev_metric"])
        tolerance = max(least, float(spread[record["label"]]))
        difference = abs(again - record["dev_metric"])
        rows.append({"label": record["label"], "seed": record["seed"],
                     "worker": workers.get(json.dumps(point, sort_keys=True), "(unnamed)"),
                     "stored": record["dev_metric"], "re-run": again, "difference": difference,
                     "tolerance": tolerance, "flagged": difference > tolerance})
        log(f"{record['label']}, seed {record['seed']}: stored {record['dev_metric']:.4f}, re-run {again:.4f}"
            + (f"  <- differs by more than {tolerance:.4f}: check this run" if difference > tolerance else ""))
    return pd.DataFrame(rows)


def watch(name: str, url: str | None = None, every: float = 15, rounds: int | None = None, retention: str | None = None):
    """The teacher's live view: the class frontier (error bars narrow as seeds arrive), progress and runs per
    student, redrawn every `every` seconds until the queue is empty (or `rounds` redraws, or the stop button)."""
    import ipywidgets
    from IPython.display import display

    from .run_plots import frontier_plot
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
            # Text only through print (a stream, never HTML); tables through pandas, which escapes them
            print(f"{name}: {now['done']}/{now['runs']} done, {now['running']} running, {now['queued']} queued, "
                  f"{now['reissued']} re-issued after a worker went silent")
            if now["missing"]:
                print(f"{len(now['missing'])} run(s) will not be done without you (failed past their retries): "
                      + "; ".join(now["missing"][:10]))
            if now["refused"]:
                print(f"{len(now['refused'])} finished run(s) left out: their records failed the check "
                      f"(trial {', '.join(map(str, list(now['refused'])[:10]))})")
            try:  # the records passed check_run; a plot that still fails must not end the lesson's view
                if len(frame) and now["settings"]["probes"]:
                    probe = retention or retention_probe(now["settings"]["checkpoint"])
                    display(frontier_plot(frame, retention=probe, title=f"Class frontier: {len(frame)} runs so far"))
                elif len(frame):
                    display(styled(summary(frame, metrics=("dev_metric",))))
            except Exception as error:  # noqa: BLE001 (shown, as text)
                print(f"could not draw the class's runs this time ({type(error).__name__}: {error}); "
                      "the counts above are current")
            display(now["per_student"].to_frame().style.format(escape="html").format_index(escape="html"))
        shown += 1
        if now["done"] + len(now["missing"]) >= now["runs"] and not now["running"] and not now["queued"]:
            break
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            break
    return _status(study)
