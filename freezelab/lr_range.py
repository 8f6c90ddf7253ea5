"""A learning-rate range test that watches retention as well as the loss.

For: `range_test(model, tokenizer, task)`, about 100 training steps with the learning rate rising
exponentially (Smith 2017, "Cyclical Learning Rates"; fastai's `lr_find`, Lightning's `Tuner.lr_find`),
recording the loss at every step and STS-B retention every few steps. It returns a `RangeTest`: the curve
as a table, three suggested rates side by side, and `.plot()`.
- "loss valley": where fastai's `valley` rule lands on the smoothed loss (two thirds of the way down the
  longest stretch over which the loss keeps falling);
- "steepest loss": where Lightning's rule lands (the steepest fall of the smoothed loss);
- "retention floor": the highest rate reached while retention was still at or above a floor you set.
The first two see only the loss. Full fine-tuning at 1e-4 and 5e-4 can reach about the same accuracy
while one keeps far less of the pre-trained knowledge: the third rule is what can tell them apart.

Caveats, which the course measures rather than assumes: the test's weights carry every earlier step, so
the retention read at a rate is that of a short ramp up to it, not of a full run at it; and one seed's
curve is noisy. `range_test` never changes the model it is given (it trains a copy).

Not for: training (`freezelab.training.fine_tune`) or the probes themselves (`freezelab.probes`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

SMOOTHING = 0.98  # the exponential smoothing of the loss both libraries use (debiased as fastai does)
STOP_FACTOR = 4.0  # both stop once the smoothed loss exceeds 4x its lowest value: the run has diverged


@dataclass
class RangeTest:
    """What `range_test` measured: `curve` (one line per step: step, lr, loss, smooth_loss, and sts_spearman
    on the steps that probed it), the untouched model's retention, the floor, and the suggested rates."""

    curve: pd.DataFrame
    untouched: float
    floor: float
    suggestions: dict = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0

    def table(self) -> pd.DataFrame:
        """The suggestions: rule, rate, and the retention last read at or below that rate."""
        probed = self.curve.dropna(subset=["sts_spearman"])
        lines = []
        for rule, lr in self.suggestions.items():
            below = probed[probed["lr"] <= lr] if lr is not None else probed.iloc[:0]
            lines.append({"rule": rule, "lr": lr,
                          "sts_spearman read last": float(below["sts_spearman"].iloc[-1]) if len(below) else None})
        return pd.DataFrame(lines)

    def plot(self):
        """Loss and retention against the learning rate (log scale), the three suggestions and the floor marked."""
        from .run_plots import range_test_plot

        return range_test_plot(self)

    def __repr__(self) -> str:
        rates = ", ".join(f"{rule} {lr:.1e}" if lr is not None else f"{rule} none"
                          for rule, lr in self.suggestions.items())
        return (f"RangeTest({len(self.curve)} steps{' (stopped: the loss diverged)' if self.stopped_early else ''}, "
                f"retention {self.untouched:.3f} untouched, floor {self.floor:.3f}; {rates})")


def range_test(model, tokenizer, task="sst2", *, plan=None, start_lr: float = 1e-7, end_lr: float = 1e-2,
               steps: int = 100, probe_every: int = 10, probe_pairs: int | None = 200,
               retention_floor: float | None = None, batch_size: int = 32, max_length: int = 64,
               seed: int = 0, memory: str = "fast") -> RangeTest:
    """Train a copy of `model` for `steps` steps at rates from `start_lr` to `end_lr` (exponentially), reading
    the loss each step and STS-B Spearman (`probe_pairs` dev pairs) before the first step and every
    `probe_every` steps. Stops early once the smoothed loss passes 4x its lowest (as both libraries do).

    plan: what trains (any `freezelab.methods.Method`; default: the model as it is). retention_floor: the
    lowest STS-B Spearman you accept; default: 90% of the untouched model's. memory: "lean" recomputes the
    activations in the backward pass (gradient checkpointing: the same numbers, in less memory), as `fine_tune`
    does with `memory="lean"`; the course passes `course.memory`.
    """
    import time

    from .data import load_task
    from .memory import gradient_checkpointing, return_large_blocks_at_once, supports_gradient_checkpointing
    from .plans import FreezePlan
    from .probes import sts_retention

    if not (0 < start_lr < end_lr):
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    if not isinstance(steps, int) or steps < 10:
        raise ValueError(f"steps must be a whole number >= 10 (a curve needs points), got {steps!r}")
    if not isinstance(probe_every, int) or not 1 <= probe_every <= steps:
        raise ValueError(f"probe_every must be a whole number from 1 to steps ({steps}), got {probe_every!r}")
    if memory not in ("fast", "lean"):
        raise ValueError(f"memory must be 'fast' or 'lean', got {memory!r}")
    if memory == "lean":
        return_large_blocks_at_once()
    began = time.perf_counter()
    model = copy.deepcopy(model)  # the caller's model is never trained
    with torch.random.fork_rng(devices=[]), gradient_checkpointing(
            model, memory == "lean" and supports_gradient_checkpointing(model)):
        torch.manual_seed(seed)
        (plan or FreezePlan.from_model(model)).apply(model)
        data = load_task(task, train_size=steps * batch_size, seed=seed)["train"] if isinstance(task, str) \
            else task["train"]
        if "label" not in data.column_names or data.features["label"].dtype.startswith("float"):
            raise ValueError("range_test needs a classification task (sst2, subj, cola, word-order or your own)")
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=start_lr, weight_decay=0.01)
        device = next(model.parameters()).device
        order = torch.randperm(len(data)).tolist()

        def retention() -> float:
            with torch.no_grad():
                value = sts_retention(model, tokenizer, dev_size=probe_pairs)
            model.train()
            return value

        untouched = retention()
        floor = 0.9 * untouched if retention_floor is None else float(retention_floor)
        lines, smooth, best, stopped = [], 0.0, math.inf, False
        model.train()
        for step in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            chosen = [order[(step * batch_size + i) % len(order)] for i in range(batch_size)]
            batch = tokenizer([data[i]["text"] for i in chosen], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(device)
            labels = torch.tensor([data[i]["label"] for i in chosen], device=device)
            loss = model(**batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            smooth = SMOOTHING * smooth + (1 - SMOOTHING) * loss.item()
            smoothed = smooth / (1 - SMOOTHING ** (step + 1))
            best = min(best, smoothed)
            line = {"step": step + 1, "lr": lr, "loss": loss.item(), "smooth_loss": smoothed, "sts_spearman": math.nan}
            if (step + 1) % probe_every == 0 or step == steps - 1:
                line["sts_spearman"] = retention()
            lines.append(line)
            if smoothed > STOP_FACTOR * best:
                stopped = True
                break
    curve = pd.DataFrame([{"step": 0, "lr": 0.0, "loss": math.nan, "smooth_loss": math.nan,
                           "sts_spearman": untouched}] + lines)
    lrs, losses = (curve.loc[curve["step"] > 0, column].to_numpy() for column in ("lr", "smooth_loss"))
    skip = len(lrs) // 10  # fastai leaves out the first tenth of the steps and the last five
    suggestions = {"loss valley": loss_valley(lrs[skip:len(lrs) - 5], losses[skip:len(lrs) - 5]),
                   "steepest loss": steepest_loss(lrs, losses),
                   "retention floor": retention_limit(curve, floor)}
    del model, optimizer
    return RangeTest(curve=curve, untouched=untouched, floor=floor, suggestions=suggestions, stopped_early=stopped,
                     seconds=time.perf_counter() - began)


def loss_valley(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """fastai's `valley` rule: the longest run of steps over which the smoothed loss keeps setting lower values
    (a longest decreasing subsequence), and the rate two thirds of the way down it."""
    n = len(losses)
    if n < 3:
        return None
    run = [1] * n  # run[i]: the length of the longest decreasing sequence of losses that ends at step i
    end = 0
    for i in range(1, n):
        run[i] = 1 + max((run[j] for j in range(i) if losses[j] > losses[i]), default=0)
        if run[i] > run[end]:
            end = i
    start = max(end - run[end], 0)
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


def steepest_loss(lrs: np.ndarray, losses: np.ndarray, skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """Lightning's rule: the rate where the smoothed loss falls fastest per step (its default skips the first 10
    steps and the last one)."""
    kept = losses[skip_begin:len(losses) - skip_end]
    if len(kept) < 2:
        return None
    return float(lrs[skip_begin + int(np.argmin(np.gradient(kept)))])


def retention_limit(curve: pd.DataFrame, floor: float) -> float | None:
    """The highest rate the test reached before retention was first read below `floor` (None: it never held)."""
    probed = curve.dropna(subset=["sts_spearman"])
    if probed["sts_spearman"].iloc[0] < floor:
        return None
    below = probed[probed["sts_spearman"] < floor]
    if len(below) == 0:
        return float(curve["lr"].iloc[-1])
    held = probed[probed["step"] < below["step"].iloc[0]]
    return float(held["lr"].iloc[-1]) if held["step"].iloc[-1] > 0 else None
