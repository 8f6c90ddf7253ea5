"""Student data is data: what a class's workers store is checked, and shown as text, never as markup.

Specification: a record comes from a student's machine, so a student can store anything their role may write into
their own running run. The teacher's view, the export and `results.load` rebuild every label from the run's grid
point, refuse records that do not fit the record schema (`results.check_run`: known keys, types, ranges), and do
not crash on them. Against the real PostgreSQL that `.ci/postgres` starts.
"""

import json

import optuna
import pytest

from freezelab import classroom, grids, results, sweeps

GRID = grids.grid(["head", "top2"], [1e-4, 1e-3], [100], [0])  # 4 runs
SETTINGS = grids.SweepSettings(probes=False)
SCRIPT = "<img src=x onerror=alert(1)>"


def honest(point, settings):
    return {**point, "dev_metric": 0.5}


def store_as_a_student(room, record, value=0.9):
    """What a student can do by hand with the address they were given: take the next queued run and finish it
    with a record of their own making."""
    study = optuna.load_study(study_name="lab", storage=classroom.class_url(room.student, "lab"))
    trial = study.ask()
    point = study._storage.get_trial(trial._trial_id).system_attrs["fixed_params"]  # the run it was handed
    trial.set_user_attr("worker", SCRIPT)
    trial.set_user_attr("record", json.dumps(record(point)))
    study.tell(trial, value)
    return point


@pytest.fixture
def room(postgres_database):
    classroom.create_class("lab", postgres_database.teacher, GRID, SETTINGS)
    classroom.grant_students("lab", postgres_database.teacher, postgres_database.role)
    return postgres_database


def test_a_label_with_script_is_rebuilt_from_the_point_everywhere_the_teacher_looks(room, tmp_path):
    point = store_as_a_student(room, lambda p: {**p, "dev_metric": 0.9, "label": SCRIPT, "plan_label": SCRIPT})
    classroom.join("lab", room.student, minutes=None, student="ada", progress=False, run=honest)
    frame = classroom.frontier("lab", room.teacher)
    assert len(frame) == 4 and SCRIPT not in frame.to_string()
    assert grids.describe(point) in set(frame["label"])
    table = results.styled(results.summary(frame, metrics=("dev_metric",))).to_html()
    assert "<img" not in table
    now = classroom.status("lab", room.teacher)
    shown = now["per_student"].to_frame().style.format(escape="html").format_index(escape="html").to_html()
    assert "<img" not in shown and "(name not shown: not plain text)" in shown
    assert classroom.export("lab", room.teacher, tmp_path / "class.json") == 4
    assert SCRIPT not in (tmp_path / "class.json").read_text()
    assert SCRIPT not in results.load(tmp_path / "class.json").to_string()


HOSTILE = {
    "an unknown key": lambda p: {**p, "dev_metric": 0.9, "onload": SCRIPT},
    "a text where a number goes": lambda p: {**p, "dev_metric": "0.9<script>"},
    "a value out of range": lambda p: {**p, "dev_metric": 7.0},
    "a device that is markup": lambda p: {**p, "dev_metric": 0.9, "device": SCRIPT},
    "another point's record": lambda p: {**p, "seed": 99, "dev_metric": 0.9},
    "not a record at all": lambda p: [SCRIPT],
}


@pytest.mark.parametrize("record", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_record_that_fails_the_check_is_refused_named_and_its_point_stays_missing(room, tmp_path, record):
    point = store_as_a_student(room, record)
    classroom.join("lab", room.student, minutes=None, student="ada", progress=False, run=honest)
    now = classroom.status("lab", room.teacher)
    assert now["done"] == 3 and len(now["refused"]) == 1
    frame = classroom.frontier("lab", room.teacher)
    assert len(frame) == 3 and SCRIPT not in frame.to_string()
    logged = []
    assert sweeps.export("lab", classroom.class_url(room.teacher, "lab"), tmp_path / "c.json", log=logged.append) == 3
    assert "1 of 4 grid points have no finished run" in logged[0] and f"seed {point['seed']}" in logged[0]
    assert json.loads((tmp_path / "c.json").read_text())["missing"] == [point]
    assert classroom.watch("lab", room.teacher, every=0, rounds=1)["done"] == 3  # the view draws, not crashes


def test_results_load_refuses_a_file_with_a_hostile_run_and_names_it(tmp_path):
    good = {"plan": "head", "lr": 0.001, "train_size": 100, "seed": 0, "dev_metric": 0.5, "label": SCRIPT}
    path = tmp_path / "class.json"
    path.write_text(json.dumps({"freezelab_sweep": 1, "settings": {}, "runs": [good]}))
    assert results.load(path).loc[0, "label"] == "head only, lr 0.001"  # rebuilt, not refused
    for bad, why in (({**good, "script": SCRIPT}, "unknown key"), ({**good, "lr": "1e-3"}, "lr must be a number"),
                     ({**good, "plan": SCRIPT}, "plan must be one of")):
        path.write_text(json.dumps({"freezelab_sweep": 1, "settings": {}, "runs": [good, bad]}))
        with pytest.raises(ValueError, match=f"run 1 is refused: {why}"):
            results.load(path)


def test_every_shipped_result_passes_the_check():
    for name in ("frontier", "data-size", "methods", "methods-data-size", "sequential"):
        assert len(results.shipped(name)) > 0


def test_the_audit_flags_an_invented_result_and_passes_honest_ones(room):
    classroom.join("lab", room.student, minutes=None, student="ada", progress=False, run=honest)
    logged = []
    report = classroom.audit("lab", room.teacher, sample=4, run=honest, log=logged.append)
    assert len(report) == 4 and not report["flagged"].any()

    classroom.create_class("lab2", room.teacher, GRID, SETTINGS)
    classroom.grant_students("lab2", room.teacher, room.role)
    study = optuna.load_study(study_name="lab2", storage=classroom.class_url(room.student, "lab2"))
    trial = study.ask()  # a student finishes the run handed to them with a result they made up
    point = study._storage.get_trial(trial._trial_id).system_attrs["fixed_params"]
    trial.set_user_attr("record", json.dumps({**point, "dev_metric": 0.97}))
    study.tell(trial, 0.97)
    classroom.join("lab2", room.student, minutes=None, student="bob", progress=False, run=honest)
    report = classroom.audit("lab2", room.teacher, sample=4, run=honest, log=logged.append)
    flagged = report[report["flagged"]]
    assert len(flagged) == 1 and flagged.iloc[0]["stored"] == 0.97 and flagged.iloc[0]["seed"] == point["seed"]
    assert "differs by more than" in "\n".join(logged)
