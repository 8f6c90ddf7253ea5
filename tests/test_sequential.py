"""Specification of the sequential experiment: learn A, then B, and measure what B cost A.

A frozen body cannot forget, so training B's head alone must leave A's accuracy exactly where it was; training
the whole body on B must move it. A is trained once per seed and reused. Settings that make no sequence are refused.
"""

import pytest

from freezelab.experiment import run_point
from freezelab.grids import COURSE_SWEEPS, SweepSettings, grid
from freezelab.sequential import cache_dir


@pytest.fixture
def small(offline_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FREEZELAB_CACHE", str(tmp_path))
    return SweepSettings(task="subj", first_task="sst2", probes=False, epochs=1, dev_size=48)


def test_a_frozen_body_costs_the_first_task_nothing_and_a_trained_one_moves_it(small):
    head, full = (run_point(p, small).sequential for p in grid(["head", "full"], [5e-3], [48], [0]))
    assert head["first_after"] == head["first_before"] and head["cost"] == 0
    assert full["first_before"] == head["first_before"]  # both started from the same A
    assert full["first_after"] != full["first_before"]


def test_the_first_task_is_trained_once_per_seed_and_saved_as_safetensors(small):
    points = grid(["head"], [1e-2], [48], [0, 0, 1])
    records = [run_point(p, small).to_dict() for p in points]
    saved = sorted(f.suffix for f in cache_dir().iterdir() if f.suffix in {".safetensors", ".json"})
    assert saved == [".json", ".json", ".safetensors", ".safetensors"]  # seeds 0 and 1
    assert records[0]["sequential"] == records[1]["sequential"]
    assert {"first_task", "first_before", "first_after", "cost"} <= set(records[2]["sequential"])


@pytest.mark.parametrize("settings, message", [
    ({"task": "subj", "first_task": "subj"}, "first_task must be a classification task other than"),
    ({"task": "stsb", "first_task": "sst2"}, "first_task must be a classification task other than"),
    ({"first_task": "subj", "first_lr": 0}, "lr must be"),
])
def test_settings_that_make_no_sequence_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        SweepSettings(**settings)


def test_the_shipped_sequence_learns_sst2_then_subj_with_every_remedy_three_times():
    make, settings = COURSE_SWEEPS["sequential"]
    points = make()
    assert (settings.first_task, settings.task) == ("sst2", "subj")
    assert {p["plan"] for p in points} == {"full", "top4", "top2", "head", "bitfit", "lora16-attn"}
    assert len(points) == 3 * len({(p["plan"], p["lr"]) for p in points})


def test_scoring_runs_the_model_without_a_graph_and_leaves_it_as_it_was(offline_data, minilm):
    import torch

    from freezelab.data import load_task
    from freezelab.sequential import score

    model, tokenizer = minilm
    model.train()
    seen = []
    handle = model.register_forward_hook(lambda *args: seen.append(torch.is_grad_enabled()))
    try:
        accuracy = score(model, tokenizer, load_task("sst2", dev_size=40, seed=0)["dev"])
    finally:
        handle.remove()
    assert seen and not any(seen)  # no activations kept for a backward that never comes
    assert 0 <= accuracy <= 1 and model.training
