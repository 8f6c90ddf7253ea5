"""FreezePicker: pick which layers to freeze and watch the trainable-parameter heatmap follow.

For: notebooks. One toggle per row of the anatomy grid, a preset menu (the
common plans, BitFit and LayerNorm-only among them, and the tutorial recipes
as printed), a "freeze embeddings + bottom k" slider, a method switch to every
registered method family (`freezelab.methods`: LoRA with its rank and target
matrices, (IA)³, ...; the heatmap counts each adapter in the cell of the
matrix it adapts), the heatmap and a one-line summary, all kept in step.
Nothing touches the model's weights or `requires_grad` until `.apply()`.

Live path: a plotly `FigureWidget` updated with `batch_update()` where it
works (JupyterLab 4, Binder); else, chosen automatically (Colab's
ipywidgets 7, no anywidget), a plain figure redrawn inside an
`ipywidgets.Output`. Only API shared by ipywidgets 7 and 8 is used.

From the keyboard alone: Tab reaches every control in reading order (method, preset, slider, then the rows
from head to embeddings), a visible ring marks the focus, Space or Enter toggles a row, the arrow keys move
the slider. Each row's button says its state in words ("block 3: frozen ❄"); where anywidget renders,
`KeyboardLabels` also gives the buttons `aria-pressed` and the slider handle the slider's name, which
ipywidgets does not. Under the heatmap, its text alternative (`plots.text_alternative_html`) follows every click.

`InterpolationSlider` walks a fine-tuned run back towards its pre-trained weights (`freezelab.interpolation`)
and draws each α it scores on the adaptation-retention plane.

Not for: training or plotting outside a notebook (`freezelab.plots`).
"""

from __future__ import annotations

import html
from contextlib import nullcontext
from functools import lru_cache

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import display

from .frontend import figurewidget_works
from .anatomy import EMBEDDINGS, anatomy, format_counts
from .models import structure_copy
from .methods import Method, families, family_of
from .plans import FreezePlan
from .figure import text_alternative_html
from .plots import trainable_heatmap, update_trainable
from .recipes import RECIPES

CUSTOM = "(custom)"
LAYERS = "freeze layers"  # the method switch's first button; each method family adds its own
# A focus ring that shows on every theme: ipywidgets' own is 1px in a pale blue, or none (the slider handle).
FOCUS_STYLE = ("<style>.freezelab-picker :focus-visible {outline: 3px solid #0b5cad !important; "
               "outline-offset: 1px;}</style>")


def row_words(row: str, frozen: str, adapter: str = "") -> str:
    """A row button's text: the row, its state in words ('all', 'part' or 'none' of it frozen), and the method
    whose adapters it holds, if any."""
    state = {"all": "frozen ❄", "part": "part frozen", "none": "trains"}[frozen]
    return f"{row}: {state}" + (f" + {adapter}" if adapter else "")


class FreezePicker:
    """Widget: choose a `FreezePlan` (or another method: a `LoRA`, ...) for `model`; `.plan` reads or sets it,
    `.apply()` applies it. `.choices[title][field]` are a method family's controls (`choices["LoRA"]["rank"]`).

    live: "auto" (FigureWidget where it works, else redraw in an Output),
    "figurewidget" or "output".
    """

    def __init__(self, model, plan: Method | None = None, live: str = "auto"):
        self.model = model
        self.anatomy = anatomy(model)  # computed once; every click reuses it
        self.presets = {**FreezePlan.presets(self.anatomy), **recipe_presets(model, self.anatomy)}
        # Resolved once: a click compares sets, it does not re-resolve plans.
        self._preset_sets = {label: plan.frozen_names(self.anatomy) for label, plan in self.presets.items()}
        self._row_sets = {row: frozenset(self.anatomy.names_in(row=row)) for row in self.anatomy.rows}
        self._sizes = {p.name: p.numel for p in self.anatomy.params}
        self.families = {family.title: family for family in families()}
        self._method = plan if family_of(plan) else None  # a method beyond freezing layers, or None
        self._frozen = (plan if self._method is None and plan is not None else FreezePlan.from_model(model)
                        ).frozen_names(self.anatomy)
        self._syncing = False
        self.live = ("figurewidget" if figurewidget_works() else "output") if live == "auto" else live
        if self.live not in {"figurewidget", "output"}:
            raise ValueError(f"live must be 'auto', 'figurewidget' or 'output', got {live!r}")

        a = self.anatomy
        self.toggles = {row: W.ToggleButton(description=row, tooltip=f"freeze or unfreeze {row}",
                                            layout=W.Layout(width="190px")) for row in reversed(a.rows)}
        self.preset = W.Dropdown(options=[CUSTOM, *self.presets], description="preset",
                                 layout=W.Layout(width="460px"))
        self.slider = W.IntSlider(min=0, max=a.num_blocks, description="bottom k",
                                  continuous_update=False, layout=W.Layout(width="460px"))
        # ipywidgets 8 calls it `tooltip`; ipywidgets 7 (Colab) only knows `description_tooltip` on sliders.
        hint = "tooltip" if self.slider.has_trait("tooltip") else "description_tooltip"
        setattr(self.slider, hint, "freeze the embeddings and blocks 0 ... k-1")
        self.method = W.ToggleButtons(options=[LAYERS, *self.families], value=LAYERS, description="method")
        # Each family's controls, one dropdown per setting, starting at the family's defaults; only the chosen
        # family's show.
        self.choices = {title: {name: W.Dropdown(options=list(options), value=getattr(family.make(), name),
                                                 description=name, layout=W.Layout(width="200px"))
                                for name, options in family.choices.items()}
                        for title, family in self.families.items()}
        self.method_controls = W.HBox([])
        self.summary = W.HTML()
        self.description = W.HTML()  # the heatmap in words and as a table, redrawn with it
        self.figure = trainable_heatmap(a, FreezePlan.from_names(a, self._frozen), widget=self.live == "figurewidget")
        self.figure.update_layout(width=900)  # leave room for the toggles beside it
        self.output = W.Output() if self.live == "output" else None

        for row, toggle in self.toggles.items():
            toggle.observe(lambda change, row=row: self._on_toggle(row, change["new"]), names="value")
        self.preset.observe(lambda change: self._on_preset(change["new"]), names="value")
        self.slider.observe(lambda change: self._on_slider(change["new"]), names="value")
        for control in (self.method, *(c for controls in self.choices.values() for c in controls.values())):
            control.observe(lambda change: self._on_method(), names="value")
        self._refresh()

        controls = W.VBox([W.HTML("<b>rows</b> (❄ = frozen), head at the top" + FOCUS_STYLE), *self.toggles.values()],
                          layout=W.Layout(min_width="200px"))
        controls.add_class("freezelab-rows")
        view = self.figure if self.output is None else self.output
        # Reading order is tab order: method, preset and slider, then the rows beside the heatmap, then the words.
        self.widget = W.VBox([W.HBox([self.method, self.method_controls]), W.VBox([self.preset, self.slider]),
                              W.HBox([controls, view]), self.summary, self.description, *keyboard_labels()])
        self.widget.add_class("freezelab-picker")

    # --- state --------------------------------------------------------------------
    @property
    def plan(self) -> Method:
        """The plan the controls show: the chosen family's method, else a `FreezePlan` in canonical form (nothing
        is applied)."""
        if self._method is not None:
            return self._method
        label = self.preset.value
        return FreezePlan.from_names(self.anatomy, self._frozen, name="" if label == CUSTOM else label)

    @plan.setter
    def plan(self, plan: Method) -> None:
        frozen = plan.frozen_names(self.anatomy)  # validates: a bad plan raises, state unchanged
        if family_of(plan):
            self._method = plan
        else:
            self._method, self._frozen = None, frozen
        self._refresh()

    def apply(self):
        """Apply the current plan to the model (sets requires_grad) and return the model."""
        return self.plan.apply(self.model)

    # --- events -------------------------------------------------------------------
    def _on_toggle(self, row: str, frozen: bool) -> None:
        if self._syncing:
            return
        names = self._row_sets[row]
        self._frozen = self._frozen | names if frozen else self._frozen - names
        self._refresh()

    def _on_preset(self, label: str) -> None:
        if not self._syncing and label != CUSTOM:
            self._frozen = self._preset_sets[label]
            self._refresh()

    def _on_method(self) -> None:
        if self._syncing:
            return
        family = self.families.get(self.method.value)
        method = None if family is None else family.make(**{name: control.value for name, control
                                                            in self.choices[family.title].items()})
        try:
            if method is not None:
                method.frozen_names(self.anatomy)  # checks it fits this model
        except ValueError as error:  # e.g. no FFN matrices in this model: say so, keep the state
            self._refresh()
            self.summary.value += f"<br><span style='color:#D55E00'>{html.escape(str(error))}</span>"
            return
        self._method = method
        self._refresh()

    def _on_slider(self, k: int) -> None:
        if not self._syncing:
            self._frozen = FreezePlan.freeze_bottom(self.anatomy, k).frozen_names(self.anatomy)
            self._refresh()

    # --- drawing ------------------------------------------------------------------
    def _bottom_k(self) -> int:
        """How many blocks, counted from the bottom, are frozen together with the embeddings."""
        rows = [EMBEDDINGS] + [f"block {i}" for i in range(self.anatomy.num_blocks)]
        k = 0
        for row in rows:
            if not self._row_sets[row] <= self._frozen:
                break
            k += 1
        return max(k - 1, 0)

    def _refresh(self) -> None:
        """Move every control to the current state and redraw: one batched figure update."""
        if self._method is not None:
            return self._refresh_method()
        self._syncing = True
        try:
            self.method.value = LAYERS
            self.method_controls.children = ()
            for control in (*self.toggles.values(), self.preset, self.slider):
                control.disabled = False
            for row, toggle in self.toggles.items():
                names = self._row_sets[row]
                whole, some = names <= self._frozen, bool(names & self._frozen)
                toggle.value = whole
                toggle.description = row_words(row, "all" if whole else ("part" if some else "none"))
                # button_style, not style.button_color: ipywidgets 7 and 8 both have it for toggles.
                toggle.button_style = "info" if whole else ("" if some else "warning")
            match = [label for label, frozen in self._preset_sets.items() if frozen == self._frozen]
            self.preset.value = match[0] if match else CUSTOM
            self.slider.value = self._bottom_k()
        finally:
            self._syncing = False
        update_trainable(self.figure, self.anatomy, frozenset(self._frozen))
        trainable = self.anatomy.total - sum(self._sizes[name] for name in self._frozen)
        self.summary.value = f"<code>{html.escape(format_counts(trainable, self.anatomy.total))}</code>"
        self.description.value = text_alternative_html(self.figure)
        _redraw(self.output, self.figure)

    def _refresh_method(self) -> None:
        """A method family's mode: its controls show, the row controls rest and say what it does to each row."""
        method, a = self._method, self.anatomy
        family = family_of(method)
        controls = self.choices[family.title]
        self._syncing = True
        try:
            self.method.value = family.title
            for name, control in controls.items():
                value = getattr(method, name)
                if value not in control.options:  # a setting made in code that the menu does not offer
                    control.options = [*control.options, value]
                control.value = value
            self.method_controls.children = tuple(controls.values())
            for control in (*self.toggles.values(), self.preset, self.slider):
                control.disabled = True
            frozen, added = method.frozen_names(a), method.added(a)
            adapted = {a.rows[i] for i in range(len(a.rows)) if added is not None and added[i].any()}
            for row, toggle in self.toggles.items():  # what the method does to each row, while the row controls rest
                names = self._row_sets[row]
                whole, some = names <= frozen, bool(names & frozen)
                toggle.value = whole
                toggle.description = row_words(row, "all" if whole else ("part" if some else "none"),
                                               family.title if row in adapted else "")
                toggle.button_style = "info" if whole and row not in adapted else ("warning" if not some else "")
        finally:
            self._syncing = False
        update_trainable(self.figure, a, frozen, added)
        extra = 0 if added is None else int(added.sum())
        trainable = a.total - sum(self._sizes[name] for name in frozen) + extra
        text = format_counts(trainable, a.total + extra)  # cells counted once per click
        self.summary.value = f"<code>{html.escape(text)}</code> · {html.escape(method.name)}"
        self.description.value = text_alternative_html(self.figure)
        _redraw(self.output, self.figure)

    def _ipython_display_(self):
        display(self.widget)


def _redraw(output, figure) -> None:
    """The fallback path: show the updated plain figure again inside its Output (no-op for a FigureWidget)."""
    if output is not None:
        with output:
            output.clear_output(wait=True)
            go.Figure._ipython_display_(figure)  # the drawing alone: its words are in the widget beside it


def recipe_presets(model, a) -> dict[str, FreezePlan]:
    """The printed recipes that run without crashing, as plans read back from a scratch copy of the model."""
    scratch = structure_copy(model)
    presets = {}
    for recipe in RECIPES.values():
        for p in scratch.parameters():
            p.requires_grad_(True)
        try:
            plan = recipe.run_as_printed(scratch)
        except Exception:  # the recipes that crash as printed are shown in notebook 02, not offered here
            continue
        presets[f"as printed: {recipe.key}"] = FreezePlan.from_names(a, plan.frozen_names(a), name=recipe.key)
    return presets


class ScheduleReplay:
    """A slider over a Schedule's phases; the heatmap shows what each phase trains. Touches no model."""

    def __init__(self, model, schedule, live: str = "auto"):
        self.anatomy, self.schedule = anatomy(model), schedule
        schedule.validate(self.anatomy)
        self._frozen = [phase.plan.frozen_names(self.anatomy) for phase in schedule.phases]
        self.live = ("figurewidget" if figurewidget_works() else "output") if live == "auto" else live
        self.figure = trainable_heatmap(self.anatomy, schedule.phases[0].plan, widget=self.live == "figurewidget")
        self.output = W.Output() if self.live == "output" else None
        self.slider = W.IntSlider(min=0, max=len(schedule.phases) - 1, description="phase",
                                  layout=W.Layout(width="460px"))
        self.label = W.HTML()
        self.description = W.HTML()  # the phase's heatmap in words and as a table
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = W.VBox([W.HBox([self.slider, self.label]), self.figure if self.output is None else self.output,
                              self.description, *keyboard_labels()])
        self.widget.add_class("freezelab-picker")
        self.show(0)

    def show(self, index: int) -> None:
        phase = self.schedule.phases[index]
        when = ("from the start" if index == 0 else f"from step {phase.start_step}" if phase.start_step is not None
                else f"from epoch {phase.start_epoch:g}" if phase.start_epoch is not None
                else "when the dev metric stops improving")
        self.label.value = f"<code>{phase.plan.name or 'phase ' + str(index)} · {when} · lr x {phase.lr_scale:g}</code>"
        update_trainable(self.figure, self.anatomy, self._frozen[index])
        self.description.value = text_alternative_html(self.figure)
        _redraw(self.output, self.figure)

    def _ipython_display_(self):
        display(self.widget)



class InterpolationSlider:
    """Widget: walk a fine-tuned run back towards the pre-trained weights (WiSE-FT) and watch both scores move.

    A slider for α (1: the fine-tuned model, 0: the pre-trained body under the fine-tuned head) and a menu of
    which rows walk (every row, the lower half, the upper half). Each α is scored once, when the slider is
    let go (dev accuracy and STS-B retention: evaluation only, a few seconds on a CPU), and joins the curve
    drawn on the adaptation-retention plane. `.scores()` is the table of everything scored. Neither model is
    changed. head: "keep" (the fine-tuned head) or "refit" (`interpolation.alpha_curve`).
    """

    def __init__(self, pretrained, finetuned, tokenizer, data, *, sts_dev_size: int | None = None,
                 head: str = "keep", live: str = "auto"):
        from .interpolation import alpha_curve

        self._curve = lambda alpha, rows: alpha_curve(pretrained, finetuned, tokenizer, data, alphas=(alpha,),
                                                      rows=rows, head=head, sts_dev_size=sts_dev_size).iloc[0]
        a = anatomy(pretrained)
        blocks = [f"block {i}" for i in range(a.num_blocks)]
        half = a.num_blocks // 2
        upper = blocks[half:] + [r for r in a.rows if r not in blocks and r not in (EMBEDDINGS, "head")]
        self.walks = {"every row": None, f"the lower half (embeddings, blocks 0-{half - 1})": [EMBEDDINGS, *blocks[:half]],
                      f"the upper half (blocks {half}-{a.num_blocks - 1} and above)": upper}
        self.live = ("figurewidget" if figurewidget_works() else "output") if live == "auto" else live
        if self.live not in {"figurewidget", "output"}:
            raise ValueError(f"live must be 'auto', 'figurewidget' or 'output', got {live!r}")
        self._scores: dict[tuple[float, str], tuple[float, float]] = {}
        self.alpha = W.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="α", readout_format=".2f",
                                   continuous_update=False, layout=W.Layout(width="460px"))
        self.rows = W.Dropdown(options=list(self.walks), description="walk", layout=W.Layout(width="460px"))
        self.summary = W.HTML()
        figure = go.FigureWidget() if self.live == "figurewidget" else go.Figure()
        for walk, colour in zip(self.walks, ("#0072B2", "#E69F00", "#009E73")):
            figure.add_trace(go.Scatter(x=[], y=[], mode="lines+markers+text", name=walk, textposition="top center",
                                        line={"color": colour}, textfont={"size": 9},
                                        hovertemplate="α %{text}<br>dev accuracy %{x:.3f}<br>STS-B %{y:.3f}"
                                                      "<extra></extra>"))
        figure.add_trace(go.Scatter(x=[], y=[], mode="markers", name="now", showlegend=False,
                                    marker={"size": 16, "symbol": "circle-open", "color": "black", "line": {"width": 2}}))
        figure.update_layout(title="Weight interpolation: from the fine-tuned model (α 1) back to the pre-trained (α 0)",
                             xaxis={"title": "task dev accuracy (fraction correct)"},
                             yaxis={"title": "retention: STS-B Spearman (1 = perfect)"}, height=460, width=900,
                             plot_bgcolor="white", legend={"title": {"text": "rows walked"}})
        self.figure = figure
        self.output = W.Output() if self.live == "output" else None
        self.alpha.observe(lambda change: self.show(), names="value")
        self.rows.observe(lambda change: self.show(), names="value")
        self.widget = W.VBox([self.alpha, self.rows, self.figure if self.output is None else self.output,
                              self.summary, *keyboard_labels()])
        self.widget.add_class("freezelab-picker")
        self.show()

    def score(self, alpha: float, walk: str = "every row") -> tuple[float, float]:
        """(dev accuracy, STS-B Spearman) at `alpha` with `walk`'s rows walked; each pair is computed once."""
        if walk not in self.walks:
            raise ValueError(f"unknown walk {walk!r}; the walks: {', '.join(self.walks)}")
        key = (round(float(alpha), 4), walk)
        if key not in self._scores:
            line = self._curve(key[0], self.walks[walk])
            self._scores[key] = (float(line["dev_metric"]), float(line["sts_spearman"]))
        return self._scores[key]

    def scores(self):
        """Every α scored so far: one line per (walk, α), in the order of the menu and of α."""
        import pandas as pd

        lines = [{"walk": walk, "alpha": alpha, "dev_metric": dev, "sts_spearman": sts}
                 for (alpha, walk), (dev, sts) in self._scores.items()]
        order = {walk: i for i, walk in enumerate(self.walks)}
        return pd.DataFrame(lines, columns=["walk", "alpha", "dev_metric", "sts_spearman"]).sort_values(
            ["walk", "alpha"], key=lambda column: column.map(order) if column.name == "walk" else column,
            ignore_index=True)

    def show(self) -> None:
        """Score the slider's α for the chosen walk (once), then redraw the curves and say where it stands."""
        alpha, walk = round(self.alpha.value, 4), self.rows.value
        self.summary.value = f"<code>scoring α {alpha:.2f} ...</code>"
        dev, sts = self.score(alpha, walk)
        table = self.scores()
        with self.figure.batch_update() if self.live == "figurewidget" else nullcontext():
            for trace, name in zip(self.figure.data, self.walks):
                part = table[table["walk"] == name]
                trace.x, trace.y = list(part["dev_metric"]), list(part["sts_spearman"])
                trace.text = [f"{a:.2f}" for a in part["alpha"]]
            self.figure.data[-1].x, self.figure.data[-1].y = [dev], [sts]
        end = self.score(1.0, walk) if (1.0, walk) in self._scores else None
        change = "" if end is None or alpha == 1.0 else (
            f"; against α 1: accuracy {dev - end[0]:+.3f}, STS-B {sts - end[1]:+.3f}")
        self.summary.value = html.escape(f"α {alpha:.2f}, {walk}: dev accuracy {dev:.3f}, STS-B Spearman {sts:.3f}"
                                         + change)
        _redraw(self.output, self.figure)

    def _ipython_display_(self):
        display(self.widget)


# Names and states that ipywidgets leaves out, set in the browser: a row button's `aria-pressed` (ipywidgets
# draws the pressed state as a colour only) and the slider handle's name (its label is not tied to it).
_KEYBOARD_LABELS_ESM = """
function label(root) {
  for (const button of root.querySelectorAll("button.widget-toggle-button")) {
    button.setAttribute("aria-pressed", button.classList.contains("mod-active") ? "true" : "false");
    button.setAttribute("aria-label", button.textContent.trim());
  }
  for (const slider of root.querySelectorAll(".widget-slider")) {
    const name = slider.querySelector(".widget-label");
    const value = slider.querySelector(".widget-readout");
    const handle = slider.querySelector("[role=slider]");
    if (handle && name) handle.setAttribute("aria-label", name.textContent.trim() + (slider.title ? ": " + slider.title : ""));
    if (value && name) value.setAttribute("aria-label", name.textContent.trim() + " value");
  }
}
function render({ el }) {
  let observer = null, tries = 0;
  const attach = () => {  // a view is drawn before it is put in the page: wait until it is
    const root = el.closest(".freezelab-picker");
    if (!root) { if (tries++ < 200) setTimeout(attach, 100); return; }
    let queued = false;
    label(root);
    observer = new MutationObserver(() => {
      if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; label(root); }); }
    });
    // Class and text changes of the controls only: aria-* writes do not trigger it again.
    observer.observe(root, {subtree: true, childList: true, characterData: true, attributes: true,
                            attributeFilter: ["class", "title", "disabled"]});
  };
  attach();
  return () => observer && observer.disconnect();
}
export default { render };
"""


def keyboard_labels() -> list:
    """`[KeyboardLabels()]` where anywidget renders (JupyterLab, Binder, VS Code), else `[]`: the buttons' words
    still name each row there."""
    return [_keyboard_labels_class()(layout=W.Layout(display="none"))] if figurewidget_works() else []


@lru_cache(maxsize=1)
def _keyboard_labels_class():
    import anywidget

    class KeyboardLabels(anywidget.AnyWidget):
        """An empty view that names the picker's controls for screen readers and keeps their states current."""

        _esm = _KEYBOARD_LABELS_ESM

    return KeyboardLabels
