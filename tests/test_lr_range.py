"""Specification of the retention-aware learning-rate range test.

The rate rises exponentially from start to end, the loss is read every step and STS-B retention before the
first step and every few steps, the caller's model is never trained, and three rules suggest a rate:
fastai's loss valley, Lightning's steepest loss, and the highest rate at which retention held the floor.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import freezelab as fl
from freezelab.lr_range import loss_valley, range_test, retention_limit, steepest_loss


def test_the_rate_rises_exponentially_and_retention_is_read_every_few_steps(minilm, offline_data):
    model, tokenizer = minilm
    before = [p.detach().clone() for p in model.parameters()]
    test = range_test(model, tokenizer, "sst2", start_lr=1e-6, end_lr=1e-3, steps=10, probe_every=5,
                      probe_pairs=32, batch_size=8)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # a copy trained, not the model
    trained = test.curve[test.curve["step"] > 0]
    assert list(trained["step"]) == list(range(1, 11))
    assert trained["lr"].iloc[0] == pytest.approx(1e-6) and trained["lr"].iloc[-1] == pytest.approx(1e-3)
    assert np.allclose(np.diff(np.log(trained["lr"])), math.log(1e3) / 9)  # equal steps on a log scale
    assert list(test.curve.dropna(subset=["sts_spearman"])["step"]) == [0, 5, 10]
    assert test.untouched == pytest.approx(fl.probes.sts_retention(model, tokenizer, dev_size=32))
    assert test.floor == pytest.approx(0.9 * test.untouched)
    assert set(test.suggestions) == {"loss valley", "steepest loss", "retention floor"}
    assert list(test.table()["rule"]) == ["loss valley", "steepest loss", "retention floor"]
    figure = test.plot()
    assert figure.layout.xaxis.type == "log" and "learning rate" in figure.layout.xaxis.title.text
    assert "nats" in figure.layout.yaxis.title.text and "Spearman" in figure.layout.yaxis2.title.text


def test_lean_memory_recomputes_activations_and_reads_the_same_curve(minilm, offline_data):
    model, tokenizer = minilm
    settings = dict(start_lr=1e-6, end_lr=1e-3, steps=10, probe_every=5, probe_pairs=16, batch_size=8)
    fast, lean = (range_test(model, tokenizer, "sst2", memory=memory, **settings) for memory in ("fast", "lean"))
    assert np.allclose(fast.curve["loss"], lean.curve["loss"], atol=1e-5, equal_nan=True)
    assert np.allclose(fast.curve["sts_spearman"], lean.curve["sts_spearman"], atol=1e-5, equal_nan=True)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())  # the model as it came


def test_the_loss_valley_is_two_thirds_down_the_longest_fall():
    lrs = np.logspace(-6, -2, 12)
    losses = np.array([0.7, 0.71, 0.69, 0.68, 0.66, 0.6, 0.5, 0.4, 0.3, 0.5, 0.9, 2.0])  # falls from 0 to 8
    assert loss_valley(lrs, losses) == lrs[0 + 2 + 1]  # a fall 8 steps long: a third is 2.67, half of it 1.33
    assert steepest_loss(lrs, losses, skip_begin=0, skip_end=0) in lrs[5:9]


def test_the_retention_rule_keeps_the_last_rate_at_which_retention_held():
    curve = pd.DataFrame({"step": [0, 1, 2, 3, 4], "lr": [0.0, 1e-5, 1e-4, 1e-3, 1e-2],
                          "sts_spearman": [0.9, math.nan, 0.85, math.nan, 0.5]})
    assert retention_limit(curve, 0.8) == 1e-4  # read 0.85 at 1e-4, then 0.5 at 1e-2
    assert retention_limit(curve, 0.4) == 1e-2  # held all the way
    assert retention_limit(curve, 0.86) is None  # no trained rate held it
    assert retention_limit(curve, 0.95) is None  # the untouched model is below it


@pytest.mark.parametrize("settings, message", [
    ({"start_lr": 1e-3, "end_lr": 1e-5}, "need 0 < start_lr < end_lr"),
    ({"steps": 5}, "steps must be a whole number >= 10"),
    ({"probe_every": 0}, "probe_every must be a whole number from 1 to steps"),
    ({"memory": "tight"}, "memory must be 'fast' or 'lean'"),
])
def test_bad_settings_are_named(minilm, settings, message):
    model, tokenizer = minilm
    with pytest.raises(ValueError, match=message):
        range_test(model, tokenizer, **settings)
