"""Specification of where the task head starts: at random, or fitted first as a linear probe (LP-FT).

`fit_head` fits the model's own classifier on exactly what it reads (caught on the way in), leaves the
body alone, and lands where the course's linear probe lands; `fine_tune(head_start="probe")` does it
before the first step. A sweep point may ask for it, its label says so, and a class's record may carry it.
Regression heads and models without one linear head are refused by name.
"""

import copy

import pytest
import torch

import freezelab as fl
from freezelab import grids, probes, results
from freezelab.head_start import fit_head, fit_logistic, head_inputs
from freezelab.sequential import score
from conftest import tiny_model


def test_the_head_is_fitted_on_what_it_reads_and_the_body_is_left_alone(minilm, offline_data):
    model, tokenizer = copy.deepcopy(minilm[0]), minilm[1]  # the fixture's model is shared: change a copy
    data = fl.load_task("sst2", train_size=64, dev_size=48, seed=0)
    before = copy.deepcopy(model)
    fit_head(model, tokenizer, data["train"]["text"], data["train"]["label"])
    for (name, p), q in zip(model.named_parameters(), before.parameters()):
        assert torch.equal(p, q) == (not name.startswith("classifier")), name  # only the head moved
    caught = head_inputs(model, tokenizer, data["dev"]["text"][:4])
    batch = tokenizer(data["dev"]["text"][:4], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model.eval()(**batch).logits, model.classifier(caught), atol=1e-5)
    x = {split: head_inputs(model, tokenizer, data[split]["text"]) for split in ("train", "dev")}
    assert score(model, tokenizer, data["dev"]) == pytest.approx(  # the course's linear probe, on the same vectors
        probes.linear_probe(x["train"], data["train"]["label"], x["dev"], data["dev"]["label"]))


def test_the_fitted_predictions_do_not_depend_on_the_start_and_the_random_state_is_left_alone():
    x, y = torch.randn(40, 5, generator=torch.Generator().manual_seed(1)), [0, 1] * 20
    start = torch.nn.Linear(5, 2)
    state = torch.random.get_rng_state()
    a, b = fit_logistic(x, y), fit_logistic(x, y, start=start)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():  # softmax ignores a shift shared by every class's row: compare what it predicts
        assert torch.allclose(a(x).softmax(1), b(x).softmax(1), atol=1e-3)


def test_fine_tune_fits_the_head_before_the_first_step(minilm, offline_data):
    model, tokenizer = copy.deepcopy(minilm[0]), minilm[1]
    data = fl.load_task("sst2", train_size=64, dev_size=48, seed=0)
    probed = copy.deepcopy(model)
    fit_head(probed, tokenizer, data["train"]["text"], data["train"]["label"])
    result = fl.fine_tune(model, tokenizer, data, lr=1e-9, epochs=1, seed=0, head_start="probe")
    assert result.settings["head_start"] == "probe"
    assert torch.allclose(model.classifier.weight, probed.classifier.weight, atol=1e-5)  # a 1e-9 step moves nothing


def test_a_regression_head_and_a_model_without_one_linear_head_are_refused(minilm, offline_data):
    model, tokenizer = fl.load_model("minilm-l6", num_labels=1)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="head_start='probe' fits a classification head; stsb is a regression"):
        fl.fine_tune(model, tokenizer, "stsb", train_size=8, dev_size=8, head_start="probe")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # refused before any change
    with pytest.raises(ValueError, match="head_start must be 'random' or 'probe'"):
        fl.TrainConfig(head_start="linear")
    roberta = tiny_model("roberta")  # its head is a small network, not one linear layer
    with pytest.raises(ValueError, match="one linear layer named `classifier`.*has RobertaClassificationHead"):
        fit_head(roberta, minilm[1], ["a"], [0])


def test_a_sweep_point_may_start_its_head_from_a_probe_and_says_so():
    point = grids.grid(["full"], [1e-4], [2000], [0], head_start="probe")[0]
    assert grids.describe(point) == "full fine-tune, linear-probed head first (LP-FT), lr 0.0001"
    assert grids.describe(point, short=True) == "full · 1e-4 · LP-FT"
    assert grids.SweepSettings().config(point).head_start == "probe"
    assert grids.SweepSettings().config({**point, "head_start": None}).head_start == "random"
    with pytest.raises(ValueError, match="head_start must be 'random' or 'probe'"):
        grids.grid(["full"], [1e-4], [2000], [0], head_start="warm")
    record = {"plan": "full", "lr": 1e-4, "train_size": 2000, "seed": 0, "head_start": "probe"}
    assert results.check_run(record)["label"] == grids.describe(point)
    with pytest.raises(ValueError, match="head_start must be one of random, probe"):
        results.check_run({**record, "head_start": "<b>probe</b>"})


def test_a_run_that_left_the_head_at_random_is_the_same_point_as_one_that_never_said():
    from freezelab.sweeps import _key

    settings = grids.SweepSettings()
    plain = grids.grid(["full"], [1e-4], [2000], [0])[0]
    assert _key(plain, settings) == _key({**plain, "head_start": "random"}, settings)
    assert _key(plain, settings) != _key({**plain, "head_start": "probe"}, settings)


def test_an_exported_table_that_mixes_both_heads_reads_back_with_the_unset_option_absent():
    """An export makes every key a column, so a run that never set head_start holds NaN there (as warmup does)."""
    plain = {**grids.grid(["full"], [1e-4], [2000], [0])[0], "head_start": float("nan")}
    assert "head_start" not in results.check_run(plain)
    assert results.check_run({**plain, "head_start": "probe"})["head_start"] == "probe"
    with pytest.raises(ValueError, match="head_start must be one of random, probe"):
        results.check_run({**plain, "head_start": "warm"})


def test_the_remedies_sweep_pairs_lp_ft_with_full_fine_tuning_at_every_rate_and_seed():
    make, settings = grids.COURSE_SWEEPS["remedies"]
    points = make()
    pairs = {(p["lr"], p["seed"], p.get("head_start", "random")) for p in points}
    assert len(points) == len(pairs) == 18 and {p["plan"] for p in points} == {"full"}
    assert all((lr, seed, "probe") in pairs for lr, seed, start in pairs)
    assert settings.probes and settings.task == "sst2"  # retention measured, on the frontier's task
