"""Specification of the heatmap and the FreezePicker, in the kernel (the browser test is test_browser.py)."""

import ipywidgets as W
import numpy as np
import pytest

import freezelab as fl
from freezelab import FreezePlan, run_plots
from freezelab.plots import percent, trainable_heatmap
from freezelab.widgets import FreezePicker
from conftest import tiny_model


def cell(figure, a, row, column):
    return figure.data[0].z[a.rows.index(row)][a.columns.index(column)]


def test_heatmap_colours_cells_by_trainable_fraction(bert_base):
    a = fl.anatomy(bert_base)
    figure = trainable_heatmap(a, FreezePlan.freeze_bottom(a, 4))
    assert cell(figure, a, "block 3", "query") == 0 and cell(figure, a, "block 4", "query") == 1
    assert figure.layout.title.text == "57,295,106 of 109,483,778 parameters trainable (52.33%)"


def test_heatmap_rows_run_from_embeddings_at_the_bottom_to_the_head(bert_base):
    figure = trainable_heatmap(bert_base)
    assert figure.data[0].y[0] == "embeddings" and figure.data[0].y[-1] == "head"


def test_cells_that_do_not_exist_are_blank_not_zero(bert_base):
    a = fl.anatomy(bert_base)
    figure = trainable_heatmap(a, FreezePlan.head_only(a))
    assert cell(figure, a, "embeddings", "query") is None  # JSON-safe blank (a widget cannot send NaN)
    assert cell(figure, a, "embeddings", "word emb") == 0


def test_partial_cells_show_their_fraction_and_hover_gives_exact_counts_and_names(bert_base):
    a = fl.anatomy(bert_base)
    figure = trainable_heatmap(a, FreezePlan(patterns=[r"layer\.2\.attention\.self\.query\.bias"]))
    assert cell(figure, a, "block 2", "query") == pytest.approx(589_824 / 590_592)
    hover = figure.data[0].customdata[a.rows.index("block 2")][a.columns.index("query")]
    assert "589,824 of 590,592 parameters trainable" in hover
    assert "bert.encoder.layer.2.attention.self.query.weight" in hover


def test_row_totals_stand_beside_the_rows(bert_base):
    figure = trainable_heatmap(FreezePlan.head_only(bert_base).apply(bert_base))
    notes = dict(zip(figure.layout.yaxis2.tickvals, figure.layout.yaxis2.ticktext))
    assert notes["embeddings"] == "23.8M · 0% trainable" and notes["head"] == "1.5K · 100% trainable"
    assert figure.layout.title.text.endswith("(0.001%)")


def test_heatmap_works_on_every_architecture(any_tiny):
    figure = trainable_heatmap(any_tiny)
    assert np.nansum(np.array(figure.data[0].z, dtype=float)) > 0


def test_percent_never_rounds_a_partial_share_to_0_or_100():
    assert percent(770, 22_713_986) == "0.003%" and percent(7_087_104, 7_087_872, 0) == "99.99%"
    assert percent(0, 5) == "0.00%" and percent(5, 5, 0) == "100%"


@pytest.fixture(params=["figurewidget", "output"])
def picker(request, bert_base):
    return FreezePicker(bert_base, live=request.param)


def test_picker_starts_from_the_model_state(picker):
    assert picker.plan == FreezePlan.full_finetune(picker.model)
    assert picker.preset.value == "full fine-tune"
    assert not any(t.value for t in picker.toggles.values())


def test_a_toggle_updates_heatmap_summary_and_plan(picker):
    before_z, before_summary = np.array(picker.figure.data[0].z, dtype=float), picker.summary.value
    picker.toggles["block 0"].value = True
    assert picker.plan.frozen == ("block 0",)
    assert not np.array_equal(before_z, np.array(picker.figure.data[0].z, dtype=float), equal_nan=True)
    assert picker.summary.value != before_summary and "102,395,906" in picker.summary.value
    assert picker.preset.value == "(custom)"


def test_the_slider_freezes_embeddings_and_bottom_k(picker):
    picker.slider.value = 6
    assert picker.plan == FreezePlan.freeze_bottom(picker.model, 6)
    assert picker.preset.value == "freeze embeddings + bottom 6"
    assert picker.toggles["block 5"].value and not picker.toggles["block 6"].value


def test_presets_include_the_printed_recipes_that_run(picker):
    assert "as printed: freeze-first-8" in picker.presets
    assert "as printed: unfreeze-last-2" not in picker.presets  # crashes as printed
    picker.preset.value = "as printed: freeze-first-8"
    assert picker.toggles["block 7"].value and not picker.toggles["embeddings"].value
    assert picker.slider.value == 0  # embeddings train, so no "bottom k" is frozen


def test_setting_the_plan_from_code_moves_the_controls(picker):
    picker.plan = FreezePlan.head_only(picker.model)
    assert picker.preset.value == "head only" and picker.slider.value == 12
    assert all(t.value for row, t in picker.toggles.items() if row != "head")


def test_setting_a_bad_plan_raises_and_keeps_the_state(picker):
    with pytest.raises(ValueError, match="out of range"):
        picker.plan = FreezePlan(["block 12"])
    assert picker.plan == FreezePlan.full_finetune(picker.model)


def test_the_picker_touches_no_weights_until_apply(picker):
    picker.slider.value = 10
    assert all(p.requires_grad for p in picker.model.parameters())
    picker.apply()
    assert fl.FreezePlan.from_model(picker.model) == FreezePlan.freeze_bottom(picker.model, 10)


def test_each_row_button_says_its_row_and_its_state_in_words(picker):
    """The words, not only the colour: a screen reader reads the button's text as its name."""
    picker.plan = FreezePlan(["block 2/query", "block 3"])
    assert picker.toggles["block 2"].description == "block 2: part frozen" and not picker.toggles["block 2"].value
    assert picker.toggles["block 3"].description == "block 3: frozen ❄" and picker.toggles["block 3"].value
    assert picker.toggles["block 4"].description == "block 4: trains" and not picker.toggles["block 4"].value


def test_switching_to_lora_redraws_adapters_in_the_cells_they_adapt_and_rests_the_row_controls(picker):
    from freezelab.lora import LoRA

    picker.method.value = "LoRA"
    assert picker.plan == LoRA(8, targets="attention")
    assert all(t.disabled for t in picker.toggles.values()) and picker.preset.disabled
    a = picker.anatomy
    adapter = 8 * (768 + 768)  # rank x (in + out) beside a 768 x 768 query matrix
    assert cell(picker.figure, a, "block 4", "query") == pytest.approx(adapter / (768 * 768 + 768 + adapter))
    assert cell(picker.figure, a, "block 4", "FFN in") == 0
    lora = picker.choices["LoRA"]
    lora["targets"].value, lora["rank"].value = "all-linear", 64
    assert picker.plan == LoRA(64, targets="all-linear") and cell(picker.figure, a, "block 4", "FFN in") > 0
    assert f"{LoRA(64, targets='all-linear').trainable_count(a):,}" in picker.summary.value
    assert all(p.requires_grad for p in picker.model.parameters())  # nothing applied yet
    picker.method.value = "freeze layers"
    assert picker.plan == FreezePlan.full_finetune(picker.model) and not picker.preset.disabled


def test_a_lora_plan_set_from_code_moves_the_method_controls(picker):
    from freezelab.lora import LoRA

    picker.plan = LoRA(32, targets="ffn")
    lora = picker.choices["LoRA"]
    assert (picker.method.value, lora["rank"].value, lora["targets"].value) == ("LoRA", 32, "ffn")
    assert picker.method_controls.children == (lora["rank"], lora["targets"])  # only the chosen family's show
    picker.plan = FreezePlan.bitfit(picker.model)
    assert picker.method.value == "freeze layers" and picker.preset.value == "BitFit (biases + head)"
    assert all(t.description.endswith("part frozen") for row, t in picker.toggles.items() if row != "head")


def test_the_figurewidget_path_uses_a_live_figure(bert_base):
    import plotly.graph_objects as go

    assert isinstance(FreezePicker(bert_base, live="figurewidget").figure, go.FigureWidget)
    output = FreezePicker(bert_base, live="output")
    assert isinstance(output.output, W.Output) and not isinstance(output.figure, go.FigureWidget)


def test_unknown_live_mode_is_an_error(bert_base):
    with pytest.raises(ValueError, match="live must be 'auto', 'figurewidget' or 'output'"):
        FreezePicker(bert_base, live="magic")


def test_picker_on_a_model_without_pooler():
    picker = FreezePicker(tiny_model("roberta"), live="output")
    assert "pooler" not in picker.toggles and "pooler + head (feature extractor)" not in picker.presets


@pytest.mark.parametrize("live", ["figurewidget", "output"])
def test_schedule_replay_shows_each_phase(bert_base, live):
    from freezelab import Schedule, ScheduleReplay

    replay = ScheduleReplay(bert_base, Schedule.gradual_unfreezing(bert_base, blocks=2), live=live)
    titles = []
    for phase in range(3):
        replay.slider.value = phase
        titles.append(replay.figure.layout.title.text)
    assert titles[0].startswith("592,130 of") and len(set(titles)) == 3  # phase 0: pooler + head
    assert "train top 2 + head" in replay.label.value and "from epoch 2" in replay.label.value
    assert all(p.requires_grad for p in bert_base.parameters())


# --- text alternatives: each figure says what it shows, from its own data ---------------------------------

def test_the_heatmap_in_words_gives_title_axes_extremes_and_the_row_notes(bert_base):
    from freezelab.plots import describe

    a = fl.anatomy(bert_base)
    words = describe(trainable_heatmap(a, FreezePlan.train_top(a, 2)))
    assert words.startswith("Figure: 14,767,874 of 109,483,778 parameters trainable (13.49%).")
    assert "trainable fraction (colour)" in words and "15 rows, layer (data flows upward) (embeddings to head)" in words
    assert "runs from 0 (embeddings, word emb, and 83 more cells) to 1 (block 10, query, and 17 more cells)" in words
    assert "block 9: 7.1M · 0% trainable; block 10: 7.1M · 100% trainable" in words
    # Another plan, other words: nothing in them is fixed text.
    assert "runs from 0 (embeddings, word emb, and 27 more cells)" in describe(trainable_heatmap(  # 4 + 3 x 8 cells
        a, FreezePlan.freeze_bottom(a, 3)))


def test_every_architecture_s_heatmap_is_described_row_by_row(any_tiny):
    from freezelab.plots import data_table, describe

    a = fl.anatomy(any_tiny)
    figure = trainable_heatmap(any_tiny)
    words, table = describe(figure), data_table(figure)
    assert f"{a.total:,} of {a.total:,} parameters trainable" in words
    assert list(table.index) == list(a.rows) and list(table.columns) == [*a.columns, "beside the row"]
    assert all(f"{row}: " in words.split("Beside the rows: ")[1] for row in a.rows)


def test_the_data_table_holds_the_values_the_cells_are_coloured_by(bert_base):
    from freezelab.plots import data_table

    a = fl.anatomy(bert_base)
    table = data_table(trainable_heatmap(a, FreezePlan(patterns=[r"layer\.2\.attention\.self\.query\.bias"])))
    assert table.loc["block 2", "query"] == "0.999 (590.6K)" and table.loc["block 1", "query"] == "1 (590.6K)"
    assert table.loc["embeddings", "query"] == ""  # a cell that does not exist stays empty


@pytest.fixture(scope="module")
def shipped():
    from freezelab import results

    return {name: results.shipped(name) for name in ("frontier", "data-size", "sequential")}


def test_the_frontier_in_words_names_the_set_ups_at_its_extremes(shipped):
    from freezelab import plots, results

    frame = shipped["frontier"]
    table = results.summary(frame, metrics=("dev_metric", "sts_spearman"))
    best, kept = table.loc[table["dev_metric mean"].idxmax()], table.loc[table["sts_spearman mean"].idxmax()]
    words = plots.describe(run_plots.frontier_plot(frame, untouched=0.8, chance=0.5))
    assert f"{len(table)} points, one per set-up: task dev accuracy (fraction correct) on x" in words
    assert f"Highest task dev accuracy: {best['label']} (task dev accuracy {best['dev_metric mean']:.3g}" in words
    assert f"Highest retention: STS-B Spearman ρ: {kept['label']}" in words
    assert "untouched model, STS-B Spearman ρ: 0.800; majority class: 0.500" in words


def test_the_data_size_figures_in_words_give_the_best_cell_and_each_line(shipped):
    from freezelab import plots, results

    frame = shipped["data-size"]
    table = results.summary(frame, by=("depth", "train_size"), metrics=("dev_metric",))
    top = table.loc[table["dev_metric mean"].idxmax()]
    words = plots.describe(run_plots.data_size_heatmap(frame))
    assert f"to {top['dev_metric mean']:.3g} ({top['depth']}, {top['train_size']:,})" in words
    lines = plots.describe(run_plots.data_size_lines(frame))
    assert f"{table['depth'].nunique()} lines of dev accuracy (fraction correct) against training sentences" in lines
    assert all(f"{depth}: from " in lines for depth in table["depth"].unique())


def test_the_sequential_plot_in_words_gives_the_largest_cost(shipped):
    from freezelab import plots, results

    frame = shipped["sequential"]
    table = results.summary(frame, metrics=("cost",))
    words = plots.describe(run_plots.sequential_plot(frame))
    assert f"({100 * table['cost mean'].max():.3g})" in words and "SST-2 dev accuracy lost (percentage points)" in words


def test_a_figure_shows_its_text_alternative_right_under_it(monkeypatch):
    """What a notebook or the site shows: the drawing, then the words and the table, as the next output."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from freezelab import plots

    InteractiveShell.instance()
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")  # JupyterLab's; other tests may change it
    monkeypatch.setattr(pio.renderers, "render_on_display", True)
    figure = plots.Figure(go.Bar(x=["a", "b"], y=[3, 5]), layout={"title": "two bars", "yaxis_title": "height (m)"})
    with capture_output() as shown:
        figure._ipython_display_()
    assert "application/vnd.plotly.v1+json" in shown.outputs[-2].data
    words = shown.outputs[-1].data["text/html"]
    assert "Figure: two bars. 2 bars of height (m), one per x. Largest: b (5); smallest: a (3)." in words
    assert "<caption>The numbers of: two bars</caption>" in words


def test_the_picker_describes_its_heatmap_after_every_click(picker):
    picker.toggles["block 0"].value = True
    assert "102,395,906 of 109,483,778 parameters trainable" in picker.description.value
    assert "block 0: 7.1M · 0% trainable" in picker.description.value
    picker.method.value = "LoRA"
    assert "in adapters" in picker.description.value
    assert "freezelab-picker" in picker.widget._dom_classes


def test_a_faceted_express_figure_names_each_panel_s_values_by_the_panel_s_title():
    """Notebook 03's chart: plotly express bars in two panels whose y axes have no title, only one above each."""
    import pandas as pd
    import plotly.express as px
    from freezelab import plots

    long = pd.DataFrame({"plan": ["top 2", "full"] * 2, "variable": ["dev accuracy"] * 2 + ["examples / s"] * 2,
                         "value": [0.7, 0.8, 200, 100]})
    figure = px.bar(long, x="plan", y="value", facet_col="variable", color="plan", title="speed and accuracy")
    figure.update_yaxes(matches=None, title_text="")
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    words = plots.describe(plots.Figure(figure))
    assert "Highest dev accuracy: full (plan full, dev accuracy 0.8)" in words
    assert "Highest examples / s: top 2 (plan top 2, examples / s 200)" in words


def test_the_layer_probe_figure_carries_its_words_and_its_table():
    """Every run figure is a `plots.Figure`, so it shows its text alternative under it (notebook 04's probes)."""
    from freezelab import plots, results

    probes = results.shipped_probes("word-order")
    figure = run_plots.layer_probe_plot(probes, results.shipped("word-order"))
    assert isinstance(figure, plots.Figure)
    words, table = plots.describe(figure), plots.data_table(figure)
    assert words.startswith("Figure: Where the frozen encoder holds the task") and "dev accuracy (fraction correct)" in words
    assert len(table) == probes["vector"].nunique()
