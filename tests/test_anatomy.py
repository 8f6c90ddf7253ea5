"""Specification of the anatomy grid: where every parameter lives, counted exactly."""

import pytest
from transformers import AutoModelForMaskedLM, BertConfig

import freezelab as fl
from conftest import TINY, tiny_model

BERT_BASE_BODY = 109_482_240
BERT_BASE_EMBEDDINGS = 23_837_184
BERT_BASE_HEAD = 1_538  # 768 x 2 weights + 2 biases


def test_grid_total_equals_num_parameters_on_every_architecture(any_tiny):
    grid = fl.parameter_grid(any_tiny)
    assert grid["total"].sum() == any_tiny.num_parameters()


@pytest.mark.parametrize("kind, blocks", [("bert", "bert.encoder.layer"), ("roberta", "roberta.encoder.layer"),
                                          ("distilbert", "distilbert.transformer.layer"),
                                          ("electra", "electra.encoder.layer")])
def test_blocks_are_found_without_naming_the_architecture(kind, blocks):
    name, layers = fl.find_blocks(tiny_model(kind))
    assert name == blocks and len(layers) == 3


@pytest.mark.parametrize("kind, rows", [
    ("bert", ["embeddings", "block 0", "block 1", "block 2", "pooler", "head"]),
    ("roberta", ["embeddings", "block 0", "block 1", "block 2", "head"]),
    ("distilbert", ["embeddings", "block 0", "block 1", "block 2", "head"]),
    ("electra", ["embeddings", "block 0", "block 1", "block 2", "head"]),
])
def test_rows_follow_the_data_flow(kind, rows):
    assert list(fl.anatomy(tiny_model(kind)).rows) == rows


def test_every_block_cell_has_a_named_kind_on_every_architecture(any_tiny):
    grid = fl.parameter_grid(any_tiny)
    blocks = grid[grid["row"].astype(str).str.startswith("block")]
    assert set(blocks["column"]) == {"query", "key", "value", "attn out", "attn LayerNorm",
                                     "FFN in", "FFN out", "FFN LayerNorm"}
    assert "other" not in set(grid["column"])


def test_electra_embedding_projection_counts_as_embeddings():
    grid = fl.parameter_grid(tiny_model("electra"))
    cell = grid[(grid["row"] == "embeddings") & (grid["column"] == "emb projection")]
    assert cell["total"].item() == 16 * 8 + 16


def test_tied_weights_are_counted_once():
    model = AutoModelForMaskedLM.from_config(BertConfig(**TINY))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert fl.parameter_grid(model)["total"].sum() == model.num_parameters()


def test_bert_base_counts_are_exact(bert_base):
    summary = fl.trainable_summary(bert_base)
    assert summary.loc["head", "total"] == BERT_BASE_HEAD
    assert summary.loc["embeddings", "total"] == BERT_BASE_EMBEDDINGS
    assert summary.loc["all", "total"] == BERT_BASE_BODY + BERT_BASE_HEAD == bert_base.num_parameters()
    assert summary.loc["block 0", "total"] == 7_087_872
    assert summary.loc["pooler", "total"] == 768 * 768 + 768


def test_bert_base_cells_are_exact(bert_base):
    grid = fl.parameter_grid(bert_base).set_index(["row", "column"])["total"]
    assert grid["embeddings", "word emb"] == 30_522 * 768
    assert grid["embeddings", "position emb"] == 512 * 768
    assert grid["block 5", "query"] == 768 * 768 + 768
    assert grid["block 5", "FFN in"] == 768 * 3072 + 3072
    assert grid["block 5", "FFN out"] == 3072 * 768 + 768
    assert grid["block 5", "attn LayerNorm"] == 2 * 768


def test_embeddings_are_about_a_fifth_of_bert_base(bert_base):
    summary = fl.trainable_summary(bert_base)
    share = summary.loc["embeddings", "total"] / summary.loc["all", "total"]
    assert 0.21 < share < 0.22


def test_missing_cells_are_absent_not_zero():
    grid = fl.parameter_grid(tiny_model("roberta"))
    assert "pooler" not in set(grid["row"].astype(str))
    assert (grid["total"] > 0).all()


def test_trainable_counts_follow_requires_grad(bert_base):
    bert_base.bert.embeddings.requires_grad_(False)
    summary = fl.trainable_summary(bert_base)
    assert summary.loc["embeddings", "trainable"] == 0
    assert summary.loc["all", "trainable"] == BERT_BASE_BODY + BERT_BASE_HEAD - BERT_BASE_EMBEDDINGS
    assert summary.loc["embeddings", "% trainable"] == 0.0


def test_summary_line_reads_like_peft(bert_base):
    fl.FreezePlan.head_only(bert_base).apply(bert_base)
    assert fl.summary_line(bert_base) == (
        "trainable params: 1,538 || all params: 109,483,778 || trainable%: 0.0014")


def test_summary_line_says_when_nothing_trains(any_tiny):
    any_tiny.requires_grad_(False)
    assert "nothing is trainable" in fl.summary_line(any_tiny)


def test_anatomy_is_computed_once_per_model(bert_base):
    assert fl.anatomy(bert_base) is fl.anatomy(bert_base)


def test_minilm_checkpoint_counts(minilm):
    model, _ = minilm
    summary = fl.trainable_summary(model)
    assert summary.loc["all", "total"] == 22_713_986 == model.num_parameters()
    assert summary.loc["head", "total"] == 384 * 2 + 2
    assert fl.anatomy(model).num_blocks == 6
