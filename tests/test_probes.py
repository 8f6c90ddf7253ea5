"""Specification of the retention probes: known values on the real checkpoint, exact invariances, no side effects."""

import pytest
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForSequenceClassification

import freezelab as fl
from freezelab import probes

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data


TEXTS = ["the film is a delight .", "a dull , lifeless mess", "it rains in spring", "cats sleep a lot"]


def state(model):
    return {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}, model.training


def unchanged(model, before):
    params, training = before
    return model.training == training and all(
        torch.equal(p, params[n][0]) and p.requires_grad == params[n][1] for n, p in model.named_parameters())


def test_untouched_minilm_scores_0_867_on_sts_b(minilm):
    model, tokenizer = minilm
    before = state(model)
    assert round(probes.sts_retention(model, tokenizer), 3) == 0.867
    assert unchanged(model, before)


def test_linear_cka_is_1_for_identical_and_invariant_to_rotation_and_scale():
    torch.manual_seed(0)
    x = torch.randn(200, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert probes.linear_cka(x, x) == pytest.approx(1.0)
    assert probes.linear_cka(x, 3 * x @ rotation) == pytest.approx(1.0)
    assert probes.linear_cka(x, torch.randn(200, 16)) < 0.3


def test_cka_drops_only_from_the_changed_layer_up(minilm):
    original, tokenizer = minilm
    changed = fl.load_model("minilm-l6")[0]
    with torch.no_grad():
        changed.bert.encoder.layer[4].output.dense.weight.add_(0.05 * torch.randn(384, 1536))
    before = state(original)
    cka = probes.cka_per_layer(original, changed, tokenizer, TEXTS)
    assert list(cka) == ["embeddings"] + [f"block {i}" for i in range(6)]
    assert all(cka[r] == pytest.approx(1.0) for r in ["embeddings", "block 0", "block 3"])
    assert cka["block 4"] < 0.999 and cka["block 5"] < 0.999
    assert unchanged(original, before)


def test_cka_from_running_sums_equals_cka_on_every_token_vector_stacked(minilm):
    original, tokenizer = minilm
    changed = fl.load_model("minilm-l6")[0]
    with torch.no_grad():
        changed.bert.encoder.layer[1].output.dense.weight.add_(0.05 * torch.randn(384, 1536))
    streamed = probes.cka_per_layer(original, changed, tokenizer, TEXTS, batch_size=2)  # several batches
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    keep = batch["attention_mask"].bool()
    with torch.no_grad():
        before = original.bert(**batch, output_hidden_states=True).hidden_states
        after = changed.bert(**batch, output_hidden_states=True).hidden_states
    stacked = [probes.linear_cka(x[keep], y[keep]) for x, y in zip(before, after)]
    assert list(streamed.values()) == pytest.approx(stacked, abs=1e-6)  # float32 forwards padded differently


def test_weight_drift_is_zero_where_nothing_changed(minilm):
    original, _ = minilm
    changed = fl.load_model("minilm-l6")[0]
    with torch.no_grad():
        changed.bert.encoder.layer[2].attention.self.query.weight.mul_(1.1)
    drift = probes.weight_drift(original, changed)
    assert drift[("block 2", "query")] == pytest.approx(0.1 * 1.0, rel=0.02)  # weight x1.1, bias unchanged
    assert all(v == 0 for cell, v in drift.items() if cell != ("block 2", "query"))
    assert len(drift) == len(fl.parameter_grid(original))


def test_mlm_retention_reads_the_finetuned_encoder_through_the_original_head():
    torch.manual_seed(0)
    mlm = AutoModelForMaskedLM.from_config(BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                                      intermediate_size=128))
    _, tokenizer = fl.load_model("minilm-l6")
    finetuned = BertForSequenceClassification(mlm.config)
    finetuned.bert.load_state_dict(mlm.bert.state_dict(), strict=False)  # same encoder, new task head
    before, after = state(mlm), state(finetuned)
    through_copy = probes.mlm_retention(mlm, finetuned, tokenizer, TEXTS * 4)
    assert through_copy == probes.mlm_retention(mlm, mlm, tokenizer, TEXTS * 4)  # same encoder, same score
    assert 0 <= through_copy <= 1
    assert unchanged(mlm, before) and unchanged(finetuned, after)


def test_the_masked_lm_probe_scores_only_the_masked_positions_and_gets_the_whole_vocabularys_answer(monkeypatch):
    """The head reads each position alone, so scoring the masked ones only (about 15%) changes no guess."""
    torch.manual_seed(0)
    mlm = AutoModelForMaskedLM.from_config(BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                                      intermediate_size=128))
    _, tokenizer = fl.load_model("minilm-l6")
    texts = list(fl.load_task("sst2", dev_size=64, seed=0)["dev"]["text"])
    assert probes._mlm_head(mlm) is mlm.cls
    masked_only = probes._mlm_retention(mlm, mlm, tokenizer, texts, 0.15, 0)
    monkeypatch.setattr(probes, "_mlm_head", lambda model: None)  # the whole model's logits, every position
    assert probes._mlm_retention(mlm, mlm, tokenizer, texts, 0.15, 0) == masked_only


def test_minilm_has_no_mlm_head():
    assert not probes.has_mlm_head("minilm-l6")


def test_retention_record_for_an_unchanged_model(minilm):
    model, tokenizer = minilm
    twin = fl.load_model("minilm-l6")[0]
    record = probes.retention(model, twin, tokenizer, sts_dev_size=100, probe_size=20)
    assert set(record) == {"sts_spearman", "cka", "weight_drift"}
    assert all(v == pytest.approx(1.0) for v in record["cka"].values())
    assert all(v == 0 for cell, v in record["weight_drift"].items() if not cell.startswith("head/"))


def test_retention_adds_the_mlm_probe_when_the_checkpoint_has_a_head(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    AutoModelForMaskedLM.from_config(config).save_pretrained(tmp_path)  # a local checkpoint with an MLM head
    _, tokenizer = fl.load_model("minilm-l6")
    assert probes.has_mlm_head(str(tmp_path))
    original, _ = fl.load_model(str(tmp_path))
    finetuned, _ = fl.load_model(str(tmp_path))
    record = fl.retention(original, finetuned, tokenizer, checkpoint=str(tmp_path), sts_dev_size=50, probe_size=20)
    assert set(record) == {"sts_spearman", "cka", "weight_drift", "mlm_accuracy"}
    assert 0 <= record["mlm_accuracy"] <= 1


@pytest.mark.parametrize("checkpoint, probe", [("minilm-l6", "sts_spearman"), ("tiny-random-bert", "mlm_accuracy")])
def test_the_retention_axis_fits_the_checkpoint(checkpoint, probe):
    """A sentence encoder is asked about sentence similarity; a checkpoint with an MLM head about hidden words."""
    assert probes.retention_probe(checkpoint) == probe


def test_untouched_is_what_retention_reports_for_an_unchanged_model(offline_data):
    model, tokenizer = fl.load_model("tiny-random-bert")
    original, _ = fl.load_model("tiny-random-bert")
    record = fl.retention(original, model, tokenizer, checkpoint="tiny-random-bert", sts_dev_size=50, probe_size=40)
    assert probes.untouched(model, tokenizer, "tiny-random-bert", "mlm_accuracy", probe_size=40) == record["mlm_accuracy"]
    assert probes.untouched(model, tokenizer, "tiny-random-bert", "sts_spearman", sts_dev_size=50) == record["sts_spearman"]
    with pytest.raises(ValueError, match="unknown probe 'bleu'; probes: sts_spearman, mlm_accuracy"):
        probes.untouched(model, tokenizer, "tiny-random-bert", "bleu")


def test_sentence_features_read_cls_pooler_or_mean():
    model, tokenizer = fl.load_model("tiny-random-bert")
    cls, pooled, mean = (probes.sentence_features(model, tokenizer, TEXTS, read) for read in ("cls", "pooler", "mean"))
    with torch.no_grad():
        out = model.bert(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
    assert torch.allclose(cls, out.last_hidden_state[:, 0], atol=1e-5)
    assert torch.allclose(pooled, out.pooler_output, atol=1e-5)
    assert torch.allclose(mean, probes._encode(model, tokenizer, TEXTS), atol=1e-5)
    with pytest.raises(ValueError, match="read must be 'cls', 'pooler' or 'mean', got 'max'"):
        probes.sentence_features(model, tokenizer, TEXTS, "max")


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_the_linear_probe_reads_what_is_there_whatever_the_scale(scale):
    """What a short fine-tune of a small head cannot: its answer must not depend on the features' size."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    assert probes.linear_probe(scale * x[:300], y[:300], scale * x[300:], y[300:], l2=0.0) >= 0.97
    noise = torch.randint(0, 2, (400,), generator=generator)  # labels that the features do not predict
    assert probes.linear_probe(scale * x[:300], noise[:300], scale * x[300:], noise[300:], l2=0.0) < 0.65


def test_what_notebook_04_says_of_the_untrained_pooler():
    """At the notebook's quick size, on MiniLM: the probe reads about as much from the untrained pooler's output as
    from [CLS] itself, far above the majority class; the pooler's outputs are several times smaller; and the
    shipped [CLS] head at lr 1e-2 stays below what the probe reads from the same vector."""
    from freezelab import course, data, results

    size = course.SIZES["quick"]
    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    sample = fl.load_task("sst2", train_size=size.train_size, dev_size=size.dev_size, seed=0)
    probe, scale = {}, {}
    for read in ("cls", "pooler"):
        train_x = probes.sentence_features(model, tokenizer, sample["train"]["text"], read)
        dev_x = probes.sentence_features(model, tokenizer, sample["dev"]["text"], read)
        scale[read] = float(train_x.abs().mean())
        probe[read] = probes.linear_probe(train_x, sample["train"]["label"], dev_x, sample["dev"]["label"])
    assert abs(probe["pooler"] - probe["cls"]) < 0.05 and probe["pooler"] > data.majority_share(sample["dev"]) + 0.1
    assert scale["pooler"] < scale["cls"] / 3
    table = results.summary(results.shipped("frontier")).set_index("label")
    assert table.loc["head only, lr 0.01", "dev_metric mean"] < probe["pooler"]


def forwards(model):
    """How many times the encoder ran, counted by a hook (the returned list grows by one per forward)."""
    calls = []
    _ = probes._body(model).register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_probes_on_the_same_encoder_weights_are_computed_once_and_read_back(minilm):
    model, tokenizer = minilm
    fl.clear_caches()
    first = probes.sts_retention(model, tokenizer, dev_size=40)
    twin = fl.load_model("minilm-l6", seed=7)[0]  # another object, another head, the same encoder
    with torch.no_grad():
        twin.bert.pooler.dense.weight.mul_(2.0)  # the probes do not read the pooler
    ran = forwards(twin)
    assert probes.sts_retention(twin, tokenizer, dev_size=40) == first
    assert ran == []  # read back, not run
    assert probes.cka_per_layer(model, twin, tokenizer, TEXTS) == probes.cka_per_layer(model, twin, tokenizer, TEXTS)
    assert len(ran) == 1  # the four texts are one batch: the first CKA ran the twin once, the second not at all
    fl.clear_caches()
    assert probes.sts_retention(twin, tokenizer, dev_size=40) == first  # computed again: the same number
    assert len(ran) > 1


def test_a_changed_encoder_is_probed_anew(minilm):
    model, tokenizer = minilm
    changed = fl.load_model("minilm-l6")[0]
    before = probes.sts_retention(changed, tokenizer, dev_size=40)
    with torch.no_grad():
        changed.bert.encoder.layer[5].output.dense.weight.add_(0.5 * torch.randn(384, 1536))
    ran = forwards(changed)
    assert probes.sts_retention(changed, tokenizer, dev_size=40) != before
    assert ran  # the weights changed in place, so the remembered score was not used
    assert probes.sts_retention(changed, tokenizer, dev_size=41) != probes.sts_retention(changed, tokenizer, dev_size=40)


def test_layer_probes_read_every_layer_and_the_cls_and_pooler_vectors(offline_data):
    model, tokenizer = fl.load_model("minilm-l6")
    data = fl.load_task("word-order", train_size=40, dev_size=20, seed=0)
    features = probes.layer_features(model, tokenizer, list(data["train"]["text"]))
    assert list(features) == ["embeddings"] + [f"block {i}" for i in range(6)] + ["[CLS]", "pooler"]
    assert all(v.shape == (40, 384) for v in features.values())
    top = probes.sentence_features(model, tokenizer, list(data["train"]["text"]), "mean")
    assert torch.allclose(features["block 5"], top, atol=1e-4)  # the top layer's mean is what the mean head reads
    table = probes.layer_probes(model, tokenizer, data)
    assert list(table["vector"]) == list(features) and table["dev accuracy"].between(0, 1).all()
