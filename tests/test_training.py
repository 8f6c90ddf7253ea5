"""Specification of fine_tune and schedules: checked arguments, a faithful result record, and
schedules that really train what they unfreeze (while the naive Trainer recipe does not)."""

import math
import subprocess
import sys

import pytest
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

import freezelab as fl
from freezelab import FreezePlan
from freezelab.data import load_task, tokenize
from freezelab.schedules import Phase, Schedule, ScheduleCallback
from freezelab.training import FineTuneResult, _optimizer, fine_tune

pytestmark = pytest.mark.usefixtures("offline_data")  # conftest: FREEZELAB_DATA_DIR or ../shared/data


QUICK = dict(train_size=64, dev_size=32, max_length=32, batch_size=16, epochs=1)


@pytest.fixture
def fresh():
    """A newly loaded MiniLM-L6 with a seeded 2-way head: each test trains its own."""
    return fl.load_model("minilm-l6", seed=0)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def change(model, before, row):
    """Largest absolute change of any weight in that row of the anatomy grid."""
    names = fl.anatomy(model).names_in(row=row)
    return max((model.get_parameter(n).detach() - before[n]).abs().max().item() for n in names)


# --- arguments are checked before any training -------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0}, "lr must be a finite number > 0, got 0"),
    ({"lr": -1e-5}, "lr must be a finite number > 0"),
    ({"lr": math.nan}, "lr must be a finite number > 0, got nan"),
    ({"lr": math.inf}, "lr must be a finite number > 0, got inf"),
    ({"epochs": 0}, "epochs must be a whole number >= 1, got 0"),
    ({"epochs": 1.5}, "epochs must be a whole number >= 1, got 1.5"),
    ({"train_size": 10**6}, r"train_size must be a whole number from 1 to 67349"),
    ({"warmup": 1.5}, "warmup must be a fraction of the training steps, from 0 to below 1, got 1.5"),
    ({"warmup": "0.1"}, "warmup must be a fraction"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"max_length": 4096}, "max_length must be a whole number from 2 to 512 \\(this model's positions\\), got 4096"),
    ({"max_length": 1}, r"max_length must be a whole number >= 2 \(\[CLS\] and \[SEP\] need two positions\), got 1"),
    ({"seed": -1}, "seed must be a whole number >= 0, got -1"),
    ({"dev_size": 0}, "dev_size must be a whole number >= 1, or None"),
    ({"frozen_eval_mode": "yes"}, "frozen_eval_mode must be True or False, got 'yes'"),
    ({"evals_per_epoch": -1}, "evals_per_epoch must be a whole number >= 0"),
    ({"weight_decay": 2.0}, "weight_decay must be a number from 0 to below 1, got 2.0"),
    ({"max_grad_norm": 0}, "max_grad_norm must be a number > 0, got 0"),
    ({"layer_decay": "0.8"}, "layer_decay must be in"),
])
def test_bad_arguments_fail_before_training(fresh, kwargs, message):
    model, tokenizer = fresh
    before = snapshot(model)
    with pytest.raises(ValueError, match=message):
        fine_tune(model, tokenizer, "sst2", **{**QUICK, **kwargs})
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_the_trainer_folder_it_made_is_removed_afterwards(fresh, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts Trainer's scratch folder
    model, tokenizer = fresh
    fine_tune(model, tokenizer, "sst2", **QUICK)
    assert list(tmp_path.iterdir()) == []


def test_a_plan_that_leaves_nothing_trainable_is_refused(fresh):
    model, tokenizer = fresh
    with pytest.raises(ValueError, match="leaves nothing trainable: training would not change the model"):
        fine_tune(model, tokenizer, "sst2", plan=FreezePlan(patterns=["."]), **QUICK)


def test_wrong_number_of_outputs_says_what_to_load(fresh):
    model, tokenizer = fresh
    with pytest.raises(ValueError, match=r"has 2 output\(s\) but stsb needs 1: .*num_labels=1"):
        fine_tune(model, tokenizer, "stsb", **QUICK)


def test_plan_and_schedule_together_is_an_error(fresh):
    model, tokenizer = fresh
    with pytest.raises(ValueError, match="a plan or a schedule, not both"):
        fine_tune(model, tokenizer, "sst2", plan=FreezePlan.head_only(model),
                  schedule=Schedule.gradual_unfreezing(model), **QUICK)


# --- what a run records ----------------------------------------------------------------

def test_result_record(fresh):
    model, tokenizer = fresh
    plan = FreezePlan.train_top(model, 2)
    result = fine_tune(model, tokenizer, "sst2", plan=plan, lr=5e-5, **QUICK)
    assert len(result.losses()) == result.settings["steps"] == 4
    assert len(result.evaluations()) == 2 and 0 <= result.dev_metric <= 1
    assert result.trainable_params == plan.trainable_count(model) == 3_697_538
    assert result.total_params == 22_713_986 and result.examples_per_s > 0 and result.peak_memory_mb > 0
    assert result.settings["device"] == "cpu" and result.plans == [plan.to_dict()]
    assert FineTuneResult.from_json(result.to_json()) == result
    assert "dev accuracy" in str(result)


def test_the_dev_score_is_every_sentence_scored_alone_in_the_split_order(fresh):
    # Evaluation reads the dev set shortest first (less padding); the score must not depend on that.
    model, tokenizer = fresh
    result = fine_tune(model, tokenizer, "sst2", plan=FreezePlan.train_top(model, 1), lr=1e-4, **QUICK)
    dev = load_task("sst2", train_size=QUICK["train_size"], dev_size=QUICK["dev_size"], seed=0)["dev"]
    with torch.no_grad():
        right = sum(int(model(**tokenizer(text, truncation=True, max_length=QUICK["max_length"],
                                          return_tensors="pt")).logits.argmax(-1)) == label
                    for text, label in zip(dev["text"], dev["label"]))
    assert result.dev_metric == right / len(dev)


def test_frozen_parameters_do_not_change_and_trainable_ones_do(fresh):
    model, tokenizer = fresh
    before = snapshot(model)
    fine_tune(model, tokenizer, "sst2", plan=FreezePlan.train_top(model, 1), lr=1e-4, **QUICK)
    assert change(model, before, "embeddings") == change(model, before, "block 4") == 0.0
    assert change(model, before, "block 5") > 0 and change(model, before, "head") > 0


def test_same_seed_same_run_on_cpu():
    runs = []
    for _ in range(2):
        model, tokenizer = fl.load_model("minilm-l6", seed=0)
        runs.append(fine_tune(model, tokenizer, "sst2", plan=FreezePlan.train_top(model, 1), seed=3, **QUICK))
    assert runs[0].losses()["loss"].tolist() == runs[1].losses()["loss"].tolist()
    assert runs[0].dev_metric == runs[1].dev_metric


def test_sentence_pairs_regression_reports_spearman():
    model, tokenizer = fl.load_model("minilm-l6", num_labels=1)
    result = fine_tune(model, tokenizer, "stsb", plan=FreezePlan.train_top(model, 1), lr=1e-4, **QUICK)
    assert result.metric_name == "spearman" and -1 <= result.dev_metric <= 1


def test_cola_reports_matthews_correlation_as_glue_scores_it(fresh):
    model, tokenizer = fresh
    result = fine_tune(model, tokenizer, "cola", plan=FreezePlan.train_top(model, 1), lr=1e-4, **QUICK)
    assert result.metric_name == "matthews" and -1 <= result.dev_metric <= 1


@pytest.mark.parametrize("predicted, labels, expected", [
    ([1, 1, 1, 1], [1, 0, 1, 0], 0.0),             # a constant answer: 0, however many it gets right
    ([1, 0, 1, 0], [1, 0, 1, 0], 1.0),
    ([0, 1, 0, 1], [1, 0, 1, 0], -1.0),
    ([1, 1, 0, 0, 1], [1, 0, 0, 0, 1], (2 * 2 - 1 * 0) / math.sqrt(3 * 2 * 3 * 2)),  # tp 2, tn 2, fp 1, fn 0
])
def test_matthews_correlation(predicted, labels, expected):
    assert fl.training.matthews(torch.tensor(predicted).numpy(), torch.tensor(labels).numpy()) == pytest.approx(expected)


class StopAt(TrainerCallback):
    """Ctrl-C at the start of the step after `step` (the kernel's stop button, in a test)."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_an_interrupt_keeps_the_history_and_a_usable_model(fresh, monkeypatch):
    model, tokenizer = fresh
    original = Trainer.__init__

    def with_stop(self, *args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), StopAt(3)]
        original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", with_stop)
    result = fine_tune(model, tokenizer, "sst2", plan=FreezePlan.head_only(model), **{**QUICK, "epochs": 2})
    assert result.interrupted and result.dev_metric is None
    assert result.losses()["step"].tolist() == [1, 2, 3]
    with torch.no_grad():
        assert model(**tokenizer(["still works"], return_tensors="pt")).logits.shape == (1, 2)


# --- schedules really train what they unfreeze ----------------------------------------

def test_gradual_unfreezing_trains_newly_unfrozen_blocks(fresh):
    model, tokenizer = fresh
    before = snapshot(model)
    schedule = Schedule.gradual_unfreezing(model, every_steps=2, blocks=1)
    result = fine_tune(model, tokenizer, "sst2", schedule=schedule, lr=1e-4, **QUICK)
    assert [c["step"] for c in result.phases] == [0, 2]
    print(f"\ngradual unfreezing, block 5 (unfrozen at step 2): max |dW| = {change(model, before, 'block 5'):.3e}; "
          f"block 4 (frozen): {change(model, before, 'block 4'):.1e}")
    assert change(model, before, "block 5") > 1e-6
    assert change(model, before, "block 4") == 0.0


def test_naive_unfreezing_with_trainer_leaves_the_unfrozen_weights_unchanged(fresh):
    """The recipe in the tutorials: freeze, build Trainer, train, unfreeze, train again.

    Trainer built its optimizer at the first train() from the parameters that
    required grad then, so the block unfrozen later never moves.
    """
    model, tokenizer = fresh
    data = load_task("sst2", train_size=64, seed=0)
    train = tokenize(data["train"], tokenizer, 32)
    FreezePlan.head_only(model).apply(model)
    args = TrainingArguments(output_dir="/tmp/freezelab-naive", per_device_train_batch_size=16, num_train_epochs=1,
                             learning_rate=1e-4, report_to="none", save_strategy="no", use_cpu=True,
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    before = snapshot(model)
    FreezePlan.train_top(model, 1).apply(model)  # unfreeze block 5, pooler and head
    trainer.train()
    block, head = change(model, before, "block 5"), change(model, before, "head")
    print(f"\nnaive Trainer unfreeze: block 5 max |dW| = {block:.1e} (never in the optimizer); head {head:.3e}")
    assert block == 0.0 and head > 0


def test_the_optimizer_holds_every_parameter_with_layer_wise_lr(fresh):
    model, _ = fresh
    FreezePlan.head_only(model).apply(model)
    optimizer = _optimizer(model, lr=1e-4, weight_decay=0.01, layer_decay=0.5)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in model.parameters()}
    rates = {group["lr"] for group in optimizer.param_groups}
    assert max(rates) == 1e-4 and pytest.approx(min(rates)) == 1e-4 * 0.5 ** 7  # embeddings: 6 blocks + 1


def test_adamw_keeps_12_bytes_per_trainable_parameter_skips_frozen_ones_and_decays_rows_the_batch_never_saw():
    """What notebook 03 and the guide say of AdamW: a gradient and two moments per trainable fp32 parameter
    (12 bytes), no state for a parameter without a gradient, and weight decay on embedding rows no sentence used."""
    torch.manual_seed(0)
    embedding, head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2)
    head.bias.requires_grad_(False)  # frozen, yet handed to the optimizer as fine_tune does
    lr, decay = 0.1, 0.01
    optimizer = torch.optim.AdamW([*embedding.parameters(), *head.parameters()], lr=lr, weight_decay=decay)
    before = embedding.weight.detach().clone()
    head(embedding(torch.tensor([1, 2]))).sum().backward()
    optimizer.step()

    for p in (embedding.weight, head.weight):
        state = optimizer.state[p]
        assert p.grad.nbytes + state["exp_avg"].nbytes + state["exp_avg_sq"].nbytes == 12 * p.numel()
    assert head.bias not in optimizer.state
    unseen = 5
    assert embedding.weight.grad[unseen].abs().sum() == 0
    assert torch.allclose(embedding.weight[unseen], before[unseen] * (1 - lr * decay))
    assert not torch.equal(embedding.weight[unseen], before[unseen])


def test_frozen_eval_mode_turns_dropout_off_in_frozen_blocks(fresh):
    model, tokenizer = fresh
    seen = {}
    for flag in (False, True):
        modes = []
        handle = model.bert.encoder.layer[0].register_forward_hook(lambda m, a, o: modes.append(m.training))
        fine_tune(model, tokenizer, "sst2", plan=FreezePlan.train_top(model, 1), frozen_eval_mode=flag,
                  **{**QUICK, "evals_per_epoch": 1, "dev_size": 16})
        handle.remove()
        seen[flag] = modes[0]  # the first forward is a training step
    assert seen == {False: True, True: False}


# --- schedules as data -------------------------------------------------------------------

def test_schedule_json_round_trip(fresh):
    model, _ = fresh
    schedule = Schedule((Phase(FreezePlan.head_only(model)),
                         Phase(FreezePlan.train_top(model, 2), lr_scale=0.5, start_epoch=1.0),
                         Phase(FreezePlan.full_finetune(model), lr_scale=0.1, on_plateau=True)))
    assert Schedule.from_json(schedule.to_json()) == schedule


def test_gradual_unfreezing_phases(fresh):
    model, _ = fresh
    schedule = Schedule.gradual_unfreezing(model, every_epochs=1)
    assert len(schedule.phases) == 7 and schedule.phases[0].plan == FreezePlan.train_top(model, 0)
    assert schedule.phases[6].plan == FreezePlan.train_top(model, 6) and schedule.phases[6].start_epoch == 6


def test_bad_schedules(fresh):
    model, _ = fresh
    with pytest.raises(ValueError, match="phase 1 must have exactly one of start_step, start_epoch, on_plateau"):
        Schedule((Phase(FreezePlan.head_only(model)), Phase(FreezePlan.full_finetune(model))))
    with pytest.raises(ValueError, match="in order of their start"):
        Schedule((Phase(FreezePlan.head_only(model)), Phase(FreezePlan.head_only(model), start_step=5),
                  Phase(FreezePlan.head_only(model), start_step=2)))
    with pytest.raises(ValueError, match="at least one phase"):
        Schedule(())


def test_a_plateau_starts_the_next_phase(fresh):
    model, _ = fresh
    schedule = Schedule((Phase(FreezePlan.head_only(model)), Phase(FreezePlan.train_top(model, 1), on_plateau=True)))
    callback = ScheduleCallback(schedule, model, steps_per_epoch=10)

    class State:
        global_step = 0

    callback.on_train_begin(None, State, None)
    for step, accuracy in [(5, 0.6), (10, 0.7), (15, 0.69)]:
        State.global_step = step
        callback.on_evaluate(None, State, None, metrics={"eval_accuracy": accuracy})
    assert [c["step"] for c in callback.changes] == [0, 15]
    assert FreezePlan.from_model(model) == FreezePlan.train_top(model, 1)


# --- gradient checkpointing ------------------------------------------------------------------

def test_gradient_checkpointing_gives_the_same_run_and_hands_the_model_back_as_it_came():
    """Recomputed activations with the dropout draws replayed: the same losses and dev score, checkpointing
    on while training only."""
    runs, checkpointed = [], {}
    for on in (False, True):
        model, tokenizer = fl.load_model("minilm-l6", seed=0)
        seen = checkpointed[on] = []
        handle = model.bert.encoder.layer[0].register_forward_hook(
            lambda module, args, output: seen.append(module.gradient_checkpointing and module.training))
        runs.append(fine_tune(model, tokenizer, "sst2", plan=FreezePlan.full_finetune(model), lr=1e-4,
                              gradient_checkpointing=on, **QUICK))
        handle.remove()
        assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        assert runs[-1].settings["gradient_checkpointing"] is on
    assert runs[0].losses()["loss"].tolist() == pytest.approx(runs[1].losses()["loss"].tolist(), abs=1e-6)
    assert runs[0].dev_metric == runs[1].dev_metric
    assert True not in checkpointed[False]
    assert checkpointed[True][0] is True and checkpointed[True][-1] is False  # trained with it, scored without


def test_lean_memory_checkpoints_every_fine_tune_that_trains_a_block_and_says_so_in_the_record(fresh):
    model, tokenizer = fresh
    run = fine_tune(model, tokenizer, "sst2", plan=FreezePlan.full_finetune(model), lr=1e-4, memory="lean", **QUICK)
    assert run.settings["gradient_checkpointing"] is True and run.config().gradient_checkpointing is True
    assert run.settings["memory"] == "lean"
    head = fine_tune(model, tokenizer, "sst2", plan=FreezePlan.head_only(model), lr=1e-3, memory="lean", **QUICK)
    assert head.settings["gradient_checkpointing"] is False  # no block trains: nothing to recompute
    fast = fine_tune(model, tokenizer, "sst2", plan=FreezePlan.full_finetune(model), lr=1e-4, **QUICK)
    assert fast.settings["gradient_checkpointing"] is False  # a setting of the run, not of the process
    model.supports_gradient_checkpointing = False  # lean memory skips what a model does not offer, unasked
    assert fine_tune(model, tokenizer, "sst2", lr=1e-4, memory="lean", **QUICK).settings["gradient_checkpointing"] is False


def test_memory_is_fast_or_lean():
    with pytest.raises(ValueError, match="memory must be 'fast' or 'lean' \\(less memory, more time\\), got True"):
        fl.TrainConfig(memory=True)


def test_lean_memory_has_glibc_return_large_freed_blocks_at_once():
    """A process that ran lean frees a 64 MiB tensor back to the system: the resident set drops."""
    script = """
import sys, torch
from freezelab import memory
if sys.argv[1] == "1":
    memory.return_large_blocks_at_once()  # what a lean fine-tune does first
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) // 1024
warm = torch.ones(2**20)
del warm  # freeing 4 MiB raises glibc's own moving threshold to 4 MiB
blocks = [torch.ones(2**18) for _ in range(256)]  # 256 x 1 MiB: from the heap, unless lean memory
pin = torch.ones(2**17)  # a later block still in use: the heap cannot shrink from its top
before = rss()
del blocks
print(before - rss())
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt")
    returned = {lean: int(subprocess.run([sys.executable, "-c", script, lean], capture_output=True, text=True,
                                         check=True).stdout.split()[-1]) for lean in ("0", "1")}
    assert returned["1"] >= 200 and returned["1"] > returned["0"] + 100, returned


def test_gradient_checkpointing_is_refused_by_name_for_a_model_without_it(fresh):
    model, tokenizer = fresh
    model.supports_gradient_checkpointing = False  # as a model class without it says
    with pytest.raises(ValueError, match="gradient_checkpointing=True: BertForSequenceClassification does not "
                                         "support it"):
        fine_tune(model, tokenizer, "sst2", gradient_checkpointing=True, **QUICK)
    with pytest.raises(ValueError, match="gradient_checkpointing must be True or False, got 'yes'"):
        fine_tune(model, tokenizer, "sst2", gradient_checkpointing="yes", **QUICK)
