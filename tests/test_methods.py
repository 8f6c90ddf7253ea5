"""Specification of the methods beyond freezing layers: BitFit, LayerNorm-only (plans) and LoRA (through peft).

What each trains, counted on bert-base's architecture from the shapes of its matrices; that the heatmap counts
an adapter in the cell of the matrix it adapts; that LoRA starts as the pre-trained function and that its
folded-in weights compute the adapted one; JSON, equality and every bad input's error; and that `fine_tune`,
the probes, the frozen-prefix cache and the sweep grid take them.
"""

import copy

import pytest
import torch
from torch import nn

import freezelab as fl
from freezelab import FreezePlan
from freezelab.anatomy import anatomy
from freezelab.grids import describe, grid
from freezelab.lora import LoRA, adapted_modules
from freezelab.methods import has_adapters, merged_state_dict
from freezelab.plots import trainable_heatmap
from conftest import tiny_model

HIDDEN, FFN, BLOCKS, HEAD = 768, 3072, 12, 1_538  # bert-base: its sizes, and its 2-way head (768 x 2 + 2)


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- BitFit and LayerNorm-only are freezing plans -----------------------------------------------------

def test_bitfit_trains_every_bias_and_the_head(bert_base):
    FreezePlan.bitfit(bert_base).apply(bert_base)
    per_block = 4 * HIDDEN + 2 * HIDDEN + FFN + HIDDEN  # q, k, v, attn out; two LayerNorms; FFN in; FFN out
    assert trainable(bert_base) == HIDDEN + BLOCKS * per_block + HIDDEN + HEAD  # embeddings' LayerNorm, pooler
    assert all(p.requires_grad == (n.endswith("bias") or n.startswith("classifier"))
               for n, p in bert_base.named_parameters())


def test_layernorm_only_trains_the_layernorms_and_the_head(bert_base):
    FreezePlan.layernorm_only(bert_base).apply(bert_base)
    assert trainable(bert_base) == 2 * HIDDEN + BLOCKS * 2 * 2 * HIDDEN + HEAD
    assert all(p.requires_grad == ("LayerNorm" in n or n.startswith("classifier")) for n, p in bert_base.named_parameters())


def test_bitfit_and_layernorm_only_are_offered_as_presets_and_round_trip_as_json(any_tiny):
    presets = FreezePlan.presets(any_tiny)
    for name in ("BitFit (biases + head)", "LayerNorm only (+ head)"):
        plan = presets[name]
        assert FreezePlan.from_json(plan.to_json()) == plan
        assert plan.trainable_count(any_tiny) < sum(p.numel() for p in any_tiny.parameters()) / 10


# --- LoRA: what it adds, where the heatmap counts it ---------------------------------------------------

def test_a_rank_r_adapter_of_an_out_by_in_matrix_holds_r_times_in_plus_out_numbers(bert_base):
    attention = 4 * 8 * (HIDDEN + HIDDEN)
    ffn = 2 * 8 * (HIDDEN + FFN)
    assert LoRA(8).trainable_count(bert_base) == BLOCKS * attention + HEAD
    assert LoRA(8, targets="ffn").trainable_count(bert_base) == BLOCKS * ffn + HEAD
    assert LoRA(8, targets="all-linear").trainable_count(bert_base) == BLOCKS * (attention + ffn) + HEAD
    assert LoRA(64).trainable_count(bert_base) - HEAD == 8 * (LoRA(8).trainable_count(bert_base) - HEAD)


def test_applied_adapters_land_in_the_cells_the_preview_counted(any_tiny):
    method = LoRA(4, targets="all-linear")
    before = anatomy(any_tiny)
    preview = method.added(before)
    method.apply(any_tiny)
    after = anatomy(any_tiny)
    assert (after.rows, after.columns) == (before.rows, before.columns)
    assert (after.adapter_matrix() == preview).all()
    assert trainable(any_tiny) == method.trainable_count(before) == method.trainable_count(after)
    trains = {p.name for p in after.params if p.adapter or p.row == "head"}
    assert all(p.requires_grad == (n in trains) for n, p in any_tiny.named_parameters())


def test_the_heatmap_previews_adapters_and_hover_splits_base_and_adapter(bert_base):
    figure = trainable_heatmap(anatomy(bert_base), LoRA(8))
    assert f"{LoRA(8).trainable_count(bert_base):,}" in figure.layout.title.text
    assert "in adapters" in figure.layout.title.text
    hover = figure.data[0].customdata[list(figure.data[0].y).index("block 3")][list(figure.data[0].x).index("query")]
    assert f"base matrix {HIDDEN * HIDDEN + HIDDEN:,} (frozen) + adapter {8 * 2 * HIDDEN:,} (trains)" in hover
    assert all(p.requires_grad for p in bert_base.parameters())  # a preview applies nothing


def test_lora_starts_as_the_pretrained_function_and_its_folded_weights_compute_the_adapted_one():
    model = tiny_model("bert").eval()
    plain = copy.deepcopy(model)
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    LoRA(4, targets="all-linear").apply(model)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, plain(ids).logits)  # B starts at zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
        adapted = model(ids).logits
        assert not torch.allclose(adapted, plain(ids).logits)
        state = merged_state_dict(model)
        assert set(state) == set(plain.state_dict())
        plain.load_state_dict(state)
        assert torch.allclose(plain(ids).logits, adapted, atol=1e-5)


def test_probes_that_copy_weights_get_every_matrix_with_its_adapter_folded_in():
    from freezelab import probes

    model, plain = tiny_model("bert").eval(), tiny_model("bert").eval()
    LoRA(4, targets="all-linear").apply(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    plain.base_model.load_state_dict(probes._weights(model.base_model))  # strict: no name missing or left over
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    with torch.no_grad():
        assert torch.allclose(plain.base_model(ids).last_hidden_state, model.base_model(ids).last_hidden_state, atol=1e-5)


def test_applying_the_same_lora_again_changes_nothing_and_other_adapters_are_refused():
    model = tiny_model("bert")
    LoRA(4).apply(model)
    names = [n for n, _ in model.named_parameters()]
    LoRA(4).apply(model)
    assert [n for n, _ in model.named_parameters()] == names and has_adapters(model)
    assert set(adapted_modules(model).values()) == {(4, 2.0)}
    with pytest.raises(ValueError, match=r"already holds other adapters \(LoRA r=4 \(attention\)\); load a fresh model to apply LoRA r=8"):
        LoRA(8).apply(model)


def test_lora_is_data(any_tiny):
    method = LoRA(16, alpha=8, targets="ffn", dropout=0.1)
    assert LoRA.from_json(method.to_json()) == method
    assert LoRA(16) == LoRA(16, alpha=32) != LoRA(16, alpha=16)  # alpha defaults to 2 x rank
    assert (LoRA(4).name, LoRA(4).scale) == ("LoRA r=4 (attention)", 2.0)
    assert len({LoRA(4), LoRA(4), LoRA(8)}) == 2


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"rank": 0}, "rank must be a whole number >= 1, got 0"),
    ({"rank": 2.5}, "rank must be a whole number >= 1, got 2.5"),
    ({"rank": True}, "rank must be a whole number >= 1, got True"),
    ({"alpha": 0}, "alpha must be a number > 0"),
    ({"targets": "mlp"}, "unknown LoRA target modules 'mlp'; valid: 'attention'"),
    ({"dropout": 1.0}, "dropout must be a number from 0 to below 1"),
])
def test_bad_lora_settings_name_the_value_and_what_is_valid(settings, message):
    with pytest.raises(ValueError, match=message):
        LoRA(**settings)


def test_lora_on_a_model_without_those_matrices_says_what_its_blocks_hold():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.Linear(4, 4)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block(), Block()])

    with pytest.raises(ValueError, match=r"has no attention matrices to adapt .*its blocks hold: other"):
        LoRA(4).apply(Stack())


@pytest.mark.parametrize("data, message", [
    ({"rank": 4}, "not a freezelab LoRA method"),
    ({"freezelab_lora": 1, "rank": 4, "layers": [1]}, r"unknown LoRA fields \['layers'\]"),
    ({"freezelab_lora": 1, "rank": -1}, "rank must be a whole number >= 1"),
])
def test_bad_lora_files_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        LoRA.from_dict(data)


# --- the rest of the kit takes them ------------------------------------------------------------------

def test_sweep_grids_name_the_methods():
    points = grid(["bitfit", "lnorm", "lora16-attn", "lora4-all"], [1e-3], [100], [0])
    assert [describe(p) for p in points] == ["BitFit (biases + head), lr 0.001", "LayerNorm only (+ head), lr 0.001",
                                            "LoRA r=16 (attention), lr 0.001", "LoRA r=4 (all-linear), lr 0.001"]


def test_fine_tune_trains_only_adapters_and_head_and_the_probes_read_the_adapted_model(offline_data):
    model, tokenizer = fl.load_model("minilm-l6")
    original = copy.deepcopy(model)
    with pytest.raises(ValueError, match="cache_prefix needs a bottom prefix of whole frozen blocks"):
        fl.fine_tune(model, tokenizer, "sst2", plan=LoRA(4), cache_prefix=True, train_size=32)
    result = fl.fine_tune(model, tokenizer, "sst2", plan=LoRA(4), lr=1e-3, epochs=1, train_size=64, dev_size=64,
                          seed=3)
    assert result.trainable_params == LoRA(4).trainable_count(original)
    assert result.plans == [LoRA(4).to_dict()]
    after = dict(model.named_parameters())
    for name, p in original.named_parameters():  # every pre-trained weight is where it was
        owner, _, leaf = name.rpartition(".")
        mine = after.get(name, after.get(f"{owner}.base_layer.{leaf}"))
        assert torch.equal(mine, p) or name.startswith("classifier"), name
    drift = fl.probes.weight_drift(original, model)  # read with the adapters folded in
    assert drift[("block 2", "query")] > 0 and drift[("block 2", "FFN in")] == 0
    assert drift[("block 2", "attn LayerNorm")] == 0


def test_lora_on_the_top_blocks_leaves_a_frozen_prefix_that_the_cache_skips_with_the_same_result(offline_data):
    method = LoRA(4, top=2)
    assert method.name == "LoRA r=4 (attention, top 2 blocks)" and method.frozen_prefix(tiny_model("bert")) == 1
    assert LoRA.from_json(method.to_json()) == method
    scores = []
    for cache in (False, True):
        model, tokenizer = fl.load_model("minilm-l6", seed=0)
        result = fl.fine_tune(model, tokenizer, "sst2", plan=method, lr=2e-3, epochs=1, train_size=64, dev_size=64,
                              cache_prefix=cache, frozen_eval_mode=True, micro_batch_size=None)
        assert {n.split(".layer.")[1].split(".")[0] for n, p in model.named_parameters()
                if p.requires_grad and ".layer." in n} == {"4", "5"}
        scores.append((result.dev_metric, [h["loss"] for h in result.history if "loss" in h][-1]))
    assert result.settings["cache_depth"] == 4
    assert scores[0][0] == scores[1][0] and scores[0][1] == pytest.approx(scores[1][1], rel=1e-4)


@pytest.mark.parametrize("top, message", [(0, "top .* must be a whole number >= 1 or None"),
                                          (7, "this model has 6 blocks; top must be from 1 to 6")])
def test_lora_top_out_of_range_is_refused(top, message):
    with pytest.raises(ValueError, match=message):
        LoRA(4, top=top).added(fl.load_model("minilm-l6")[0])


def test_lora_adapters_start_from_the_runs_seed(offline_data):
    def first_adapter(seed):
        model, tokenizer = fl.load_model("minilm-l6")
        fl.fine_tune(model, tokenizer, "sst2", plan=LoRA(4), lr=1e-3, epochs=1, train_size=8, dev_size=8,
                     seed=seed, warmup=0.0)
        return next(p for n, p in model.named_parameters() if "lora_A" in n).detach().clone()

    assert torch.equal(first_adapter(1), first_adapter(1))
    assert not torch.equal(first_adapter(1), first_adapter(2))


# --- the method protocol: what every method provides, and (IA)³ added through it --------------------------

def test_every_registered_method_provides_the_protocol_and_reads_back_from_its_json(bert_base):
    from freezelab.methods import Method, families, from_dict

    a = anatomy(bert_base)
    for family in families():
        defaults = family.make()
        assert all(getattr(defaults, name) in options for name, options in family.choices.items()), family.title
        for key, method in family.grid.items():
            assert isinstance(method, Method) and key.startswith(family.key)
            assert from_dict(method.to_dict()) == method
            added = method.added(a)
            assert method.trainable_count(a) == int(added.sum()) + HEAD  # its own weights and the head train
            assert method.frozen_names(a) == frozenset(p.name for p in a.params if p.row != "head")
    for plan in FreezePlan.presets(a).values():
        assert isinstance(plan, Method) and plan.added(a) is None and from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError, match="not a freezelab method: expected an object tagged with one of"):
        from_dict({"rank": 4})


def test_ia3_scales_keys_values_and_the_ffn_inner_activations_one_number_each(bert_base):
    from freezelab.ia3 import IA3

    assert IA3().trainable_count(bert_base) == BLOCKS * (HIDDEN + HIDDEN + FFN) + HEAD  # key, value outputs; FFN out's inputs
    assert IA3("attention").trainable_count(bert_base) == BLOCKS * 2 * HIDDEN + HEAD
    cells = IA3().added(bert_base)
    a = anatomy(bert_base)
    row = a.rows.index("block 3")
    assert [cells[row][a.columns.index(c)] for c in ("query", "key", "value", "FFN in", "FFN out")] == [0, HIDDEN, HIDDEN, 0, FFN]
    with pytest.raises(ValueError, match=r"unknown \(IA\)³ targets 'ffn'; valid: 'attention\+ffn' \(key, value, FFN out\)"):
        IA3("ffn")


def test_ia3_starts_as_the_pretrained_function_and_its_folded_weights_compute_the_adapted_one():
    from freezelab.ia3 import IA3

    model, plain = tiny_model("bert").eval(), tiny_model("bert").eval()
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    IA3().apply(model)
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, plain(ids).logits)  # every vector starts at 1
        for name, p in model.named_parameters():
            if "ia3_l" in name:
                p.normal_(1, 0.5)
        adapted = model(ids).logits
        before = {n: p.clone() for n, p in model.named_parameters()}
        plain.load_state_dict(merged_state_dict(model))  # strict: every name is a plain one
        assert torch.allclose(plain(ids).logits, adapted, atol=1e-5)
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # folding left the model as it was
    with pytest.raises(ValueError, match=r"already holds other adapters \(\(IA\)³ \(attention\+ffn\)\)"):
        LoRA(4).apply(model)


def test_ia3_is_on_the_picker_the_heatmap_the_grid_and_the_frontier(bert_base):
    import pandas as pd

    from freezelab import run_plots
    from freezelab.ia3 import IA3
    from freezelab.style import SKY_BLUE

    picker = fl.FreezePicker(bert_base, live="output")
    picker.method.value = "(IA)³"
    assert picker.plan == IA3() and picker.method_controls.children == (picker.choices["(IA)³"]["targets"],)
    assert f"{IA3().trainable_count(bert_base):,}" in picker.summary.value
    z = picker.figure.data[0].z
    a = picker.anatomy
    assert z[a.rows.index("block 2")][a.columns.index("FFN out")] > 0 == z[a.rows.index("block 2")][a.columns.index("query")]
    picker.choices["(IA)³"]["targets"].value = "attention"
    assert picker.plan == IA3("attention") and all(p.requires_grad for p in bert_base.parameters())

    assert [describe(p) for p in grid(["ia3", "ia3-attn"], [3e-3], [100], [0])] == [
        "(IA)³ (attention+ffn), lr 0.003", "(IA)³ (attention), lr 0.003"]
    runs = pd.DataFrame([{"label": "(IA)³ (attention+ffn), lr 0.003", "plan": "ia3", "lr": 3e-3, "seed": s,
                          "train_size": 2000, "dev_metric": 0.8, "frozen_blocks": 0, "num_blocks": 6,
                          "schedule": False, "pooling": "cls", "retention": {"sts_spearman": 0.7}} for s in (0, 1)])
    figure = run_plots.frontier_plot(runs)
    assert (figure.data[0].marker.symbol, figure.data[0].marker.color) == ("star", SKY_BLUE)
    assert "sky-blue ★ (IA)³" in figure.layout.legend.title.text


def test_fine_tune_trains_only_the_ia3_vectors_and_the_head(offline_data):
    from freezelab.ia3 import IA3

    model, tokenizer = fl.load_model("minilm-l6")
    original = copy.deepcopy(model)
    result = fl.fine_tune(model, tokenizer, "sst2", plan=IA3(), lr=1e-2, epochs=1, train_size=32, dev_size=32, seed=3)
    assert result.plans == [IA3().to_dict()] and result.trainable_params == IA3().trainable_count(original)
    after = dict(model.named_parameters())
    for name, p in original.named_parameters():
        owner, _, leaf = name.rpartition(".")
        assert torch.equal(after.get(name, after.get(f"{owner}.base_layer.{leaf}")), p) or name.startswith("classifier")
    drift = fl.probes.weight_drift(original, model)  # read with the vectors folded in
    assert drift[("block 2", "value")] > 0 and drift[("block 2", "query")] == 0


def test_adding_ia3_touched_no_code_outside_its_own_file_and_its_registration():
    """The method protocol's promise: a new method is one file and one line in methods.REGISTERED."""
    import ast
    from pathlib import Path

    package = Path(fl.__file__).parent
    naming = {}
    for path in package.glob("*.py"):
        if path.name == "ia3.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else (
                node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else "")
            if id(node) not in docstrings and ("ia3" in text.lower() or "(IA)" in text):
                naming.setdefault(path.name, []).append(text)
    assert naming == {"methods.py": ["ia3"]}  # REGISTERED = ("lora", "ia3")
