"""Specification of mean pooling: the classifier reads the mean of the real tokens, padding never counts."""

import pytest
import torch
from transformers import DataCollatorWithPadding

import freezelab as fl
from freezelab import FreezePlan
from freezelab.prefix_cache import CachedSuffix, build_cache, collate
from freezelab.data import load_task, tokenize
from freezelab.heads import MeanPooler, pooling_of, use_mean_pooling
from conftest import tiny_model


@pytest.fixture(scope="module")
def mean_minilm():
    model, tokenizer = fl.load_model("minilm-l6", pooling="mean", seed=0)
    return model.eval(), tokenizer


def test_mean_pooling_replaces_the_pooler_and_its_row(mean_minilm):
    model, _ = mean_minilm
    assert pooling_of(model) == "mean" and model.config.freezelab_pooling == "mean"
    assert "pooler" not in fl.anatomy(model).rows
    assert model.freezelab_new_weights == ["classifier.bias", "classifier.weight"]
    assert fl.summary_line(model).startswith("trainable params: 22,566,146")  # 22,713,986 less the 384 x 385 pooler


def test_the_classifier_reads_the_mean_of_the_real_tokens(mean_minilm):
    model, tokenizer = mean_minilm
    batch = tokenizer(["a gripping , funny film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        hidden = model.bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(logits, model.classifier(mean))


def test_padding_does_not_change_a_sentence_score(mean_minilm):
    model, tokenizer = mean_minilm
    with torch.no_grad():
        alone = model(**tokenizer(["dull"], return_tensors="pt")).logits
        padded = model(**tokenizer(["dull", "a long sentence that forces padding on the short one"],
                                   padding=True, return_tensors="pt")).logits[:1]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-5)


def test_a_stale_mask_never_leaks_into_the_next_call():
    pooler = MeanPooler()
    pooler.mask = torch.tensor([[1, 0]])
    hidden = torch.tensor([[[1.0], [3.0]]])
    assert pooler(hidden).item() == 1.0  # the mask of this batch...
    assert pooler(hidden).item() == 2.0  # ...is not reused for the next


@pytest.mark.usefixtures("offline_data")
@pytest.mark.parametrize("k", [4, 6])
def test_the_frozen_prefix_cache_agrees_under_mean_pooling(mean_minilm, k):
    model, tokenizer = mean_minilm
    data = tokenize(load_task("sst2", train_size=16, seed=3)["train"], tokenizer, 64)
    with torch.no_grad():
        rows = build_cache(model, data, k)
        cached = CachedSuffix(model, k)(**{n: v for n, v in collate(rows).items() if n != "labels"}).logits
        batch = DataCollatorWithPadding(tokenizer)([{n: row[n] for n in ("input_ids", "attention_mask",
                                                                             "token_type_ids")} for row in data])
        full = model(**batch).logits
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    if k == 6:  # every block frozen: one vector per sentence, the mean
        assert all(r["hidden_states"].shape == (1, 384) for r in rows)


def test_plans_follow_the_missing_pooler(mean_minilm):
    model, _ = mean_minilm
    assert FreezePlan.head_only(model).trainable_count(model) == 770
    assert "pooler + head (feature extractor)" not in FreezePlan.presets(model)
    with pytest.raises(ValueError, match="unknown row 'pooler'"):
        FreezePlan(["pooler"]).frozen_names(model)


def test_bad_pooling_names_what_is_valid():
    with pytest.raises(ValueError, match="pooling must be 'cls' .* or 'mean'"):
        fl.load_model("minilm-l6", pooling="max")
    with pytest.raises(ValueError, match="no pooler to replace"):
        use_mean_pooling(tiny_model("distilbert"))


def test_the_picker_and_structure_copies_follow_mean_pooling(mean_minilm):
    from freezelab.models import structure_copy

    model, _ = mean_minilm
    assert [n for n, _ in structure_copy(model).named_parameters()] == [n for n, _ in model.named_parameters()]
    picker = fl.FreezePicker(model)
    assert "as printed: freeze-body-loop" in picker.presets
    assert picker.presets["head only"].trainable_count(model) == 770
