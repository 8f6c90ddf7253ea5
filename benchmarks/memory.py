"""Benchmark: where a notebook kernel's memory goes, step by step, on the course model at quick size.

Runs in this process what notebook 04's live grid does for one full fine-tune
(the heaviest run of the course): imports, model, data, training, retention
probes. For each step it prints the resident set after it, its growth, and
the highest resident set sampled (every 10 ms) while it ran; then, inside each
run, the same for loading, training and each probe; then, inside each training,
where its growth goes: the weights' gradients and AdamW's two moments (counted
from the trainable parameters), what stays resident between optimizer steps,
what a step adds on top of that,
and glibc's heap: bytes in use against freed bytes it still holds (`mallinfo2`,
Linux with glibc only). The target
(issue 13): every notebook's kernel <= 1.3 GB at quick size; the whole-notebook
peaks come from `benchmarks/course.py`.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/memory.py [--train-size 500] [--plan full] [--whole-batches]
"""

import argparse
import contextlib
import threading
import time

import psutil

PROCESS = psutil.Process()
MB = 2**20


class Sampler:
    """Samples the RSS from a thread; `watch()` gives a record of the highest RSS seen until it is closed.
    Watches nest (a step and the steps inside it), each with its own peak."""

    def __init__(self):
        self.open: list[list[int]] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            rss = PROCESS.memory_info().rss
            for peak in list(self.open):
                peak[0] = max(peak[0], rss)
            time.sleep(0.01)

    @contextlib.contextmanager
    def watch(self):
        peak = [PROCESS.memory_info().rss]
        self.open = [*self.open, peak]
        try:
            yield peak
        finally:
            self.open = [other for other in self.open if other is not peak]  # equal peaks are other watches
            peak[0] = max(peak[0], PROCESS.memory_info().rss)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=500)
    parser.add_argument("--plan", default="full")
    parser.add_argument("--whole-batches", action="store_true", help="no micro-batches (the engine before issue 13)")
    args = parser.parse_args()
    sampler, rows = Sampler(), []
    last = PROCESS.memory_info().rss

    def step(name, work):
        nonlocal last
        with sampler.watch() as peak:
            value = work()
            time.sleep(0.05)
        now = PROCESS.memory_info().rss
        rows.append((name, now / MB, (now - last) / MB, peak[0] / MB))
        last = now
        return value

    step("python + psutil", lambda: None)
    step("import torch", lambda: __import__("torch"))
    step("import transformers.Trainer", lambda: __import__("transformers").Trainer)
    step("import datasets, pandas, scipy", lambda: [__import__(m) for m in ("datasets", "pandas", "scipy.stats")])
    step("import plotly, ipywidgets", lambda: [__import__(m) for m in ("plotly.graph_objects", "ipywidgets")])
    fl = step("import freezelab", lambda: __import__("freezelab"))
    from freezelab import experiment, grids

    settings = grids.SweepSettings(dev_size=200, sts_dev_size=300, micro_batch_size=None if args.whole_batches else 8)
    point = grids.grid([args.plan], [1e-4], [args.train_size], [0])[0]
    step("load_task sst2 + stsb", lambda: (fl.load_task("sst2"), fl.load_task("stsb")))
    model, tokenizer = step("load_model (MiniLM-L6)", lambda: fl.load_model("minilm-l6"))
    step("untouched STS-B probe", lambda: fl.probes.untouched(model, tokenizer, "minilm-l6", "sts_spearman",
                                                             sts_dev_size=300))
    inside = watch_run_point_steps(sampler)
    trainings = watch_training(sampler)
    for i in range(3):
        step(f"run_point {args.plan} #{i + 1} (train + probes)", lambda: experiment.run_point(point, settings))
    print(f"{'step':44} {'RSS MB':>8} {'growth':>8} {'peak in step':>13}")
    for name, now, growth, peak in rows:
        print(f"{name:44} {now:8.0f} {growth:+8.0f} {peak:13.0f}")
    print(f"\ninside each run_point: {'RSS at start':>12} {'peak':>6} {'at end':>7}")
    for name, start, peak, end in inside:
        print(f"  {name:32} {start:12.0f} {peak:6.0f} {end:7.0f}")
    print(f"\ninside each training (MB): {'at start':>8} {'grads+AdamW':>11} {'between steps':>13} "
          f"{'peak':>6} {'peak - between':>14} {'heap in use':>11} {'heap freed, held':>16}")
    for i, t in enumerate(trainings):
        print(f"  training #{i + 1:<22} {t['start']:8.0f} {t['state']:11.0f} {t['between']:13.0f} {t['peak']:6.0f} "
              f"{t['peak'] - t['between']:14.0f} {t['heap_in_use']:11.0f} {t['heap_free']:16.0f}")


def heap_mb() -> tuple[float, float]:
    """glibc's heap: (bytes in use, freed bytes it still holds) in MB; (nan, nan) without glibc's mallinfo2."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return float("nan"), float("nan")
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / MB, info.fordblks / MB


def watch_training(sampler) -> list:
    """Per training: RSS at its start, its gradients + AdamW moments (12 bytes per trainable fp32 parameter), the
    median RSS at the end of an optimizer step (from the fifth on), the peak, and the heap at the last step."""
    from statistics import median

    from transformers import TrainerCallback

    from freezelab import batching

    seen = []

    class Phases(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
            self.record = {"start": PROCESS.memory_info().rss / MB, "state": 3 * trainable / MB, "steps": []}
            self.watch = sampler.watch()
            self.peak = self.watch.__enter__()

        def on_step_end(self, args, state, control, **kwargs):
            self.record["steps"].append(PROCESS.memory_info().rss / MB)
            self.record["heap_in_use"], self.record["heap_free"] = heap_mb()

        def on_train_end(self, args, state, control, **kwargs):
            self.watch.__exit__(None, None, None)
            steps = self.record.pop("steps")
            seen.append({**self.record, "between": median(steps[4:] or steps), "peak": self.peak[0] / MB})

    make = batching.BatchingTrainer.__init__

    def with_phases(self, *args, callbacks=None, **kwargs):
        make(self, *args, callbacks=[*(callbacks or []), Phases()], **kwargs)

    batching.BatchingTrainer.__init__ = with_phases
    return seen


def watch_run_point_steps(sampler) -> list:
    """Record RSS at the start and end of each step inside run_point, and the highest RSS sampled during it."""
    from freezelab import models, probes, training

    seen = []

    def watched(module, name):
        work = getattr(module, name)

        def run(*args, **kwargs):
            start = PROCESS.memory_info().rss
            with sampler.watch() as peak:
                value = work(*args, **kwargs)
            end = PROCESS.memory_info().rss
            seen.append((f"{module.__name__.split('.')[-1]}.{name}", start / MB, peak[0] / MB, end / MB))
            return value

        setattr(module, name, run)

    for module, name in ((models, "load_model"), (training, "fine_tune"), (probes, "weight_drift"),
                         (probes, "sts_retention"), (probes, "cka_per_layer")):
        watched(module, name)
    return seen


if __name__ == "__main__":
    main()
