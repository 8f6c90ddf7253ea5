"""Specification of weight interpolation (WiSE-FT): the straight line from the pre-trained to the fine-tuned weights.

Its ends are the two models it joins, its middle is the exact average, the head is never walked, `rows`
limits the walk to those rows of the grid, adapters are folded in first, and every mistake is named.
The α-curve scores each model on the task and on STS-B retention: at α = 0 the body is the checkpoint's own.
"""

import copy

import pandas as pd
import pytest
import torch

import freezelab as fl
from freezelab import results
from freezelab.interpolation import alpha_curve, interpolate
from freezelab.lora import LoRA
from freezelab.sequential import score
from conftest import tiny_model

IDS = torch.tensor([[2, 5, 7, 9, 3]])


def fine_tuned_copy(model, seed=1, scale=0.05):
    """The model with every weight moved (a stand-in for a fine-tune: what matters here is the arithmetic)."""
    moved = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return moved


def body(model):
    return {n: p for n, p in model.named_parameters() if not n.startswith("classifier")}


def test_the_ends_are_the_two_models_and_the_middle_is_their_average():
    pretrained = tiny_model("bert").eval()
    finetuned = fine_tuned_copy(pretrained).eval()
    with torch.no_grad():
        assert torch.allclose(interpolate(pretrained, finetuned, 1.0).eval()(IDS).logits, finetuned(IDS).logits)
    start, end, middle = body(pretrained), body(finetuned), body(interpolate(pretrained, finetuned, 0.5))
    assert all(torch.allclose(middle[n], (start[n] + end[n]) / 2) for n in start)
    at_zero = dict(interpolate(pretrained, finetuned, 0.0).named_parameters())
    assert all(torch.equal(at_zero[n], start[n]) for n in start)
    assert torch.equal(at_zero["classifier.weight"], finetuned.classifier.weight)  # the head is the fine-tuned one
    assert all(torch.equal(p, q) for p, q in zip(pretrained.parameters(), tiny_model("bert").parameters()))


def test_rows_limit_the_walk_to_those_rows_of_the_grid():
    pretrained = tiny_model("bert")
    finetuned = fine_tuned_copy(pretrained)
    walked = dict(interpolate(pretrained, finetuned, 0.0, rows=["embeddings", "block 0"]).named_parameters())
    rows = {p.name: p.row for p in fl.anatomy(pretrained).params}
    for name, p in finetuned.named_parameters():
        expected = dict(pretrained.named_parameters())[name] if rows[name] in ("embeddings", "block 0") else p
        assert torch.equal(walked[name], expected), name


def test_a_lora_run_walks_with_its_adapters_folded_in():
    pretrained = tiny_model("bert").eval()
    adapted = copy.deepcopy(pretrained)
    LoRA(4, targets="all-linear").apply(adapted)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapted.eval()
    with torch.no_grad():
        assert torch.allclose(interpolate(pretrained, adapted, 1.0).eval()(IDS).logits, adapted(IDS).logits, atol=1e-5)
    at_zero = body(interpolate(pretrained, adapted, 0.0))
    assert all(torch.equal(at_zero[n], p) for n, p in body(pretrained).items())


@pytest.mark.parametrize("alpha, rows, message", [
    (1.5, None, "alpha must be a number from 0 .pre-trained. to 1 .fine-tuned., got 1.5"),
    (True, None, "alpha must be a number from 0"),
    (0.5, ["head"], r"unknown rows \['head'\] \(the head is never interpolated\); valid: embeddings, block 0"),
    (0.5, ["block 9"], r"unknown rows \['block 9'\]"),
])
def test_bad_alphas_and_rows_are_named(alpha, rows, message):
    pretrained = tiny_model("bert")
    with pytest.raises(ValueError, match=message):
        interpolate(pretrained, fine_tuned_copy(pretrained), alpha, rows=rows)


def test_a_pretrained_model_with_adapters_or_another_architecture_is_refused():
    pretrained = tiny_model("bert")
    adapted = copy.deepcopy(pretrained)
    LoRA(4).apply(adapted)
    with pytest.raises(ValueError, match="pretrained holds adapters: pass the checkpoint as loaded"):
        interpolate(adapted, pretrained, 0.5)
    with pytest.raises(ValueError, match="the two models do not have the same weights"):
        interpolate(pretrained, tiny_model("roberta"), 0.5)


def test_the_alpha_curve_scores_the_task_and_retention_and_starts_from_the_checkpoint(offline_data):
    pretrained, tokenizer = fl.load_model("minilm-l6", seed=0)
    finetuned = copy.deepcopy(pretrained)
    data = fl.load_task("sst2", train_size=64, dev_size=48, seed=0)
    fl.fine_tune(finetuned, tokenizer, data, lr=5e-4, epochs=1, seed=0)
    curve = alpha_curve(pretrained, finetuned, tokenizer, data, alphas=(0.0, 1.0), sts_dev_size=64)
    assert list(curve["alpha"]) == [0.0, 1.0] and set(curve["head"]) == {"keep"}
    untouched = fl.probes.sts_retention(pretrained, tokenizer, dev_size=64)
    assert curve.loc[0, "sts_spearman"] == pytest.approx(untouched, abs=1e-6)
    assert curve.loc[1, "sts_spearman"] == pytest.approx(fl.probes.sts_retention(finetuned, tokenizer, dev_size=64),
                                                         abs=1e-6)
    assert curve.loc[1, "dev_metric"] == pytest.approx(score(finetuned, tokenizer, data["dev"]))
    refit = alpha_curve(pretrained, finetuned, tokenizer, data, alphas=(1.0,), head="refit", sts_dev_size=64)
    assert 0 <= refit.loc[0, "dev_metric"] <= 1 and refit.loc[0, "head"] == "refit"
    with pytest.raises(ValueError, match="head must be 'keep' .the fine-tuned head. or 'refit'"):
        alpha_curve(pretrained, finetuned, tokenizer, data, head="new")


def test_the_slider_scores_each_alpha_once_and_draws_every_walk_on_the_plane(offline_data):
    from freezelab.widgets import InterpolationSlider

    pretrained, tokenizer = fl.load_model("minilm-l6", seed=0)
    finetuned = fine_tuned_copy(pretrained, scale=0.01)
    data = fl.load_task("sst2", train_size=16, dev_size=24, seed=0)
    slider = InterpolationSlider(pretrained, finetuned, tokenizer, data, sts_dev_size=32, live="output")
    assert list(slider.scores()["alpha"]) == [1.0]  # the fine-tuned run, scored as the widget opens
    slider.alpha.value = 0.5
    table = slider.scores()
    assert list(table["alpha"]) == [0.5, 1.0] and set(table["walk"]) == {"every row"}
    assert "α 0.50, every row: dev accuracy" in slider.summary.value and "against α 1" in slider.summary.value
    assert list(slider.figure.data[0].text) == ["0.50", "1.00"] and list(slider.figure.data[-1].x) == [table["dev_metric"][0]]
    slider.alpha.value = 1.0
    assert len(slider.scores()) == 2  # scored once: going back costs nothing
    lower = next(w for w in slider.walks if w.startswith("the lower half"))
    slider.rows.value = lower
    assert len(slider.scores()) == 3 and len(slider.figure.data[1].x) == 1
    assert slider.walks[lower] == ["embeddings", "block 0", "block 1", "block 2"]
    assert all(torch.equal(p, q) for p, q in zip(pretrained.parameters(), fl.load_model("minilm-l6", seed=0)[0].parameters()))
    with pytest.raises(ValueError, match="unknown walk 'top'; the walks: every row, the lower half"):
        slider.score(0.5, "top")


def test_the_alpha_curve_plot_draws_one_line_per_run_through_its_alphas_and_says_so():
    from freezelab import plots, run_plots

    runs = pd.DataFrame([{"label": label, "seed": seed, "interpolation": [
        {"alpha": a, "dev_metric": 0.8 - 0.1 * (1 - a) + 0.01 * seed, "sts_spearman": base + 0.3 * (1 - a)}
        for a in (1.0, 0.5, 0.0)]} for label, base in (("fast", 0.3), ("gentle", 0.5)) for seed in (0, 1)])
    curves = results.alpha_curves(runs)
    figure = run_plots.alpha_curve_plot(curves, untouched=0.86)
    assert [trace.name for trace in figure.data] == ["fast", "gentle"]
    assert list(figure.data[0].text) == ["α 0", "α 0.5", "α 1"]
    assert list(figure.data[1].y) == pytest.approx([0.8, 0.65, 0.5])
    words = plots.describe(figure)
    assert "task dev accuracy" in words and "STS-B retention" in words and "0.86" in words


def test_walk_gains_take_the_most_retention_within_the_accuracy_cost_and_judge_it_by_the_spread_rule():
    runs = pd.DataFrame([{"label": "fast", "seed": seed, "interpolation": [
        {"alpha": a, "dev_metric": 0.8 - 0.1 * (1 - a) + 0.01 * seed, "sts_spearman": 0.3 + 0.3 * (1 - a) + 0.01 * seed}
        for a in (1.0, 0.5, 0.0)]} for seed in (0, 1, 2)])
    runs.attrs["settings"] = {"task": "sst2", "dev_size": None}
    curves = results.alpha_curves(runs)
    strict = results.walk_gains(curves, cost=0.005).iloc[0]
    assert (strict["alpha"], strict["STS-B change"]) == (1.0, 0.0)
    loose = results.walk_gains(curves, cost=0.06).iloc[0]
    assert loose["alpha"] == 0.5 and loose["STS-B change"] == pytest.approx(0.15)
    assert loose["dev change"] == pytest.approx(-0.05) and loose["STS-B"].outcome == "higher"
    with pytest.raises(ValueError, match="no alpha 1"):
        results.walk_gains(curves[curves["alpha"] < 1])
