"""The advisor: predictions carried over from the reference tasks, a choice that respects the floor, and a
validation that never lets a task's own runs into its advice."""


import json

import numpy as np
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
    assert "floor broken on 1 against 0 of 2 tasks" in lines[2]


def test_a_rule_is_beaten_only_when_the_advisor_is_no_worse_on_regret_and_on_broken_floors():
    def lines(ours, broke, theirs, theirs_broke):
        rows = pd.DataFrame({"regret": [ours], "broke floor": [broke], "score covered": [1.0],
                             "retention covered": [1.0],
                             **{f"{name}: regret": [theirs] for name in advisor.DEFAULTS},
                             **{f"{name}: broke floor": [theirs_broke] for name in advisor.DEFAULTS}})
        return advisor.verdicts(rows)[2]

    assert lines(0.5, False, 2.0, False).endswith(": better")
    assert lines(0.5, False, -1.0, True).endswith("NOT better")  # it scored above the floor's best by breaking it
    assert lines(0.5, False, 0.5, True).endswith(": better")
    assert lines(0.5, False, 0.5, False).endswith("NOT better")  # a tie is not better


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
    probes = {"sst2": 0.97, "subj": 0.95, "cola": 0.90}
    known = {t: _signals(t, p) for t, p in probes.items()}
    table = _table(probes, {FULL: 0.9}, {FULL: 0.01}, noise=[0.02, -0.02, 0.0])
    predicted = advisor.predict(table, known, _signals("new", 0.98)).iloc[0]
    assert predicted["score_high"] == 1.0 and predicted["retention_low"] == 0.0
    kept_all = advisor.predict(_table(probes, {HEAD: 0.0}, {HEAD: 1.0}), known, _signals("new", 0.98)).iloc[0]
    assert kept_all["retention_high"] == 1.0  # never more than the untouched model keeps
    assert predicted["score_low"] < predicted["score"] < 1.0
def test_the_shipped_reference_holds_every_set_up_on_every_task_with_three_seeds():
    table = advisor.reference()
    assert set(table["task"]) == set(TASKS)
    assert set(table["setup"]) == {advisor.describe_setup(p) for p in advisor.setups()}
    assert len(table) == len(TASKS) * len(advisor.setups()) and (table["seeds"] == 3).all()
    head = table[table["setup"] == advisor.describe_setup(advisor.DEFAULTS["head only"])]
    assert np.allclose(head["retention"], 1.0)  # the frozen encoder is the pre-trained one
    assert set(advisor.reference_signals()) == set(TASKS)


def test_the_shipped_signals_are_what_the_code_reads_from_the_data():
    from freezelab.data import load_task

    shipped = advisor.reference_signals()["subj"]
    again = advisor.signals(load_task("subj"), "subj")
    assert again.frozen_probe == pytest.approx(shipped.frozen_probe, abs=1e-3)
    assert again.chance == shipped.chance and again.train_size == shipped.train_size


def test_advice_on_your_own_file_ranks_every_set_up_and_hands_over_a_plan_fine_tune_takes(tmp_path, capsys):
    from freezelab.__main__ import main
    from freezelab.data import load_task

    sst2 = load_task("sst2", train_size=300, seed=3)["train"].to_pandas()
    path = tmp_path / "reviews.csv"
    sst2.rename(columns={"text": "review", "label": "stars"}).to_csv(path, index=False)
    out = tmp_path / "plan.json"
    main(["advise", "--path", str(path), "--text-column", "review", "--label-column", "stars",
          "--retention-floor", "0.8", "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.count("\n") > len(advisor.setups()) and "leave one task out" in printed
    assert "Warning: your run takes" in printed  # 270 training sentences (a tenth is dev): outside the reference
    saved = json.loads(out.read_text())
    advice = advisor.advise(path=path, text_column="review", label_column="stars", retention_floor=0.8,
                            probe_size=300)
    assert saved["setup"] == advice.recommended.label
    row = advice.table.set_index("set-up").loc[advice.recommended.label]
    assert row["meets"] and row["why not"] == ""
    assert float(row["predicted STS-B kept"].split("%")[0]) >= 80
    from freezelab.models import load_model

    model, _ = load_model("minilm-l6", num_labels=2, random_weights=True, pooling=advice.recommended.pooling)
    advice.recommended.plan.apply(model)
    assert any(p.requires_grad for p in model.parameters())


def test_a_course_task_is_advised_without_its_own_reference_runs():
    advice = advisor.advise("cola", train_size=100, probe_size=100)
    others = {task: s for task, s in advisor.reference_signals().items() if task != "cola"}
    expected = advisor.predict(advisor.reference(), others, advice.signals).set_index("setup")
    got = advice.predicted.set_index("setup").loc[expected.index]
    assert np.allclose(got["score"], expected["score"]) and np.allclose(got["retention"], expected["retention"])
    assert (expected["tasks"] == 3).all()


def test_every_rule_of_signals_is_validated_the_same_way():
    compared = advisor.compare_models(0.8).set_index("rule")
    assert list(compared.index) == list(advisor.MODELS)
    again = advisor.validate(0.8, "probe")
    assert compared.loc["probe", "mean regret"] == pytest.approx(again["regret"].mean())


def test_every_set_up_has_its_own_peak_memory_measured_in_a_fresh_process():
    from freezelab.models import load_model

    peaks = advisor.reference_memory()
    assert set(peaks) == {advisor.describe_setup(p) for p in advisor.setups()}
    weights = sum(p.numel() for p in load_model("minilm-l6")[0].parameters()) * 4 / 2**20
    assert all(peak > weights for peak in peaks.values())  # the weights alone, at 4 bytes each
    assert peaks[FULL] > peaks[HEAD]  # gradients and AdamW's state for every weight, not for the head's alone


def test_docs_results_show_what_the_advisor_computes(capsys):
    """docs/results.md's advisor section is docs/make_figures.py's output from the shipped reference runs."""
    from pathlib import Path

    import make_figures  # docs/, on sys.path (conftest)

    make_figures.print_advisor()
    printed = capsys.readouterr().out.strip()
    page = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    assert printed in page, "refresh docs/results.md's advisor section with docs/make_figures.py's output"
