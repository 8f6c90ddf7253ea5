"""Live view of a fine-tune: loss and dev-metric curves that grow while training, a progress bar with ETA.

For: `fine_tune(..., callbacks=[Dashboard()])`. In a notebook: a plotly figure
(FigureWidget where it works, else redrawn in an `ipywidgets.Output`, the
same choice as the FreezePicker) and an `ipywidgets.IntProgress`, with the status line and, under the
curves, what they show in words (`figure.describe`), redrawn with them. Elsewhere:
plain log lines. It is a `TrainerCallback`, so it only reads the Trainer's state: the run's title from
`args.run_name`, the metric it draws from `args.metric_for_best_model` (both set by `fine_tune`), and works
with a plain `Trainer` too.

Not for: storing the history (the result record in `freezelab.training` does).
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from .frontend import figurewidget_works, in_notebook
from .style import LOSS_COLOUR, METRIC_COLOUR


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Dashboard(TrainerCallback):
    """Loss per step and dev metric per evaluation, live.

    mode: "auto" (a live figure in a notebook, log lines elsewhere), "widget" or "log".
    title, metric_name: default to the Trainer's `args.run_name` and `args.metric_for_best_model` (else accuracy).
    """

    MODES = ("auto", "widget", "log")

    def __init__(self, mode: str = "auto", *, title: str | None = None, metric_name: str | None = None,
                 log_every: int = 10):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, self.MODES))}, got {mode!r}")
        self.title, self.metric_name = title, metric_name
        self.mode = ("widget" if in_notebook() else "log") if mode == "auto" else mode
        self.log_every = log_every
        self.steps, self.losses, self.eval_steps, self.metrics = [], [], [], []
        self.started = None
        self.finished = False

    # --- drawing ---------------------------------------------------------------------
    def _build(self, total_steps: int):
        import ipywidgets as W
        import plotly.graph_objects as go
        from IPython.display import display
        from plotly.subplots import make_subplots


        self.live = figurewidget_works()
        figure = make_subplots(rows=1, cols=2, subplot_titles=("training loss", f"dev {self.metric_name}"))
        figure.add_scatter(x=[], y=[], mode="lines", name="loss", line={"color": LOSS_COLOUR}, row=1, col=1)
        figure.add_scatter(x=[], y=[], mode="lines+markers", name=self.metric_name, line={"color": METRIC_COLOUR},
                           row=1, col=2)
        figure.update_xaxes(title_text="training step", range=[0, total_steps])
        figure.update_yaxes(title_text="cross-entropy loss (nats)" if self.metric_name == "accuracy"
                            else "mean squared error", row=1, col=1)
        figure.update_yaxes(title_text=f"{self.metric_name} (0 to 1)", row=1, col=2)
        figure.update_layout(title=self.title, height=330, width=900, showlegend=False,
                             margin={"t": 70, "b": 50, "l": 70, "r": 20})
        self.figure = go.FigureWidget(figure) if self.live else figure
        self.progress = W.IntProgress(min=0, max=total_steps, description="step 0", layout=W.Layout(width="600px"))
        self.status = W.HTML()
        self.description = W.HTML()  # the curves in words, for a reader who cannot see them
        self.output = None if self.live else W.Output()
        display(W.VBox([W.HBox([self.progress, self.status]), self.figure if self.live else self.output,
                        self.description]))
        self._redraw()

    def _redraw(self):
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = self.steps, self.losses
            self.figure.data[1].x, self.figure.data[1].y = self.eval_steps, self.metrics
        from html import escape

        from .figure import describe

        self.description.value = f"<p><b>In words:</b> {escape(describe(self.figure))}</p>"
        if self.output is not None:
            from IPython.display import display

            with self.output:
                self.output.clear_output(wait=True)
                display(self.figure)

    # --- Trainer events ----------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.title = self.title or args.run_name or "fine-tuning"
        self.metric_name = (self.metric_name or (args.metric_for_best_model or "accuracy").removeprefix("eval_"))
        self.started = time.perf_counter()
        if self.mode == "widget":
            self._build(state.max_steps)

    def _line(self, state) -> str:
        elapsed = time.perf_counter() - self.started
        done = max(state.global_step, 1)
        loss = f"loss {self.losses[-1]:.4f}" if self.losses else "loss -"
        metric = f" · dev {self.metric_name} {self.metrics[-1]:.4f}" if self.metrics else ""
        return (f"step {state.global_step}/{state.max_steps} · {loss}{metric} · "
                f"ETA {_eta(elapsed / done * (state.max_steps - state.global_step))}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.steps.append(state.global_step)
            self.losses.append(float(logs["loss"]))
            self._show(state, force=False)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = next((v for k, v in (metrics or {}).items() if k.endswith(self.metric_name)), None)
        if value is not None and not self.finished:  # the final score after training is the result's
            self.eval_steps.append(state.global_step)
            self.metrics.append(float(value))
            self._show(state, force=True)

    def _show(self, state, force: bool):
        if self.mode == "widget":
            self.progress.value = state.global_step
            self.progress.description = f"step {state.global_step}"
            self.status.value = f"<code>{self._line(state)}</code>"
            if force or self.live or state.global_step % self.log_every == 0:
                self._redraw()
        elif force or state.global_step % self.log_every == 0:
            print(self._line(state), flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.finished = True
        if self.mode == "widget":
            self._redraw()
        else:
            print(f"done: {self._line(state)}", flush=True)
