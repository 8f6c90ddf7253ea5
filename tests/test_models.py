"""Specification of load_model: the offline checkpoint, untrained architectures, and clear errors."""

import pytest
import torch

import freezelab as fl


def test_minilm_preset_is_a_real_pretrained_bert_offline(minilm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = minilm
    assert type(model).__name__ == "BertForSequenceClassification"
    assert not fl.is_untrained(model)
    assert model.freezelab_new_weights == ["classifier.bias", "classifier.weight"]
    assert tokenizer("Hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_pretrained_weights_are_not_random(minilm):
    model, _ = minilm
    untrained, _ = fl.load_model("minilm-l6", random_weights=True)
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        word = model.bert.embeddings.word_embeddings.weight
        assert not torch.equal(word, untrained.bert.embeddings.word_embeddings.weight)
        # The checkpoint's pooler was never trained (sentence-transformers uses mean pooling): bias exactly zero.
        assert torch.count_nonzero(model.bert.pooler.dense.bias) == 0
        assert model(input_ids=ids).logits.shape == (1, 2)


def test_same_seed_same_head(minilm):
    a, _ = fl.load_model("minilm-l6", seed=3)
    b, _ = fl.load_model("minilm-l6", seed=3)
    c, _ = fl.load_model("minilm-l6", seed=4)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_num_labels_sets_the_head(minilm):
    model, _ = fl.load_model("minilm-l6", num_labels=3)
    assert model.classifier.out_features == 3


@pytest.mark.parametrize("name, blocks, total", [
    ("bert-base-uncased", 12, 109_483_778),
    ("distilbert-base-uncased", 6, 66_955_010),
])
def test_architectures_build_untrained_with_no_download(name, blocks, total, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = fl.load_model(name, random_weights=True)
    assert fl.is_untrained(model) and model.config.freezelab_untrained
    assert fl.anatomy(model).num_blocks == blocks
    assert model.num_parameters() == total
    assert tokenizer is not None and tokenizer.vocab_size == 30_522


def test_offline_hub_id_gives_a_short_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(fl.ModelNotAvailableError) as caught:
        fl.load_model("bert-base-uncased")
    message = str(caught.value)
    assert "offline (HF_HUB_OFFLINE=1)" in message
    assert "load_model('minilm-l6')" in message and "hf download bert-base-uncased" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_local_folder_with_safetensors_loads(tmp_path, minilm):
    model, tokenizer = minilm
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, _ = fl.load_model(str(tmp_path))
    assert again.freezelab_new_weights == []
    assert torch.equal(again.classifier.weight, model.classifier.weight)


def test_pickled_weights_are_refused(tmp_path, minilm):
    model, _ = minilm
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(fl.ModelNotAvailableError, match="has no safetensors weights.*never from pickle files"):
        fl.load_model(str(tmp_path))


def test_a_missing_folder_is_a_clear_error():
    with pytest.raises(fl.ModelNotAvailableError, match="no model folder 'no-such-model': it does not exist"):
        fl.load_model("./no-such-model")


def test_a_folder_without_a_model_says_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(fl.ModelNotAvailableError, match=r"holds no model: no config.json \(it holds: notes.txt\)"):
        fl.load_model(str(tmp_path))


def test_bad_num_labels():
    with pytest.raises(ValueError, match="num_labels must be a positive whole number, got 0"):
        fl.load_model("minilm-l6", num_labels=0)


def test_the_random_checkpoint_preset_is_shaped_unlike_minilm(monkeypatch, tmp_path):
    """tiny-random-bert: written once into FREEZELAB_CACHE, then a local folder like any other."""
    monkeypatch.setenv("FREEZELAB_CACHE", str(tmp_path))
    model, tokenizer = fl.load_model("tiny-random-bert")
    again, _ = fl.load_model("tiny-random-bert", seed=5)
    assert (tmp_path / "tiny-random-bert" / "model.safetensors").is_file()
    assert fl.anatomy(model).num_blocks == 4 and model.config.hidden_size == 64 and fl.is_untrained(model)
    assert fl.probes.has_mlm_head("tiny-random-bert")
    assert sorted(model.freezelab_new_weights) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                                   "classifier.bias", "classifier.weight"]
    assert torch.equal(model.bert.encoder.layer[0].output.dense.weight, again.bert.encoder.layer[0].output.dense.weight)
    assert tokenizer("Hello world")["input_ids"] == [101, 7592, 2088, 102]


@pytest.mark.parametrize("load, status", [
    (lambda: fl.load_model("minilm-l6"), "untrained"),  # in the file, bias exactly zero
    (lambda: fl.load_model("minilm-l6", pooling="mean"), "mean"),
    (lambda: fl.load_model("bert-base-uncased", random_weights=True), "new"),
    (lambda: fl.load_model("distilbert-base-uncased", random_weights=True), "none"),
])
def test_pooler_status_tells_trained_untrained_new_and_absent_apart(load, status):
    model, _ = load()
    assert fl.models.pooler_status(model) == status and status in fl.models.POOLER_STATUS


def test_the_pooler_status_is_the_checkpoints_and_survives_fine_tuning():
    model, _ = fl.load_model("minilm-l6")
    with torch.no_grad():
        model.bert.pooler.dense.bias.add_(0.01)  # what a fine-tune that trains the pooler leaves
    assert fl.models.pooler_status(model) == "untrained"  # the checkpoint's pooler was never pre-trained
    del model.freezelab_pooler_status  # a model the kit did not load is read from its weights as they are
    assert fl.models.pooler_status(model) == "pre-trained"


def test_a_pooler_with_trained_weights_is_pre_trained(tmp_path, minilm):
    model, tokenizer = minilm
    with torch.no_grad():
        model.bert.pooler.dense.bias.add_(0.01)  # what training leaves: a bias that is not all zero
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert fl.models.pooler_status(fl.load_model(str(tmp_path))[0]) == "pre-trained"
    with torch.no_grad():
        model.bert.pooler.dense.bias.zero_()


def test_loading_a_model_or_fitting_a_probe_leaves_the_callers_random_state_alone():
    from freezelab.probes import linear_probe

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fl.load_model("tiny-random-bert", seed=7)
    linear_probe(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)), [0, 1] * 4,
                 torch.zeros(2, 4), [0, 1])
    assert torch.equal(torch.rand(3), expected)
