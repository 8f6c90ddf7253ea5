"""The advisor: predictions carried over from the reference tasks, a choice that respects the floor, and a
validation that never lets a task's own runs into its advice."""


import pandas as pd
import pytest

from freezelab import advisor
from freezelab.advisor import Signals

TASKS = ("sst2", "subj", "cola", "word-order")


def _signals(task, probe, chance=0.5):
    return Signals(task=task, metric="accuracy", frozen_probe=probe, chance=chance, train_size=2000,
                   probe_size=2000, dev_size=1000, classes=2, seconds=1.0, sentences_per_s=100.0)


def _table(probes, shares, kept, noise=None):
    """Reference rows where set-up s closes shares[s] of the room above each task's frozen probe."""
    rows = []
    for i, (task, probe) in enumerate(probes.items()):
        for setup, share in shares.items():
            bump = 0.0 if noise is None else noise[i]
            rows.append({"task": task, "setup": setup, "score": probe + share * (1 - probe) + bump,
                         "score_var": 0.01 ** 2, "retention": kept[setup], "retention_var": 0.01 ** 2, "seeds": 3,
                         "s_per_step": 0.5, "peak_memory_mb": 900.0, "metric": "accuracy"})
    return pd.DataFrame(rows)


PROBES = {"sst2": 0.80, "subj": 0.88, "cola": 0.70, "word-order": 0.60}
FULL, HALF, HEAD, LP_FT = (advisor.describe_setup(point) for point in advisor.DEFAULTS.values())
SHARES = {HEAD: 0.0, HALF: 0.3, FULL: 0.5}
KEPT = {HEAD: 1.0, HALF: 0.9, FULL: 0.6}


def test_a_set_up_that_closes_the_same_share_of_the_room_on_every_task_is_predicted_exactly():
    table = _table(PROBES, SHARES, KEPT)
    known = {t: _signals(t, p) for t, p in PROBES.items() if t != "cola"}
    predicted = advisor.predict(table, known, _signals("cola", 0.70)).set_index("setup")
    assert predicted.loc[FULL, "score"] == pytest.approx(0.70 + 0.5 * 0.30)
    assert predicted.loc[HALF, "retention"] == pytest.approx(0.9)
    # the interval is the seeds' spread alone when the tasks agree: mean seed sd 0.01, t with 2 df
    half = predicted.loc[FULL, "score_high"] - predicted.loc[FULL, "score"]
    assert half == pytest.approx(advisor._t(3) * 0.01)


def test_tasks_that_disagree_widen_the_interval():
    calm = advisor.predict(_table(PROBES, SHARES, KEPT), {t: _signals(t, p) for t, p in PROBES.items()},
                           _signals("new", 0.75)).set_index("setup")
    noisy = advisor.predict(_table(PROBES, SHARES, KEPT, noise=[0.03, -0.03, 0.02, -0.02]),
                            {t: _signals(t, p) for t, p in PROBES.items()}, _signals("new", 0.75)).set_index("setup")
    assert (noisy["score_high"] - noisy["score_low"] > calm["score_high"] - calm["score_low"]).all()


def test_the_choice_is_the_best_predicted_score_that_keeps_the_floor_and_else_the_most_retentive():
    predicted = pd.DataFrame({"setup": [HEAD, HALF, FULL], "score": [0.8, 0.85, 0.9],
                              "retention": [1.0, 0.9, 0.6]})
    assert advisor.choose(predicted) == FULL
    assert advisor.choose(predicted, 0.8) == HALF
    assert advisor.choose(predicted, 0.95) == HEAD
    assert advisor.choose(predicted.iloc[1:], 0.95) == HALF  # none keeps 95%: the one that keeps the most


def test_a_perfect_predictor_has_no_regret_and_the_defaults_regret_is_measured_in_seed_deviations():
    table = _table(PROBES, {**SHARES, LP_FT: 0.6}, {HEAD: 1.0, HALF: 0.9, FULL: 0.8, LP_FT: 0.95})
    known = {t: _signals(t, p) for t, p in PROBES.items()}
    result = advisor.validate(None, table=table, known=known).set_index("task")
    assert (result["regret"] == 0).all() and not result["broke floor"].any()
    assert (result["advised"] == LP_FT).all()
    # head only closes none of the room LP-FT closes 60% of: regret 0.6 * (1 - probe) / 0.01
    assert result.loc["cola", "head only: regret"] == pytest.approx(0.6 * 0.30 / 0.01)
    floor = advisor.validate(0.99, table=table, known=known)
    assert (floor["advised"] == HEAD).all()
    assert floor["full fine-tuning at 2e-5: broke floor"].all() and not floor["broke floor"].any()


def test_a_held_out_task_is_advised_from_the_other_tasks_alone():
    """Its own runs can make its regret bad, never its advice good: change them and the advice stays."""
    table = _table(PROBES, {**SHARES, LP_FT: 0.4}, {**KEPT, LP_FT: 0.9})
    known = {t: _signals(t, p) for t, p in PROBES.items()}
    before = advisor.validate(None, table=table, known=known).set_index("task")
    moved = table.copy()
    held = (moved["task"] == "cola") & (moved["setup"] == HEAD)
    moved.loc[held, "score"] = 0.99  # on cola, the head alone now beats everything
    after = advisor.validate(None, table=moved, known=known).set_index("task")
    assert after.loc["cola", "advised"] == before.loc["cola", "advised"] == FULL
    assert after.loc["cola", "regret"] > 1 and after.loc["cola", "best"] == HEAD


def test_every_target_the_validation_misses_is_said_to_be_missed():
    rows = pd.DataFrame({"regret": [0.2, 3.0], "broke floor": [False, True], "score covered": [1.0, 0.25],
                         "retention covered": [0.5, 0.5],
                         **{f"{name}: regret": [0.1, 0.1] for name in advisor.DEFAULTS},
                         **{f"{name}: broke floor": [False, False] for name in advisor.DEFAULTS}})
    lines = advisor.verdicts(rows)
    assert "on 50% of held-out tasks (target 80%): NOT met" in lines[0]
    assert "covered 56% of measured points (target 75%): NOT met" in lines[1]
    assert all("NOT better" in line for line in lines[2:6])
    assert "floor broken on 1 of 2" in lines[6]


@pytest.mark.parametrize("kwargs, message", [
    ({"data": "sst2", "checkpoint": "bert-base"}, "reference runs are minilm-l6's"),
    ({"data": "sst2", "retention_floor": 80}, "share from 0 to 1"),
    ({"data": "sst2", "minutes": 0}, "minutes must be a number > 0"),
    ({"data": "stsb"}, "classification"),
    ({}, "give a course task"),
])
def test_bad_requests_say_what_is_wrong_and_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        advisor.advise(**kwargs)


def test_no_interval_runs_past_what_the_measure_can_be():
    table = _table({"sst2": 0.97, "subj": 0.95, "cola": 0.90}, {FULL: 0.9}, {FULL: 0.01}, noise=[0.02, -0.02, 0.0])
    known = {t: _signals(t, p) for t, p in {"sst2": 0.97, "subj": 0.95, "cola": 0.90}.items()}
    predicted = advisor.predict(table, known, _signals("new", 0.98)).iloc[0]
    assert predicted["score_high"] == 1.0 and predicted["retention_low"] == 0.0
    assert predicted["score_low"] < predicted["score"] < 1.0
