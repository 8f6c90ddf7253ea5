"""Specification of the printed tutorial recipes: what each really does on BERT, or how it crashes."""

import pytest

import freezelab as fl
from freezelab import RECIPES, FreezePlan
from freezelab.recipes import progressive_index_fixed
from conftest import tiny_model

BLOCK = 7_087_872


def run(key, model):
    return RECIPES[key].run_as_printed(model)


def trainable_rows(model):
    summary = fl.trainable_summary(model)
    return [row for row in summary.index if row != "all" and summary.loc[row, "trainable"] > 0]


@pytest.mark.parametrize("key", ["freeze-body-loop", "requires-grad-body", "all-but-classifier"])
def test_the_three_feature_extractor_recipes_train_the_head_only_on_bert(bert_base, key):
    assert run(key, bert_base) == FreezePlan.head_only(bert_base) == RECIPES[key].fixed(bert_base)
    assert trainable_rows(bert_base) == ["head"]


def test_freeze_first_8_leaves_the_embeddings_training(bert_base):
    plan = run("freeze-first-8", bert_base)
    assert plan.frozen == tuple(f"block {i}" for i in range(8))
    assert trainable_rows(bert_base) == ["embeddings", "block 8", "block 9", "block 10", "block 11", "pooler", "head"]
    fixed = RECIPES["freeze-first-8"].fixed(bert_base)
    assert fixed.frozen_names(bert_base) - plan.frozen_names(bert_base) == set(
        fl.anatomy(bert_base).names_in(row="embeddings"))
    sizes = fl.trainable_summary(bert_base)["total"]  # notebook 02: "23.8 million parameters, more than three blocks"
    assert round(sizes["embeddings"] / 1e6, 1) == 23.8 and 3 * sizes["block 0"] < sizes["embeddings"] < 4 * sizes["block 0"]


def test_freeze_first_8_silently_freezes_every_block_of_a_small_model(minilm):
    model, _ = minilm
    run("freeze-first-8", model)
    assert trainable_rows(model) == ["embeddings", "pooler", "head"]


def test_unfreeze_last_2_as_printed_crashes_on_the_word_layer(bert_base):
    with pytest.raises(ValueError, match="invalid literal for int\\(\\) with base 10: 'layer'"):
        run("unfreeze-last-2", bert_base)


def test_unfreeze_last_2_with_the_index_fixed_freezes_the_head(bert_base):
    run("unfreeze-last-2-index-fixed", bert_base)
    assert trainable_rows(bert_base) == ["block 10", "block 11"]
    assert not bert_base.classifier.weight.requires_grad
    RECIPES["unfreeze-last-2-index-fixed"].fixed(bert_base).apply(bert_base)
    assert trainable_rows(bert_base) == ["block 10", "block 11", "pooler", "head"]


def test_unfreeze_last_2_with_the_index_fixed_trains_nothing_on_six_blocks(minilm):
    model, _ = minilm
    run("unfreeze-last-2-index-fixed", model)
    assert fl.trainable_summary(model).loc["all", "trainable"] == 0


def test_progressive_first_phase_trains_the_classifier_only(bert_base):
    assert run("progressive-epochs-0-2", bert_base) == FreezePlan.head_only(bert_base)


@pytest.mark.parametrize("key", ["progressive-epochs-3-5", "progressive-epochs-6-9"])
def test_progressive_crashes_at_epoch_3(bert_base, key):
    with pytest.raises(ValueError, match="'layer'"):
        run(key, bert_base)


def test_progressive_with_the_index_fixed_phases(bert_base):
    progressive_index_fixed(bert_base, until_epoch=3)
    assert trainable_rows(bert_base) == ["block 8", "block 9", "block 10", "block 11", "head"]
    progressive_index_fixed(bert_base, until_epoch=6)
    assert trainable_rows(bert_base) == fl.trainable_summary(bert_base).index[:-1].tolist()


def test_distilbert_classifier_recipes_leave_pre_classifier_frozen():
    model = tiny_model("distilbert")
    run("all-but-classifier", model)
    assert not model.pre_classifier.weight.requires_grad
    assert RECIPES["all-but-classifier"].fixed(model).frozen_names(model).isdisjoint(
        {"pre_classifier.weight", "pre_classifier.bias"})


def test_every_recipe_states_source_claim_and_verdict():
    assert len(RECIPES) == 9
    for recipe in RECIPES.values():
        assert recipe.source and recipe.claim and recipe.verdict


def test_every_fix_is_a_valid_plan_on_bert_base_and_minilm(bert_base, minilm):
    for model in (bert_base, minilm[0]):
        for recipe in RECIPES.values():
            plan = recipe.fixed(model)
            assert not plan.leaves_nothing_trainable(model)


def test_what_notebook_02_says_of_distilberts_two_layer_head():
    """Recipes 1 and 3 leave pre_classifier training (it is outside the body); recipe 4 freezes it at random."""
    distil, _ = fl.load_model("distilbert-base-uncased", random_weights=True)
    trains = {}
    for key in ["freeze-body-loop", "requires-grad-body", "all-but-classifier"]:
        scratch = fl.models.structure_copy(distil)
        plan = fl.RECIPES[key].run_as_printed(scratch)
        trains[key] = (scratch.pre_classifier.weight.requires_grad, plan == fl.FreezePlan.head_only(scratch))
    assert trains == {"freeze-body-loop": (True, True), "requires-grad-body": (True, True),
                      "all-but-classifier": (False, False)}
