"""Specification of TrainConfig: every training setting in one checked, JSON-able object that fine_tune,
sweeps and result records share."""

import contextlib
import json

import pytest

import freezelab as fl
from freezelab import grids
from freezelab.config import FIELDS, TrainConfig


def test_defaults_are_the_course_defaults_and_round_trip_through_json():
    config = TrainConfig()
    assert (config.lr, config.epochs, config.batch_size, config.max_length, config.warmup) == (2e-5, 2, 32, 64, 0.06)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert tuple(config.to_dict()) == FIELDS


def test_replace_checks_like_a_new_config_and_names_unknown_settings():
    config = TrainConfig(lr=1e-4)
    assert config.replace(epochs=3) == TrainConfig(lr=1e-4, epochs=3) and config.epochs == 2  # frozen: a copy
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1, got 0"):
        config.replace(epochs=0)
    with pytest.raises(TypeError, match="unknown training setting 'learning_rate'; the settings are: lr, epochs"):
        config.replace(learning_rate=1e-3)
    with pytest.raises(TypeError, match="unknown training setting 'device'"):
        TrainConfig.from_dict({"lr": 1e-3, "device": "cpu"})


@pytest.mark.parametrize("settings, message", [
    ({"batch_size": True}, "batch_size must be a whole number >= 1, got True"),
    ({"train_size": 0}, r"train_size must be a whole number >= 1, or None \(the whole split\), got 0"),
    ({"group_by_length": 1}, "group_by_length must be True or False, got 1"),
    ({"max_grad_norm": float("inf")}, "max_grad_norm must be a number > 0, got inf"),
    ({"layer_decay": 0}, r"layer_decay must be in \(0, 1\], or None \(off\), got 0"),
])
def test_every_field_is_checked_when_the_config_is_made(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_fine_tune_takes_a_config_and_single_settings_override_it():
    model, tokenizer = fl.load_model("minilm-l6", seed=0)  # its own model: training the shared one would leak
    config = TrainConfig(lr=1e-3, epochs=1, train_size=32, dev_size=16, batch_size=16, max_length=32)
    result = fl.fine_tune(model, tokenizer, "sst2", config, plan=fl.FreezePlan.head_only(model), seed=3)
    assert result.config() == config.replace(seed=3, micro_batch_size=8)  # the record holds what ran: "auto" on a CPU
    assert result.settings["steps"] == 2 and result.settings["device"] == "cpu"
    assert result.settings["precision"] == "fp32"
    with pytest.raises(TypeError, match="unknown training setting 'learning_rate'"):
        fl.fine_tune(model, tokenizer, "sst2", config, learning_rate=1e-3)


@pytest.mark.parametrize("device, auto", [("cpu", 8), ("cuda", None), ("mps", None)])
def test_auto_micro_batches_are_8_sentences_on_a_cpu_and_the_whole_batch_on_a_gpu(device, auto):
    # measured: micro-batches are faster on a CPU (less padding) and slower on a GPU (many small kernel launches)
    assert TrainConfig().micro_batch_size == "auto"
    assert TrainConfig().on(device).micro_batch_size == auto
    assert TrainConfig(micro_batch_size=4).on(device).micro_batch_size == 4  # a number asked for is kept
    assert TrainConfig(micro_batch_size=None).on(device).micro_batch_size is None


def test_precision_is_fp32_unless_asked_and_a_device_that_cannot_run_it_is_named():
    assert TrainConfig().precision == "fp32" and TrainConfig(precision="bf16").on("cpu").precision == "bf16"
    with pytest.raises(ValueError, match="precision must be 'fp32', 'bf16' or 'fp16', got 'fp64'"):
        TrainConfig(precision="fp64")
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA GPU; on 'cpu' use 'fp32' or 'bf16'"):
        TrainConfig(precision="fp16").on("cpu")
    with pytest.raises(ValueError, match="micro_batch_size must be .* or 'auto'"):
        TrainConfig(micro_batch_size="8")


def test_mixed_precision_is_asked_for_and_recorded():
    # CI has no GPU: bf16 autocast on a CPU goes through the same Trainer path a GPU's does
    import math

    import torch

    model, tokenizer = fl.load_model("tiny-random-bert", seed=0)
    result = fl.fine_tune(model, tokenizer, "sst2", precision="bf16", lr=1e-3, epochs=1, train_size=32, dev_size=16,
                          batch_size=16, micro_batch_size=4, max_length=32, evals_per_epoch=0)
    assert result.settings["precision"] == "bf16" and result.config().precision == "bf16"
    assert all(math.isfinite(h["loss"]) for h in result.history if "loss" in h)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # autocast computes in bf16, weights stay fp32


def test_a_sweep_point_becomes_the_config_its_run_uses():
    settings = grids.SweepSettings(epochs=3, dev_size=100, warmup=0.1)
    point = grids.grid(["full"], [5e-4], [300], [2], warmup=0.0, layer_decay=0.8)[0]
    assert settings.config(point) == TrainConfig(lr=5e-4, epochs=3, train_size=300, dev_size=100, seed=2, warmup=0.0,
                                                 layer_decay=0.8, evals_per_epoch=0, frozen_eval_mode=True)
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1, got 0"):
        grids.SweepSettings(epochs=0)


def test_sweep_settings_hold_one_train_config_and_name_each_mistake():
    settings = grids.SweepSettings(task="subj", max_length=32, precision="bf16")
    assert settings.training == grids.SWEEP_TRAINING.replace(max_length=32, precision="bf16")
    assert (settings.max_length, settings.epochs) == (32, TrainConfig().epochs)  # defaults live in TrainConfig only
    assert grids.SweepSettings(training=TrainConfig(epochs=5)).epochs == 5
    with pytest.raises(TypeError, match="unknown training setting 'epoch'; the settings are: lr, epochs"):
        grids.SweepSettings(epoch=3)
    with pytest.raises(TypeError, match="lr is set per run .by each point, or by the run., not for a whole sweep"):
        grids.SweepSettings(lr=1e-3)
    with pytest.raises(AttributeError, match="no attribute 'epoch'"):
        settings.epoch


def test_lean_memory_is_a_setting_that_changes_no_stored_number():
    """Runs made lean and fast are interchangeable: memory is neither stored with a sweep nor compared."""
    lean, fast = grids.SweepSettings(memory="lean"), grids.SweepSettings()
    assert lean == fast and "memory" not in lean.to_dict()
    point = grids.grid(["full"], [1e-4], [100], [0])[0]
    assert lean.config(point).memory == "lean" and fast.config(point).memory == "fast"
    assert grids.SweepSettings.from_dict(lean.to_dict()) == lean
    # a sweep stored before settings held a TrainConfig (the shipped files): it reads as it was made
    old = {"task": "sst2", "checkpoint": "minilm-l6", "epochs": 2, "dev_size": None, "warmup": 0.06, "probes": True,
           "sts_dev_size": None, "evals_per_epoch": 0}
    assert grids.SweepSettings.from_dict(old) == grids.SweepSettings(micro_batch_size=None)


def test_micro_batches_take_the_same_steps_in_less_memory():
    """Batch 16 as 4 length-sorted passes of 4 sentences gives the weights one pass of 16 gives."""
    import torch

    trained = []
    for micro in (None, 4):
        model, tokenizer = fl.load_model("minilm-l6", seed=0)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0  # dropout draws differ between the two; the arithmetic must not
        result = fl.fine_tune(model, tokenizer, "sst2", plan=fl.FreezePlan.train_top(model, 1), lr=1e-3, epochs=1,
                              train_size=32, dev_size=16, batch_size=16, micro_batch_size=micro, max_length=32,
                              group_by_length=False, evals_per_epoch=0)
        assert result.settings["steps"] == 2
        trained.append(model.classifier.weight.detach().clone())
    torch.testing.assert_close(trained[0], trained[1], rtol=1e-4, atol=1e-6)



def test_micro_batches_gather_the_embedding_gradient_sparse_and_hand_the_optimizer_the_dense_sum():
    """Across a step's micro-batches the word embeddings' gradient is kept sparse (the rows used), then made
    dense: the gradient dense accumulation gives, to float rounding, and the table handed back as it came."""
    import torch

    from freezelab.batching import _sparse_embedding_grads

    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    model.eval()  # no dropout: the two passes must compute the same function
    table = model.base_model.embeddings.word_embeddings
    batches = [tokenizer(texts, padding=True, return_tensors="pt") for texts in
               (["a fine film", "dull"], ["the plot is thin but the actors are not", "fine, fine"])]
    grads = []
    for gather_sparse in (False, True):
        model.zero_grad(set_to_none=True)
        with _sparse_embedding_grads(model) if gather_sparse else contextlib.nullcontext():
            for batch in batches:
                model(**batch, labels=torch.tensor([0, 1])).loss.backward()
            if gather_sparse:
                assert table.weight.grad.is_sparse
        assert not table.sparse and table.weight.grad.layout == torch.strided
        grads.append(table.weight.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_a_micro_batched_full_fine_tune_trains_the_embedding_table_and_leaves_it_dense():
    import torch

    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    table = model.base_model.embeddings.word_embeddings
    before = table.weight.detach().clone()
    fl.fine_tune(model, tokenizer, "sst2", plan=fl.FreezePlan.full_finetune(model), lr=1e-3, epochs=1,
                 train_size=32, dev_size=16, batch_size=16, micro_batch_size=4, max_length=32, evals_per_epoch=0)
    assert not table.sparse and table.weight.grad is None
    assert not torch.equal(table.weight, before)


def test_length_buckets_hold_similar_lengths_in_random_order_and_every_sentence_once_per_epoch():
    import random

    from freezelab.batching import LengthBuckets

    lengths = [random.Random(i).randint(3, 60) for i in range(500)]
    sampler = LengthBuckets(lengths, batch_size=32, seed=0, pool=4)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(500))
        batches = [order[i:i + 32] for i in range(0, 500, 32)]
        assert len(batches[-1]) == 500 % 32  # the short batch is last, so the DataLoader cuts these batches
        spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
        assert sum(spans) / len(spans) < 20  # a pool of 4 batches cuts 3-60 in four; random batches span ~55
        firsts = [max(lengths[i] for i in b) for b in batches[:-1]]
        assert firsts != sorted(firsts, reverse=True)  # not longest to shortest
        epochs.append(order)
    assert epochs[0] != epochs[1]
