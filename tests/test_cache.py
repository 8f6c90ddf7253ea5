"""Specification of the frozen-prefix cache: the same outputs as the full model, and clear limits."""

import pytest
import torch
from transformers import DataCollatorWithPadding

import freezelab as fl
from freezelab import FreezePlan
from freezelab.cache import CachedSuffix, build_cache, collate, frozen_prefix_depth
from freezelab.data import load_task, tokenize
from conftest import tiny_model

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data


@pytest.mark.parametrize("k", [0, 2, 4, 6])
def test_cached_and_uncached_forwards_agree_with_dropout_off(minilm, k):
    model, tokenizer = minilm
    model.eval()
    data = tokenize(load_task("sst2", train_size=24, seed=5)["train"], tokenizer, 64)
    with torch.no_grad():
        cached = CachedSuffix(model, k)(**{n: v for n, v in collate(build_cache(model, data, k)).items()
                                           if n != "labels"}).logits
        batch = DataCollatorWithPadding(tokenizer)([{n: row[n] for n in ("input_ids", "attention_mask",
                                                                             "token_type_ids")} for row in data])
        full = model(**batch).logits
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)


def test_cache_keeps_data_order_and_only_cls_when_every_block_is_frozen(minilm):
    model, tokenizer = minilm
    data = tokenize(load_task("sst2", train_size=10, seed=1)["train"], tokenizer, 64)
    rows = build_cache(model, data, 6)
    assert [r["labels"] for r in rows] == data["label"]
    assert all(r["hidden_states"].shape == (1, 384) for r in rows)
    assert [r["hidden_states"].shape[0] for r in build_cache(model, data, 3)] == [len(i) for i in data["input_ids"]]


def test_depth_of_the_frozen_prefix(minilm):
    model, _ = minilm
    assert frozen_prefix_depth(model, FreezePlan.freeze_bottom(model, 4)) == 4
    assert frozen_prefix_depth(model, FreezePlan.feature_extractor(model)) == 6
    with pytest.raises(ValueError, match="needs the embeddings frozen"):
        frozen_prefix_depth(model, FreezePlan(["block 0"]))
    with pytest.raises(ValueError, match="nothing trainable above the frozen prefix"):
        frozen_prefix_depth(model, FreezePlan(patterns=["."]))


def test_cached_fine_tune_trains_the_same_parameters(minilm):
    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fl.fine_tune(model, tokenizer, "sst2", plan=FreezePlan.freeze_bottom(model, 4), lr=1e-4,
                          train_size=64, dev_size=32, epochs=1, batch_size=16, dashboard="none", cache_prefix=True)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".layer.4." in n or ".layer.5." in n or "pooler" in n or "classifier" in n for n in changed)
    assert result.settings["cache_depth"] == 4 and result.settings["cache_build_s"] > 0
    assert 0 <= result.dev_metric <= 1


def test_cache_refuses_schedules_and_other_architectures(minilm):
    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    with pytest.raises(ValueError, match="cache_prefix needs a fixed plan"):
        fl.fine_tune(model, tokenizer, "sst2", schedule=fl.Schedule.gradual_unfreezing(model, every_steps=2),
                     train_size=32, dashboard="none", cache_prefix=True)
    with pytest.raises(ValueError, match="supports BERT sequence classifiers .* got RobertaForSequenceClassification"):
        CachedSuffix(tiny_model("roberta"), 1)
