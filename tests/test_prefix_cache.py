"""Specification of the frozen-prefix cache: the same outputs as the full model, and clear limits."""

import copy

import pytest
import torch
from transformers import DataCollatorWithPadding

import freezelab as fl
from freezelab import FreezePlan
from freezelab import prefix_cache
from freezelab.prefix_cache import CachedSuffix, build_cache, collate, frozen_prefix_depth
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
                          train_size=64, dev_size=32, epochs=1, batch_size=16, cache_prefix=True)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".layer.4." in n or ".layer.5." in n or "pooler" in n or "classifier" in n for n in changed)
    assert result.settings["cache_depth"] == 4 and result.settings["cache_build_s"] > 0
    assert 0 <= result.dev_metric <= 1


def test_cache_refuses_schedules_and_other_architectures(minilm):
    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    with pytest.raises(ValueError, match="cache_prefix needs a fixed plan"):
        fl.fine_tune(model, tokenizer, "sst2", schedule=fl.Schedule.gradual_unfreezing(model, every_steps=2),
                     train_size=32, cache_prefix=True)
    with pytest.raises(ValueError, match="supports BERT sequence classifiers .* got RobertaForSequenceClassification"):
        CachedSuffix(tiny_model("roberta"), 1)


# --- reuse across runs (issue 13) ---------------------------------------------------------------

def test_a_second_build_on_the_same_frozen_prefix_computes_nothing_and_returns_the_same_vectors(minilm):
    model, tokenizer = minilm
    data = tokenize(load_task("sst2", train_size=12, seed=2)["train"], tokenizer, 64)
    store = prefix_cache.Store()
    first = build_cache(model, data, 4, store=store)
    assert (store.hits, store.misses) == (0, 12)
    again = build_cache(model, data, 4, store=store)
    assert (store.hits, store.misses) == (12, 12)
    assert all(torch.equal(a["hidden_states"], b["hidden_states"]) for a, b in zip(first, again))


def test_changed_frozen_weights_or_depth_never_reuse_a_stale_vector(minilm):
    model, tokenizer = copy.deepcopy(minilm[0]), minilm[1]
    data = tokenize(load_task("sst2", train_size=6, seed=3)["train"], tokenizer, 64)
    store = prefix_cache.Store()
    build_cache(model, data, 4, store=store)
    build_cache(model, data, 3, store=store)  # another depth: another key
    assert store.hits == 0
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.bias.add_(0.1)  # a frozen weight changed (e.g. another checkpoint)
    changed = build_cache(model, data, 4, store=store)
    assert store.hits == 0
    model.eval()
    with torch.no_grad():
        batch = DataCollatorWithPadding(tokenizer)([{n: row[n] for n in ("input_ids", "attention_mask",
                                                                             "token_type_ids")} for row in data])
        full = model(**batch).logits
        cached = CachedSuffix(model, 4)(**{n: v for n, v in collate(changed).items() if n != "labels"}).logits
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)


def test_the_store_is_bounded_and_evicts_the_least_recently_used(minilm, monkeypatch):
    model, tokenizer = minilm
    data = tokenize(load_task("sst2", train_size=20, seed=4)["train"], tokenizer, 64)
    one = 384 * 4  # bytes of one cached vector when every block is frozen
    monkeypatch.setattr(prefix_cache, "MAX_MB", 5.5 * one / 2**20)
    store = prefix_cache.Store()
    build_cache(model, data, 6, store=store)
    assert len(store.rows) == 5 and store.bytes == 5 * one
    store.clear()
    assert (len(store.rows), store.bytes, store.hits, store.misses) == (0, 0, 0, 0)


def test_runs_of_a_grid_share_the_cache_and_score_as_a_cold_run_does():
    prefix_cache.STORE.clear()
    scores = []
    for _ in range(2):
        model, tokenizer = fl.load_model("minilm-l6", seed=0)
        result = fl.fine_tune(model, tokenizer, "sst2", plan=FreezePlan.feature_extractor(model), lr=1e-3, epochs=1,
                              train_size=48, dev_size=32, cache_prefix=True, evals_per_epoch=0)
        scores.append((result.dev_metric, result.losses()["loss"].tolist()))
    assert prefix_cache.STORE.hits == 48 + 32 and scores[0] == scores[1]
    fl.clear_caches()
    assert len(prefix_cache.STORE.rows) == 0
