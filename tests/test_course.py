"""Specification of the course's runtime choices: one course model everywhere, size from the runtime, overrides."""

import pytest

import freezelab as fl
from freezelab import course, results


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in (course.CHECKPOINT_VARIABLE, course.QUICK_VARIABLE, course.SIZE_VARIABLE, course.LEAN_VARIABLE,
                     "MEM_LIMIT"):
        monkeypatch.delenv(variable, raising=False)


def on(monkeypatch, device):
    monkeypatch.setattr(course, "_device", lambda: device)


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
def test_the_course_model_is_minilm_on_every_runtime(device, monkeypatch):
    on(monkeypatch, device)
    chosen = course.setup(show=False)
    assert chosen.checkpoint == "minilm-l6" and chosen.is_course_model and chosen.device == device


@pytest.mark.parametrize("device, size", [("cpu", "quick"), ("mps", "quick"), ("cuda", "full")])
def test_size_follows_the_runtime(device, size, monkeypatch):
    on(monkeypatch, device)
    assert course.setup(show=False).size.name == size


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("quick, size", [("1", "quick"), ("0", "full")])
def test_freezelab_quick_overrides_either_way(device, quick, size, monkeypatch):
    on(monkeypatch, device)
    monkeypatch.setenv("FREEZELAB_QUICK", quick)
    chosen = course.setup(show=False)
    assert chosen.size.name == size and chosen.quick == (size == "quick") and "FREEZELAB_QUICK" in chosen.why["size"]


def test_smoke_size_for_ci(monkeypatch):
    monkeypatch.setenv("FREEZELAB_SIZE", "smoke")
    monkeypatch.setenv("FREEZELAB_QUICK", "0")  # the explicit size wins
    assert course.setup(show=False).size == course.SIZES["smoke"]


@pytest.mark.parametrize("limit, memory", [(2 * 1024**3, "lean"), (5.9 * 1024**3, "lean"), (12.7 * 1024**3, "fast")])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_lean_memory_where_the_kernel_may_use_under_6_gb_as_on_binder(limit, memory, device, monkeypatch):
    on(monkeypatch, device)
    monkeypatch.setattr(course, "memory_limit", lambda: (int(limit), "the container's limit"))
    chosen = course.setup(show=False)
    assert chosen.memory == memory
    assert f"the container's limit: {limit / 1024**3:.1f} GB" in chosen.why["memory"]
    assert ("FREEZELAB_LEAN=0" if memory == "lean" else "FREEZELAB_LEAN=1") in chosen.why["memory"]


def test_lean_memory_where_the_memory_cannot_be_read(monkeypatch):
    monkeypatch.setattr(course, "memory_limit", lambda: (None, "how much memory this machine has could not be read"))
    chosen = course.setup(show=False)
    assert chosen.memory == "lean" and "could not be read" in chosen.why["memory"]


def test_the_memory_limit_is_binders_mem_limit_first_else_what_the_machine_has(monkeypatch):
    monkeypatch.setenv("MEM_LIMIT", str(2 * 1024**3))  # what BinderHub sets in the notebook server
    assert course.memory_limit() == (2 * 1024**3, "MEM_LIMIT, the notebook server's limit")
    monkeypatch.setenv("MEM_LIMIT", "0")  # no limit set: read on
    limit, source = course.memory_limit()
    assert limit > 0 and source in ("the container's limit", "the machine's memory")


@pytest.mark.parametrize("value, memory", [("0", "fast"), ("1", "lean")])
@pytest.mark.parametrize("size", ["0", "1"])
def test_freezelab_lean_overrides_either_way(value, memory, size, monkeypatch):
    on(monkeypatch, "cpu")
    monkeypatch.setenv("FREEZELAB_QUICK", size)
    monkeypatch.setenv("FREEZELAB_LEAN", value)
    chosen = course.setup(show=False)
    assert chosen.memory == memory and "FREEZELAB_LEAN" in chosen.why["memory"]


@pytest.mark.parametrize("variable, value, message", [
    ("FREEZELAB_LEAN", "on", "FREEZELAB_LEAN='on': use 1 \\(lean memory\\) or 0"),
    ("FREEZELAB_QUICK", "yes", "FREEZELAB_QUICK='yes': use 1 \\(quick\\) or 0 \\(full size\\)"),
    ("FREEZELAB_SIZE", "huge", "FREEZELAB_SIZE='huge' is not a run size; sizes: full, quick, smoke"),
    ("FREEZELAB_CHECKPOINT", "./no-such-folder", "FREEZELAB_CHECKPOINT='./no-such-folder': no such folder"),
])
def test_bad_settings_say_what_is_valid(variable, value, message, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        course.setup(show=False)


def test_first_cell_prints_checkpoint_device_size_and_how_to_change_them(monkeypatch, capsys):
    on(monkeypatch, "cpu")
    monkeypatch.setenv("MEM_LIMIT", str(2 * 1024**3))  # Binder's
    course.setup()
    out = capsys.readouterr().out
    for words in ("checkpoint: minilm-l6 (the course model", "device:     cpu (fp32, length-sorted micro-batches of 8)",
                  "run size:   quick: 500",
                  "memory:     lean (MEM_LIMIT, the notebook server's limit: 2.0 GB, under 6 GB, as on Binder", "%env FREEZELAB_QUICK=0", "%env FREEZELAB_CHECKPOINT=bert-base-uncased",
                  "Colab"):
        assert words in out


def test_on_a_gpu_the_first_cell_says_it_trains_in_whole_batches(monkeypatch, capsys):
    on(monkeypatch, "cuda")
    course.setup()
    assert "device:     cuda (fp32, whole batches)" in capsys.readouterr().out


@pytest.mark.parametrize("name, canonical", [("bert-base", "bert-base-uncased"), ("bert-base-uncased", "bert-base-uncased"),
                                             ("tiny-random-bert", "tiny-random-bert")])
def test_another_checkpoint_is_an_opt_in(name, canonical, monkeypatch):
    monkeypatch.setenv("FREEZELAB_CHECKPOINT", name)
    chosen = course.setup(show=False)
    assert course.canonical(chosen.checkpoint) == canonical and not chosen.is_course_model
    assert "calibrated on minilm-l6" in chosen.why["checkpoint"]


def test_learning_rates_are_multiples_of_a_stable_rate(monkeypatch):
    monkeypatch.setenv("FREEZELAB_CHECKPOINT", "bert-base-uncased")
    chosen = course.setup(show=False)
    assert chosen.lr(5) == 1e-4 and chosen.lr(2) == 4e-5 and chosen.lr(20) == 4e-4


def test_stable_rates_stay_where_the_literature_found_bert_stable():
    """bert-base's stable rate is in Devlin et al.'s 2e-5 to 5e-5; the grids' 'too fast but converging' point (5x)
    stays below the 4e-4 at which Sun et al. (2019) saw it fail, and the 'far too fast' one (20x) is that rate."""
    lr, _ = course.stable_lr("bert-base")
    assert 2e-5 <= lr <= 5e-5 and 5 * lr < 4e-4 <= 20 * lr
    assert course.stable_lr("some/unknown-bert") == course.DEFAULT_STABLE_LR and course.DEFAULT_STABLE_LR[0] == 2e-5


def test_minilms_stable_rate_is_stable_in_the_shipped_frontier():
    """The course's calibration, held to its data: at 1x every seed learns; 20x without warm-up collapses."""
    lr, _ = course.stable_lr("minilm-l6")
    runs = results.shipped("frontier")
    plain = runs[(runs["plan"] == "full") & runs["warmup"].isna() & runs["layer_decay"].isna()]
    assert (plain.loc[plain["lr"] == lr, "dev_metric"] > 0.78).all()
    assert (plain.loc[plain["lr"] == 5 * lr, "dev_metric"] > 0.78).all()
    fast = runs[(runs["plan"] == "full") & (runs["warmup"] == 0) & (runs["lr"] == 20 * lr)]
    assert len(fast) == 3 and (fast["dev_metric"] < 0.52).all()


def test_notebooks_read_shipped_results_only_for_their_own_model():
    assert results.shipped_for("minilm-l6", "frontier") is not None
    assert results.shipped_for("bert-base-uncased", "frontier") is None
    assert results.shipped_for("tiny-random-bert", "data-size") is None
