"""Training settings: one validated, JSON-able object that `fine_tune`, sweeps and result records share.

For: saying how a fine-tune runs (learning rate, epochs, data sizes, batch,
sequence length, warm-up, regularisation, evaluation count, speed options)
in one place, checked when it is made, so a bad value fails before any
training, inside a notebook cell or in a sweep grid, with the same message.
`TrainConfig(lr=1e-4).replace(epochs=3)`, `config.to_dict()`,
`TrainConfig.from_dict(record)`. minGPT's config pattern, as a frozen dataclass.

Not for: what to freeze (`freezelab.plans`, `freezelab.schedules`), which
model or task to load (`freezelab.models`, `freezelab.data`), or how a run
reports (`fine_tune`'s callbacks).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


def _whole(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """How one fine-tune runs. Every field is checked when the config is made.

    lr: peak learning rate of AdamW.
    epochs: passes over the training data.
    train_size / dev_size: sentences drawn (seeded) from the task's splits; None: the whole split.
    seed: seeds the data draw, the head's initialisation (through `load_model`), dropout and batch order.
    batch_size: sentences per step.
    micro_batch_size: sentences per forward pass. Each batch is sorted by length and cut into micro-batches
        whose gradients are summed, weighted by their share: the same step on the same sentences, in less
        memory and (less padding) less time on a CPU; only the dropout draws differ. None: the whole batch at
        once (how the course's shipped runs were made). "auto" (the default): 8 on a CPU, the whole batch on a
        GPU. On a CPU, a full fine-tune of MiniLM-L6 on 500 SST-2 sentences, with its probes, peaks about 350 MB
        lower with 8 than with whole batches of 32 (`benchmarks/memory.py` with and without `--whole-batches`;
        speed: `benchmarks/frozen_prefix_cache.py --only full`). On an H200, micro-batches of 8 made each step
        a string of small kernel launches: 2.8x (MiniLM-L6) and 3.3x (bert-base) slower than whole batches in
        fp32 (`benchmarks/gpu_steps.py`), where memory is no concern at these sizes.
    precision: "fp32", or mixed precision through Trainer's autocast: "bf16" (a CPU, or a GPU that has it) or
        "fp16" (a CUDA GPU). fp32 by default on every device: on an H200, bf16 trained 2.0x (bert-base) and
        4.8x (MiniLM-L6) slower than fp32 on SST-2's short sentences, where the host's kernel launches (bf16 adds
        casts), not the GPU's arithmetic, set the pace (`benchmarks/gpu_steps.py --profile`). Larger batches and
        longer sentences may turn that round: measure on your card before choosing.
    max_length: tokens kept per sentence ([CLS] and [SEP] included).
    warmup: fraction of the steps with a linear lr warm-up (then linear decay to 0).
    weight_decay: AdamW's decoupled weight decay (not applied to biases and LayerNorm weights).
    max_grad_norm: gradients are clipped to this norm.
    layer_decay: per-row lr = lr x layer_decay ** distance from the top (head 0, top block 1, ...); None: off.
    head_start: "random" (the head as the model was loaded: seeded at random), or "probe": before the first
        step, fit the classifier to convergence as a linear probe on the features the frozen pre-trained body
        gives the training sentences, then train as the plan says. With a full fine-tune this is LP-FT
        (Kumar et al. 2022; `freezelab.head_start`). Classification tasks only.
    evals_per_epoch: dev evaluations during training (0: none; the final score is always computed).
    frozen_eval_mode: run fully frozen blocks without dropout (Trainer otherwise keeps dropout on everywhere).
    cache_prefix: compute the frozen embeddings + bottom blocks once per sentence and train the rest from the
        cache (`freezelab.prefix_cache`; BERT classifiers, a fixed plan whose frozen part is a bottom prefix).
    group_by_length: batches of sentences of similar length, in random order (`batching.LengthBuckets`):
        less padding, about 2x faster on SST-2. Off by default: in `benchmarks/length_grouping.py` full
        fine-tuning at lr 1e-3 on 500 sentences scored lower with it on every seed (2 of 4 collapsed to one
        class), though at lr 1e-4 on 1,000 it made no difference beyond the seed spread.
    gradient_checkpointing: keep only each block's input in the forward pass and recompute the rest in the
        backward pass (Hugging Face's activation checkpointing; the dropout draws are replayed, so the
        run's numbers are the same). Off by default: in `benchmarks/memory_levers.py` a full fine-tune of
        MiniLM-L6 on SUBJ at quick size peaked 54-83 MB lower (of about 1,150) and took 1.32-1.38x as long
        (two runs). Activations are a larger share with longer sentences, bigger batches and bigger models.
    memory: "fast" (the default), or "lean": trade time for memory. Lean turns gradient checkpointing on
        wherever a weight inside a block trains (the same numbers), has glibc hand freed blocks of 1 MiB or more
        straight back to the system (`memory.return_large_blocks_at_once`; it stays for the process), and makes
        a sweep run that does not use the frozen-prefix cache empty it first (`experiment.run_point`). The
        course chooses lean where a kernel may use under 6 GB, as on Binder's 2 GB (`course.memory`).
        `benchmarks/course.py` measures the course with and without it, `benchmarks/memory_levers.py` each
        lever apart. It changes no number a run reports, so sweeps reuse runs made either way.
    """

    lr: float = 2e-5
    epochs: int = 2
    train_size: int | None = None
    dev_size: int | None = None
    seed: int = 0
    batch_size: int = 32
    micro_batch_size: int | None | str = "auto"
    max_length: int = 64
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    layer_decay: float | None = None
    head_start: str = "random"
    evals_per_epoch: int = 2
    frozen_eval_mode: bool = False
    cache_prefix: bool = False
    group_by_length: bool = False
    gradient_checkpointing: bool = False
    precision: str = "fp32"
    memory: str = "fast"

    def __post_init__(self):
        for name, valid, what in _CHECKS:
            value = getattr(self, name)
            if not valid(value):
                raise ValueError(f"{name} must be {what}, got {value!r}")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some settings changed (checked like a new config)."""
        unknown(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        """The config a `to_dict()` (or a result record's settings) describes; keys it does not know are an error."""
        unknown(settings)
        return cls(**settings)

    def on(self, device: str) -> "TrainConfig":
        """The settings as they run on `device` ("cpu", "cuda", "mps"): micro_batch_size="auto" made a number (or
        None), and a precision the device cannot run refused, naming those it can."""
        if self.precision == "fp16" and device != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA GPU; on {device!r} use 'fp32' or 'bf16'")
        if self.precision == "bf16" and device == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise ValueError(f"precision='bf16': this GPU ({torch.cuda.get_device_name()}) does not support "
                                 "bf16; use 'fp32' or 'fp16'")
        if self.micro_batch_size != "auto":
            return self
        return self.replace(micro_batch_size=CPU_MICRO_BATCH if device == "cpu" else None)

    def check_model(self, model) -> None:
        """Settings that depend on the model: max_length must fit its position embeddings, and gradient
        checkpointing needs a model that offers it."""
        longest = getattr(model.config, "max_position_embeddings", None) or 512
        if self.max_length > longest:
            raise ValueError(f"max_length must be a whole number from 2 to {longest} (this model's positions), "
                             f"got {self.max_length!r}")
        if self.gradient_checkpointing and not getattr(model, "supports_gradient_checkpointing", False):
            raise ValueError(f"gradient_checkpointing=True: {type(model).__name__} does not support it (Hugging "
                             "Face models that do have supports_gradient_checkpointing = True); use False")


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
PRECISIONS = ("fp32", "bf16", "fp16")
HEAD_STARTS = ("random", "probe")
MEMORY = ("fast", "lean")
CPU_MICRO_BATCH = 8  # what micro_batch_size="auto" means on a CPU


def unknown(settings: dict) -> None:
    """Refuse setting names TrainConfig does not have, naming the ones it has."""
    wrong = [name for name in settings if name not in FIELDS]
    if wrong:
        raise TypeError(f"unknown training setting {wrong[0]!r}; the settings are: {', '.join(FIELDS)}")


_CHECKS = (
    ("lr", lambda v: _number(v) and v > 0, "a finite number > 0"),
    ("epochs", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("train_size", lambda v: v is None or _whole(v, 1), "a whole number >= 1, or None (the whole split)"),
    ("dev_size", lambda v: v is None or _whole(v, 1), "a whole number >= 1, or None (the whole split)"),
    ("seed", lambda v: _whole(v, 0), "a whole number >= 0"),
    ("batch_size", lambda v: _whole(v, 1), "a whole number >= 1"),
    ("micro_batch_size", lambda v: v is None or v == "auto" or _whole(v, 1),
     f"a whole number >= 1, None (the whole batch) or 'auto' ({CPU_MICRO_BATCH} on a CPU, the whole batch on a GPU)"),
    ("max_length", lambda v: _whole(v, 2), "a whole number >= 2 ([CLS] and [SEP] need two positions)"),
    ("warmup", lambda v: _number(v) and 0 <= v < 1, "a fraction of the training steps, from 0 to below 1"),
    ("weight_decay", lambda v: _number(v) and 0 <= v < 1, "a number from 0 to below 1"),
    ("max_grad_norm", lambda v: _number(v) and v > 0, "a number > 0"),
    ("layer_decay", lambda v: v is None or (_number(v) and 0 < v <= 1), "in (0, 1], or None (off)"),
    ("head_start", lambda v: v in HEAD_STARTS, "'random' or 'probe' (a linear probe fitted first: LP-FT)"),
    ("evals_per_epoch", lambda v: _whole(v, 0), "a whole number >= 0 (0: only the final score)"),
    ("frozen_eval_mode", lambda v: isinstance(v, bool), "True or False"),
    ("cache_prefix", lambda v: isinstance(v, bool), "True or False"),
    ("group_by_length", lambda v: isinstance(v, bool), "True or False"),
    ("gradient_checkpointing", lambda v: isinstance(v, bool), "True or False"),
    ("precision", lambda v: v in PRECISIONS, "'fp32', 'bf16' or 'fp16'"),
    ("memory", lambda v: v in MEMORY, "'fast' or 'lean' (less memory, more time)"),
)
