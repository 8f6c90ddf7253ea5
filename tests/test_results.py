"""Specification of result tables and plots: exact statistics over seeds, and the shipped sweeps as the course reads them."""

import math
from pathlib import Path

import pandas as pd
import pytest

from freezelab import results, run_plots
from freezelab.grids import SweepSettings


def run(label, seed, accuracy, sts, plan="full", lr=1e-4, frozen=0, size=2000, schedule=False):
    return {"label": label, "plan": plan, "lr": lr, "seed": seed, "train_size": size, "dev_metric": accuracy,
            "frozen_blocks": frozen, "num_blocks": 6, "schedule": schedule, "pooling": "cls",
            "retention": {"sts_spearman": sts, "cka": {"embeddings": 1.0, "block 5": sts - 0.1}, "weight_drift": {}}}


RUNS = pd.DataFrame([run("full, lr 1e-4", 0, 0.80, 0.70), run("full, lr 1e-4", 1, 0.82, 0.60),
                     run("full, lr 1e-4", 2, 0.84, 0.65), run("top 2", 0, 0.78, 0.85, plan="top2", frozen=4)])


def test_summary_is_mean_and_sample_std_over_seeds_in_sweep_order():
    table = results.summary(RUNS)
    assert list(table["label"]) == ["full, lr 1e-4", "top 2"]
    full = table.iloc[0]
    assert full["dev_metric mean"] == pytest.approx(0.82) and full["dev_metric std"] == pytest.approx(0.02)
    assert full["sts_spearman mean"] == pytest.approx(0.65) and full["cka_top mean"] == pytest.approx(0.55)
    assert full["seeds"] == 3 and full["depth"] == "0 of 6 blocks frozen"
    assert math.isnan(table.iloc[1]["dev_metric std"]) and table.iloc[1]["depth"] == "4 of 6 blocks frozen"


def test_frontier_plot_draws_one_point_per_set_up_with_its_error_bars():
    figure = run_plots.frontier_plot(RUNS, untouched=0.867, chance=0.509)
    assert [t.name for t in figure.data] == ["full, lr 1e-4", "top 2"]
    assert figure.data[0].x[0] == pytest.approx(0.82) and figure.data[0].error_x.array[0] == pytest.approx(0.02)
    texts = " ".join(a.text for a in figure.layout.annotations)
    for corner in ("under-adaptation", "forgetting", "unstable training", "untouched model, STS-B Spearman ρ: 0.867",
                   "majority class: 0.509"):
        assert corner in texts
    assert "dev accuracy" in figure.layout.xaxis.title.text and "STS-B" in figure.layout.yaxis.title.text


def test_data_size_heatmap_marks_the_best_depth_of_each_size():
    frame = pd.DataFrame([run("a", 0, 0.70, 0.8, frozen=6, size=100), run("b", 0, 0.60, 0.8, frozen=0, size=100),
                          run("c", 0, 0.75, 0.8, frozen=6, size=1000), run("d", 0, 0.85, 0.8, frozen=0, size=1000)])
    figure = run_plots.data_size_heatmap(frame)
    heat = figure.data[0]
    assert list(heat.y) == ["6 of 6 blocks frozen", "0 of 6 blocks frozen"] and list(heat.x) == ["100", "1,000"]
    assert heat.text[0][0].startswith("<b>0.700") and heat.text[1][1].startswith("<b>0.850")
    assert not heat.text[1][0].startswith("<b>") and not heat.text[0][1].startswith("<b>")


def test_shipped_sweeps_load_and_cover_their_grids():
    frontier = results.shipped("frontier")
    assert len(frontier) == 51 and frontier.groupby("label")["seed"].nunique().eq(3).all()
    assert (frontier["train_size"] == 2000).all()
    for name in sorted(f.stem for f in (Path(results.__file__).parent / "precomputed").glob("*.json")):
        assert (results.shipped(name)["precision"] == "fp32").all(), f"{name}: every shipped run trained in fp32"
    assert {"sts_spearman", "cka_top"} <= set(results.flatten(frontier).columns)
    sizes = results.shipped("data-size")
    assert len(sizes) == 48 and sorted(sizes["train_size"].unique()) == [100, 300, 1000, 3000]
    with pytest.raises(ValueError, match="no shipped results named 'nope'; shipped: cola-depth, data-size, frontier"):
        results.shipped("nope")


def pair(label, accuracies, kept, plan="full"):
    return [run(label, seed, a, k, plan=plan) for seed, (a, k) in enumerate(zip(accuracies, kept))]


def test_a_set_up_is_read_against_the_reference_curve_where_there_is_one():
    reference = results.summary(pd.DataFrame(
        pair("full 2e-5", (0.74, 0.76), (0.84, 0.86)) + pair("full 1e-4", (0.79, 0.81), (0.64, 0.66))
        + pair("full 5e-4", (0.77, 0.79), (0.39, 0.41))))  # beaten on both axes by 1e-4: not on the curve
    candidates = results.summary(pd.DataFrame(
        pair("on", (0.77, 0.78), (0.74, 0.76), "lora16-attn") + pair("above", (0.77, 0.78), (0.84, 0.86), "bitfit")
        + pair("outside", (0.69, 0.71), (0.86, 0.86), "lnorm")))
    read = results.against_curve(candidates, reference).set_index("label")
    assert read.loc["on", "on curve"] == pytest.approx(0.75) and read.loc["on", "gap"] == pytest.approx(0.0)
    assert read.loc["on", "verdict"] == "on the curve (within the seed spread)"
    assert read.loc["above", "verdict"] == "above the curve, beyond the seed spread"
    assert read.loc["above", "spread"] == pytest.approx(0.01414, abs=1e-4)
    assert read.loc["outside", "verdict"] == "outside the curve's accuracy range"


def test_the_sequential_plot_shows_what_the_second_task_cost_the_first():
    frame = pd.DataFrame([{**run("full fine-tune, lr 0.0001", s, acc, 0.5), "sequential": seq}
                          for s, acc, seq in ((0, 0.90, {"first_before": 0.80, "first_after": 0.60, "cost": 0.20}),
                                              (1, 0.92, {"first_before": 0.82, "first_after": 0.72, "cost": 0.10}))]
                         + [{**run("head only, lr 0.01", 0, 0.78, 0.9, plan="head", frozen=6),
                             "sequential": {"first_before": 0.80, "first_after": 0.80, "cost": 0.0}}])
    frame.attrs["settings"] = {"task": "subj", "first_task": "sst2"}
    figure = run_plots.sequential_plot(frame)
    bars, accuracy = figure.data
    assert list(bars.y) == pytest.approx([15.0, 0.0]) and bars.error_y.array[0] == pytest.approx(7.071, abs=1e-3)
    assert list(accuracy.y) == pytest.approx([0.91, 0.78])
    assert "What learning SUBJ costs SST-2 (SST-2 dev accuracy before: 0.810" in figure.layout.title.text
    assert "percentage points" in figure.layout.yaxis.title.text


def test_loading_something_else_is_a_clear_error(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"runs": []}')
    with pytest.raises(ValueError, match="not an exported freezelab sweep"):
        results.load(path)


def test_what_notebook_04_says_of_the_shipped_frontier():
    """The prose of notebooks 04-05 reads the shipped results; if they are remade, these must still hold."""
    table = results.summary(results.shipped("frontier")).set_index("label")
    acc, sts = table["dev_metric mean"], table["sts_spearman mean"]
    full = ["full fine-tune, lr 2e-05", "full fine-tune, lr 0.0001", "full fine-tune, lr 0.0005"]
    assert list(sts[full]) == sorted(sts[full], reverse=True)  # faster learning, more forgetting
    for label in ["full fine-tune, lr 0.001, no warm-up", "full fine-tune, lr 0.002, no warm-up"]:
        assert acc[label] < 0.52 and sts[label] < 0.3  # collapsed to the majority class, embeddings gone
    assert acc["head only, lr 0.001"] < 0.52 < 0.75 < acc["head only (mean-pooled), lr 0.01"]
    assert sts["train top 2 + head, lr 0.0005"] < sts["full fine-tune, lr 2e-05"] - 0.2  # freezing is no safety belt
    gradual, full_1e4 = "gradual unfreezing, lr 0.0001", "full fine-tune, lr 0.0001"
    assert abs(acc[gradual] - acc[full_1e4]) < 0.01 and sts[gradual] > sts[full_1e4] + 0.15


def test_pick_chooses_a_set_up_by_what_it_is_not_by_its_label():
    frontier = results.shipped("frontier")
    assert results.pick(frontier, "full", warmup=None, layer_decay=None) == "full fine-tune, lr 0.001"
    assert results.pick(frontier, "full", lr="min", warmup=None, layer_decay=None) == "full fine-tune, lr 2e-05"
    assert results.pick(frontier, "full", warmup=0.0) == "full fine-tune, lr 0.002, no warm-up"
    assert results.pick(frontier, "full", lr=5e-4, warmup=None, layer_decay=None) == "full fine-tune, lr 0.0005"
    assert results.pick(frontier, "top2", lr=5e-5) == "train top 2 + head, lr 5e-05"
    assert results.pick(RUNS, "full", warmup=None) == "full, lr 1e-4"  # a frame without that column
    with pytest.raises(ValueError, match="no run of plan 'top4'"):
        results.pick(frontier, "top4")


def test_mean_std_leaves_out_the_spread_of_a_single_seed():
    table = results.summary(RUNS).to_dict(orient="records")
    assert results.mean_std(table[0], "dev_metric") == "0.820 ± 0.020"
    assert results.mean_std(table[1], "dev_metric") == "0.780"


def test_frontier_plot_names_the_probe_on_its_axis_and_baseline():
    frame = RUNS.assign(retention=[{**r, "mlm_accuracy": 0.4} for r in RUNS["retention"]])
    figure = run_plots.frontier_plot(frame, retention="mlm_accuracy", untouched=0.5)
    assert "masked-LM accuracy" in figure.layout.yaxis.title.text
    assert "untouched model, masked-LM accuracy: 0.500" in " ".join(a.text for a in figure.layout.annotations)


def test_compare_measures_a_gap_against_the_larger_seed_spread():
    table = pd.DataFrame({"label": ["a", "b", "c"], "dev_metric mean": [0.90, 0.70, 0.88],
                          "dev_metric std": [0.02, 0.05, float("nan")], "seeds": [3, 3, 1]})
    table.attrs["settings"] = {"task": "sst2", "dev_size": 200}  # one dev answer: 0.005
    assert results.compare(table, "a", "b") == ("a minus b: task dev accuracy +0.200, beyond the seed spread "
                                                "(the larger standard deviation is 0.050, one dev answer 0.0050)")
    assert results.gap(table, "b", "a").outcome == "lower"
    assert results.compare(table, "a", "c").endswith("a single seed, so no spread to judge it by")
    assert results.gap(table, "a", "c").outcome == "one seed"


@pytest.mark.parametrize("gap, outcome", [(0.054, "about equal"), (0.055, "higher"), (0.03, "about equal")])
def test_the_spread_rule_needs_one_dev_answer_beyond_the_larger_std(gap, outcome):
    """0.050 std + one answer of 0.005: a gap of 0.054 turns on less than one dev sentence, so about equal."""
    table = pd.DataFrame({"label": ["a", "b"], "dev_metric mean": [0.70 + gap, 0.70], "dev_metric std": [0.05, 0.01],
                          "seeds": [3, 3]})
    table.attrs["settings"] = {"task": "sst2", "dev_size": 200}
    assert results.gap(table, "a", "b").outcome == outcome


def test_two_seeds_say_so_and_unknown_dev_sets_fall_back_to_the_printed_digit():
    table = pd.DataFrame({"label": ["a", "b"], "dev_metric mean": [0.9, 0.7], "dev_metric std": [0.01, 0.01],
                          "seeds": [2, 3]})
    assert results.compare(table, "a", "b").endswith("one dev answer 0.0010; 2 seeds only)")
    assert results.one_answer(results.summary(results.shipped("frontier"))) == 1 / 872  # all of SST-2's dev set
    assert results.one_answer(results.summary(results.shipped("sequential")), "cost") == 1 / 872  # SST-2, the first
    assert results.one_answer(results.summary(results.shipped("sequential"))) == 1 / 2000  # SUBJ's dev set


def methods_tables():
    table = results.summary(pd.concat([results.shipped("frontier"), results.shipped("methods")], ignore_index=True))
    full = table[(table["plan"] == "full") & table["warmup"].isna() & table["layer_decay"].isna()]
    return table, full


def test_the_shipped_methods_cover_their_grid_with_three_seeds():
    methods = results.shipped("methods")
    assert len(methods) == 48 and methods.groupby("label")["seed"].nunique().eq(3).all()
    same = [SweepSettings.from_dict(results.shipped(name).attrs["settings"]) for name in ("methods", "frontier")]
    assert same[0] == same[1]  # the frontier's settings exactly: the two files draw on one map
