"""Specification of the live dashboard: in widget mode it follows a real fine-tune step by step, on a live
FigureWidget where ipywidgets 8 and anywidget allow it and in an Output that is redrawn otherwise (Colab's
ipywidgets 7: `.ci/lower-bounds` runs this file there); outside a notebook it prints log lines."""

import pytest

import freezelab as fl
from freezelab import FreezePlan, training
from freezelab.dashboard import Dashboard
from freezelab.frontend import figurewidget_works

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data

SMALL = dict(train_size=64, dev_size=32, max_length=32, batch_size=16, epochs=2, evals_per_epoch=1, lr=1e-3)


@pytest.fixture
def boards(monkeypatch):
    """Every Dashboard that fine_tune makes, kept for the test to read (fine_tune returns only its result)."""
    made = []

    class Kept(Dashboard):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(training, "Dashboard", Kept)
    return made


def test_the_widget_dashboard_follows_every_step_of_a_real_run(boards, capsys):
    model, tokenizer = fl.load_model("tiny-random-bert", seed=0)
    result = fl.fine_tune(model, tokenizer, "sst2", plan=FreezePlan.head_only(model), dashboard="widget", **SMALL)
    board = boards[0]
    assert board.live == figurewidget_works()  # FigureWidget with ipywidgets 8, else the Output fallback
    assert (board.output is None) == board.live
    assert board.progress.value == board.progress.max == result.settings["steps"] == 8
    assert list(board.figure.data[0].y) == [h["loss"] for h in result.history if "loss" in h]
    assert list(board.figure.data[1].x) == [4, 8] and len(board.figure.data[1].y) == 2  # one evaluation per epoch
    assert "step 8/8" in board.status.value and "ETA 0m00s" in board.status.value
    last = [h["loss"] for h in result.history if "loss" in h][-1]
    assert "loss: from " in board.description.value and f"{last:.3g} at 8" in board.description.value


def test_outside_a_notebook_the_dashboard_logs_lines(boards, capsys):
    model, tokenizer = fl.load_model("tiny-random-bert", seed=0)
    fl.fine_tune(model, tokenizer, "sst2", plan=FreezePlan.head_only(model), dashboard="auto", **SMALL)
    out = capsys.readouterr().out
    assert boards[0].mode == "log" and "done: step 8/8" in out and "dev accuracy" in out
