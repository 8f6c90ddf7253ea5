"""What a student's role can do to a class, against the real PostgreSQL that `.ci/postgres` starts.

Specification: a student's login role (a member of the class's group role) can do what a worker does in
`sweeps.run_sweep` and nothing else. Each attack below is run as a student, with the student's own address, and
must be refused by PostgreSQL; afterwards every row of the class is what it was before (each table of the class's
schema compared whole, as the teacher reads it), so a refusal that still changed something fails too.
"""

import os
import threading

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from freezelab import classroom, grids

GRID = grids.grid(["head", "top2"], [1e-4, 1e-3], [100], [0, 1])  # 8 runs
SETTINGS = grids.SweepSettings(probes=False)
TABLES = ("studies", "study_directions", "study_user_attributes", "study_system_attributes", "trials",
          "trial_values", "trial_params", "trial_user_attributes", "trial_system_attributes", "trial_heartbeats",
          "version_info", "alembic_version")


@pytest.fixture
def room(postgres_database):
    """Class "lab" with 3 of its 8 runs finished by a student; class "other" beside it, in the same database,
    whose students are not this group; the students' group let into "lab" only."""
    db = postgres_database
    classroom.create_class("lab", db.teacher, GRID, SETTINGS)
    classroom.create_class("other", db.teacher, GRID[:2], SETTINGS)
    classroom.grant_students("lab", db.teacher, db.role)
    assert classroom.join("lab", db.student, runs=3, student="ada", progress=False,
                          run=lambda point, settings: {**point, "dev_metric": 0.75}) == 3
    return db


def snapshot(teacher_url, name="lab"):
    """Every row of every table of the class, read by the teacher."""
    engine = sqlalchemy.create_engine(classroom.class_url(teacher_url, name))
    try:
        with engine.connect() as connection:
            return {table: sorted(map(tuple, connection.exec_driver_sql(f"SELECT * FROM {table}").all()), key=repr)
                    for table in TABLES}
    finally:
        engine.dispose()


def finished(teacher_url):
    study = classroom._study("lab", teacher_url)
    return {t.number: (t.value, t.user_attrs["record"]) for t in study.get_trials() if t.state == TrialState.COMPLETE}


@pytest.fixture
def as_student(room):
    """Run SQL as a student, in the class's schema; each statement in a transaction of its own."""
    engine = sqlalchemy.create_engine(classroom.class_url(room.student, "lab"))
    before = snapshot(room.teacher)
    runs_before = finished(room.teacher)
    assert len(runs_before) == 3

    def run(statement):
        with engine.begin() as connection:
            return connection.exec_driver_sql(statement)

    yield run
    engine.dispose()
    assert finished(room.teacher) == runs_before  # the finished runs counted, their values compared
    assert snapshot(room.teacher) == before  # and every other row as it was


REFUSED = "permission denied|freezelab class:|must be owner"

ATTACKS = {
    "delete every run": "DELETE FROM trials",
    "delete a finished run's value": "DELETE FROM trial_values",
    "truncate": "TRUNCATE trials CASCADE",
    "reopen a finished run": "UPDATE trials SET state = 'WAITING' WHERE state = 'COMPLETE'",
    "fail a finished run": "UPDATE trials SET state = 'FAIL' WHERE state = 'COMPLETE'",
    "rewrite a finished run's value": "UPDATE trial_values SET value = 0.99",
    "rewrite a finished run's record": "UPDATE trial_user_attributes SET value_json = '\"{}\"' WHERE key = 'record'",
    "add an attribute to a finished run": "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                                          "SELECT trial_id, 'graffiti', '1' FROM trials WHERE state = 'COMPLETE'",
    "insert a finished run": "INSERT INTO trials (number, study_id, state) SELECT 99, study_id, 'COMPLETE' FROM studies",
    "rewrite a queued run's point": "UPDATE trial_system_attributes SET value_json = '{}' WHERE key = 'fixed_params'",
    "move a run to another study": "UPDATE trials SET study_id = study_id + 1",
    "change the grid": "UPDATE study_user_attributes SET value_json = '[]' WHERE key = 'grid'",
    "change the settings": "UPDATE study_user_attributes SET value_json = '{\"epochs\": 50}' WHERE key = 'settings'",
    "add a study attribute": "INSERT INTO study_user_attributes (study_id, key, value_json) SELECT study_id, 'x', '1' "
                             "FROM studies",
    "change the direction": "UPDATE study_directions SET direction = 'MINIMIZE'",
    "rename the study": "UPDATE studies SET study_name = 'renamed'",
    "create a study": "INSERT INTO studies (study_name) VALUES ('mine')",
    "create a table in the class": "CREATE TABLE mine (x int)",
    "create a table in public": "CREATE TABLE public.mine (x int)",
    "create a temporary table": "CREATE TEMPORARY TABLE mine (x int)",
    "create a schema": "CREATE SCHEMA mine",
    "create a function": "CREATE FUNCTION public.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "replace the guard": "CREATE OR REPLACE FUNCTION freezelab_guard() RETURNS trigger LANGUAGE plpgsql AS "
                         "'BEGIN RETURN NEW; END'",
    "drop the guard": "DROP TRIGGER freezelab_guard ON trials",
    "disable the guard": "ALTER TABLE trials DISABLE TRIGGER freezelab_guard",
    "skip every trigger": "SET session_replication_role = replica",
    "lock the queue": "LOCK TABLE trials IN ACCESS EXCLUSIVE MODE",
    "drop the runs": "DROP TABLE trials CASCADE",
    "read another class": "SELECT * FROM class_other.trials",
    "write another class": "UPDATE class_other.trials SET state = 'FAIL'",
}


@pytest.mark.parametrize("statement", ATTACKS.values(), ids=ATTACKS.keys())
def test_each_attack_as_a_student_is_refused_and_changes_nothing(as_student, statement):
    with pytest.raises(sqlalchemy.exc.DBAPIError, match=REFUSED):
        as_student(statement)


def test_optuna_delete_study_as_a_student_is_refused(room, as_student):
    with pytest.raises(Exception, match="permission denied|commit") as caught:
        optuna.delete_study(study_name="lab", storage=classroom.class_url(room.student, "lab"))
    assert "permission denied" in repr(caught.value.__context__ or caught.value) + str(caught.value)


def test_optuna_apis_that_rewrite_a_finished_run_are_refused(room, as_student):
    study = optuna.load_study(study_name="lab", storage=classroom.class_url(room.student, "lab"))
    done = next(t for t in study.get_trials() if t.state == TrialState.COMPLETE)
    storage = study._storage
    for rewrite in (lambda: storage.set_trial_user_attr(done._trial_id, "record", "{}"),
                    lambda: storage.set_trial_state_values(done._trial_id, TrialState.FAIL)):
        with pytest.raises(Exception):  # Optuna's own check, and under it the database's
            rewrite()
    engine = sqlalchemy.create_engine(classroom.class_url(room.student, "lab"))
    try:  # the database's check alone, without Optuna's: the upsert Optuna sends
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="freezelab class: run is finished"), engine.begin() as c:
            c.exec_driver_sql("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES "
                              f"({done._trial_id}, 'record', '\"{{}}\"') ON CONFLICT (trial_id, key) DO UPDATE "
                              "SET value_json = excluded.value_json")
    finally:
        engine.dispose()


def test_a_student_cannot_end_or_cancel_a_classmates_session(room):
    """One login role per student: PostgreSQL lets a role signal only its own sessions (without pg_signal_backend)."""
    classmate = sqlalchemy.create_engine(classroom.class_url(room.student_b, "lab"))
    attacker = sqlalchemy.create_engine(classroom.class_url(room.student, "lab"))
    try:
        with classmate.connect() as theirs:
            pid = theirs.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            for signal in ("pg_terminate_backend", "pg_cancel_backend"):
                with pytest.raises(sqlalchemy.exc.DBAPIError, match="permission denied|must be a member"), \
                        attacker.begin() as mine:
                    mine.exec_driver_sql(f"SELECT {signal}({pid})")
            assert theirs.exec_driver_sql("SELECT 1").scalar() == 1  # the classmate's session lives on
    finally:
        classmate.dispose()
        attacker.dispose()


def test_a_shared_login_role_could_end_its_own_other_sessions(room):
    """Why each student gets a login role of their own: two sessions of the same role may end each other. If
    this ever fails, PostgreSQL changed the rule and a class could share one login role."""
    engine = sqlalchemy.create_engine(classroom.class_url(room.student, "lab"))
    try:
        with engine.connect() as first, engine.connect() as second:
            pid = first.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            assert second.exec_driver_sql(f"SELECT pg_cancel_backend({pid})").scalar() is True
    finally:
        engine.dispose()


def test_a_student_role_with_more_powers_than_a_worker_is_refused(room):
    with pytest.raises(ValueError, match="the teacher's own role"):
        classroom.grant_students("lab", room.teacher, "freezelab_teacher")
    with pytest.raises(ValueError, match="no role 'nobody_here'"):
        classroom.grant_students("lab", room.teacher, "nobody_here")
    with pytest.raises(ValueError, match="no class named 'absent'"):
        classroom.grant_students("absent", room.teacher, room.role)


def test_a_student_cannot_create_or_grant_a_class(room):
    with pytest.raises(classroom.ClassConnectionError, match="needs the teacher's address"):
        classroom.create_class("mine", room.student, GRID[:1], SETTINGS)
    with pytest.raises(classroom.ClassConnectionError, match="needs the teacher's address"):
        classroom.grant_students("lab", room.student, "freezelab_student")


def test_workers_still_do_everything_a_class_needs(room):
    """The other side of the grants: two students' workers finish the class, beside the attacks' refusals."""
    outcomes = []

    def work(url, who):
        outcomes.append(classroom.join("lab", url, minutes=None, student=who, progress=False,
                                       run=classroom.rehearsal(0.05)))

    threads = [threading.Thread(target=work, args=(url, who)) for url, who in ((room.student, "ada"),
                                                                              (room.student_b, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    now = classroom.status("lab", room.teacher)
    assert sum(outcomes) == 5 and (now["done"], now["running"], now["queued"]) == (8, 0, 0)


def test_a_database_set_up_as_before_postgresql_15_is_refused_until_public_is_closed(postgres_database):
    """PostgreSQL 13-14 let every role create tables in schema public, owned by the superuser, so the teacher's
    REVOKE does nothing there. Made so on this server by its superuser; the grant must refuse and say what to run."""
    admin_url = os.environ.get("FREEZELAB_TEST_POSTGRES_ADMIN")
    if not admin_url:
        pytest.skip("no superuser address (.ci/postgres exports FREEZELAB_TEST_POSTGRES_ADMIN)")
    db = postgres_database
    admin = sqlalchemy.create_engine(classroom.normalize(admin_url.replace("/postgres?", f"/{db.name}?")),
                                     isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql("ALTER SCHEMA public OWNER TO postgres")
            connection.exec_driver_sql("GRANT CREATE ON SCHEMA public TO PUBLIC")
        classroom.create_class("lab", db.teacher, GRID, SETTINGS)
        with pytest.raises(ValueError, match=r"may still create tables in schema\(s\) public.*REVOKE CREATE ON "
                                             r"SCHEMA public FROM PUBLIC"):
            classroom.grant_students("lab", db.teacher, db.role)
        with admin.connect() as connection:  # what the message says to run
            connection.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        classroom.grant_students("lab", db.teacher, db.role)
    finally:
        admin.dispose()
    engine = sqlalchemy.create_engine(classroom.normalize(db.student))
    try:
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="permission denied"), engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE public.mine (x int)")
    finally:
        engine.dispose()
