"""Specification of FreezePlan: what each constructor freezes, round-trips, and every bad input's error."""

import warnings

import pytest

import freezelab as fl
from freezelab import FreezePlan
from conftest import tiny_model

BLOCK = 7_087_872  # one bert-base block


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_nothing_is_frozen_by_default_in_the_real_checkpoint(minilm):
    model, _ = minilm
    fresh, _ = fl.load_model("minilm-l6")
    assert all(p.requires_grad for p in fresh.parameters())
    assert FreezePlan.from_model(fresh) == FreezePlan.full_finetune(fresh)
    assert FreezePlan.from_model(fresh).frozen == ()


def test_head_only_trains_1538_parameters_on_bert_base(bert_base):
    FreezePlan.head_only(bert_base).apply(bert_base)
    assert trainable(bert_base) == 1_538
    assert all(p.requires_grad == n.startswith("classifier") for n, p in bert_base.named_parameters())


def test_feature_extractor_keeps_pooler_and_head_trainable(bert_base):
    plan = FreezePlan.feature_extractor(bert_base)
    plan.apply(bert_base)
    assert trainable(bert_base) == 590_592 + 1_538
    assert plan.frozen == ("embeddings",) + tuple(f"block {i}" for i in range(12))


def test_freeze_bottom_k_freezes_embeddings_and_k_blocks(bert_base):
    FreezePlan.freeze_bottom(bert_base, 8).apply(bert_base)
    assert trainable(bert_base) == 4 * BLOCK + 590_592 + 1_538


def test_freeze_bottom_can_leave_embeddings_trainable(bert_base):
    plan = FreezePlan.freeze_bottom(bert_base, 2, embeddings=False)
    assert plan.frozen == ("block 0", "block 1")


def test_train_top_n_is_freeze_bottom_of_the_rest(bert_base):
    assert FreezePlan.train_top(bert_base, 2) == FreezePlan.freeze_bottom(bert_base, 10)
    FreezePlan.train_top(bert_base, 2).apply(bert_base)
    assert trainable(bert_base) == 2 * BLOCK + 590_592 + 1_538


def test_zero_and_all_blocks_are_valid_counts(bert_base):
    assert FreezePlan.freeze_bottom(bert_base, 0).frozen == ("embeddings",)
    assert FreezePlan.train_top(bert_base, 12).frozen == ("embeddings",)


def test_apply_sets_every_parameter_so_plans_do_not_accumulate(bert_base):
    FreezePlan.head_only(bert_base).apply(bert_base)
    FreezePlan.full_finetune(bert_base).apply(bert_base)
    assert trainable(bert_base) == bert_base.num_parameters()


def test_from_model_reads_back_what_apply_wrote(any_tiny):
    for plan in FreezePlan.presets(any_tiny).values():
        plan.apply(any_tiny)
        assert FreezePlan.from_model(any_tiny) == plan


def test_cells_columns_and_patterns_are_selectors(bert_base):
    plan = FreezePlan(["block 3/query", "*/attn LayerNorm"], patterns=[r"\.bias$"])
    frozen = plan.frozen_names(bert_base)
    assert "bert.encoder.layer.3.attention.self.query.weight" in frozen
    assert "bert.encoder.layer.11.attention.output.LayerNorm.weight" in frozen
    assert "classifier.bias" in frozen and "classifier.weight" not in frozen


def test_partial_cells_are_kept_as_exact_names(bert_base):
    bert_base.classifier.bias.requires_grad_(False)
    plan = FreezePlan.from_model(bert_base)
    assert plan.frozen == () and plan.patterns == (r"^classifier\.bias$",)
    assert plan.frozen_names(bert_base) == {"classifier.bias"}


def test_canonical_form_makes_equal_plans_equal(bert_base):
    by_hand = FreezePlan(["block 1", "embeddings", "block 0"])
    assert by_hand != FreezePlan.freeze_bottom(bert_base, 2)
    assert by_hand.canonical(bert_base) == FreezePlan.freeze_bottom(bert_base, 2)


def test_json_round_trip(bert_base):
    plan = FreezePlan.from_names(bert_base, {"classifier.bias"} | set(fl.anatomy(bert_base).names_in(row="block 4")))
    again = FreezePlan.from_json(plan.to_json())
    assert again == plan and hash(again) == hash(plan)
    assert FreezePlan.from_json(FreezePlan(["pooler"], name="x").to_json()).name == "x"


def test_name_is_a_label_not_part_of_equality(bert_base):
    assert FreezePlan.feature_extractor(fl.anatomy(bert_base)).frozen == FreezePlan.freeze_bottom(bert_base, 12).frozen
    assert FreezePlan(["pooler"], name="a") == FreezePlan(["pooler"], name="b")


def test_a_plan_that_leaves_nothing_trainable_exists_and_is_reported(bert_base):
    plan = FreezePlan(["embeddings", "*/query"], patterns=["."])
    assert plan.leaves_nothing_trainable(bert_base)
    with pytest.warns(UserWarning, match="leaves nothing trainable"):
        plan.apply(bert_base)
    assert "nothing is trainable" in fl.summary_line(bert_base)


def test_presets_cover_the_common_recipes(bert_base):
    assert set(FreezePlan.presets(bert_base)) == {
        "full fine-tune", "head only", "pooler + head (feature extractor)",
        "train top 1 + head", "train top 2 + head", "freeze embeddings + bottom 6",
        "BitFit (biases + head)", "LayerNorm only (+ head)"}


def test_presets_that_coincide_on_small_models_appear_once():
    presets = FreezePlan.presets(tiny_model("bert"))  # 3 blocks: freeze bottom 1 == train top 2
    assert "train top 2 + head" in presets and "freeze embeddings + bottom 1" not in presets


# --- bad input: a ValueError that names what was wrong and what is valid ---------

@pytest.mark.parametrize("selector, message", [
    ("encoder", r"unknown row 'encoder'; valid rows: embeddings, block 0 \.\.\. block 11, pooler, head"),
    ("block 12", r"block index 12 is out of range; this model has blocks 0 to 11"),
    ("block -1", r"block index -1 is out of range"),
    ("block 3/querry", r"row 'block 3' has no column 'querry'; its columns are: query, key, value"),
    ("embeddings/query", r"row 'embeddings' has no column 'query'; its columns are: word emb"),
    ("*/gate", r"unknown column 'gate'; valid columns: word emb, position emb"),
    ("", r"non-empty string"),
])
def test_bad_selectors_say_what_is_valid(bert_base, selector, message):
    with pytest.raises(ValueError, match=message):
        FreezePlan([selector]).apply(bert_base)


def test_a_pattern_that_matches_nothing_is_an_error(bert_base):
    with pytest.raises(ValueError, match=r"pattern 'decoder' matches no parameter name; names look like: bert\."):
        FreezePlan(patterns=["decoder"]).frozen_names(bert_base)


def test_an_invalid_regex_is_an_error(bert_base):
    with pytest.raises(ValueError, match="not a valid regular expression"):
        FreezePlan(patterns=["layer.(1"]).frozen_names(bert_base)


@pytest.mark.parametrize("k", [-1, 13, 2.5, True])
def test_freeze_bottom_rejects_bad_k(bert_base, k):
    with pytest.raises(ValueError, match=r"k \(blocks to freeze\) must be"):
        FreezePlan.freeze_bottom(bert_base, k)


def test_train_top_rejects_negative_n(bert_base):
    with pytest.raises(ValueError, match=r"n \(blocks to train\) must be from 0 to 12 \(this model has 12 blocks\), got -2"):
        FreezePlan.train_top(bert_base, -2)


def test_a_plan_for_another_architecture_is_refused(bert_base, minilm):
    plan = FreezePlan.freeze_bottom(bert_base, 8)
    model, _ = minilm
    with pytest.raises(ValueError, match=r"made for a different architecture \(bert, 12 blocks, pooler, head\); "
                                         r"the model is bert, 6 blocks, pooler, head"):
        plan.apply(model)


def test_a_bad_plan_changes_nothing(bert_base):
    with pytest.raises(ValueError):
        FreezePlan(["embeddings", "block 99"]).apply(bert_base)
    assert trainable(bert_base) == bert_base.num_parameters()


def test_reading_json_that_is_not_a_plan_is_an_error():
    with pytest.raises(ValueError, match="not a freezelab plan"):
        FreezePlan.from_json('{"frozen": []}')


def test_plans_work_on_every_architecture(any_tiny):
    FreezePlan.train_top(any_tiny, 1).apply(any_tiny)
    rows = fl.trainable_summary(any_tiny)["trainable"]
    assert rows["embeddings"] == rows["block 0"] == rows["block 1"] == 0
    assert rows["block 2"] > 0 and rows["head"] > 0


def test_no_warning_for_a_normal_plan(bert_base):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FreezePlan.head_only(bert_base).apply(bert_base)


@pytest.mark.parametrize("text, message", [
    ("{not json", r"not a freezelab plan: invalid JSON at line 1, column 2"),
    ("[1, 2]", "not a freezelab plan: expected an object with 'freezelab_plan': 1.*got list"),
    ('{"frozen": ["embeddings"]}', "not a freezelab plan: expected an object with 'freezelab_plan': 1"),
    ('{"freezelab_plan": 1, "frozen": "embeddings"}', "a plan's 'frozen' must be a list of strings"),
    ('{"freezelab_plan": 1, "frozen": [3]}', "a plan's 'frozen' must be a list of strings"),
    ('{"freezelab_plan": 1, "frozen": [], "name": 7}', "a plan's 'name' must be a string, got 7"),
])
def test_a_malformed_plan_file_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        FreezePlan.from_json(text)
