"""Benchmark: what would lower the heaviest run of a notebook, and what each way costs.

The kernels of notebooks 04 and 07 peak while a live grid fully fine-tunes MiniLM on
long sentences (the word-order task, SUBJ): the weights, their gradients and AdamW's two
moments (about 360 MB together) plus the activations of a micro-batch. This script runs
that run (`experiment.run_point`, quick size, no probes) in a fresh process per variant,
alternating the variants round by round, and prints each one's peak resident set (sampled
every 10 ms), its wall time, its dev accuracy and its last losses, with ratios against
the kit as it is:

- as is: micro-batches of 8 sentences, glibc's default allocator settings (lean memory off);
- mmap 1 MB: glibc serves every allocation of 1 MB or more with its own mapping, handed
  back when freed (`MALLOC_MMAP_THRESHOLD_=1048576`; the same numbers, fewer heap holes);
- checkpointing: activations recomputed in the backward pass instead of kept
  (`fine_tune(..., gradient_checkpointing=True)`; the same dropout masks, so the same numbers);
- micro-batches of 4: half the activations, but dropout is drawn per micro-batch, so the
  run is a different draw;
- mmap + checkpointing: what lean memory does to one run (`TrainConfig(memory="lean")`, the course's
  quick size), and all three together;
- embeddings frozen: not a lever but another method (the word embeddings are half of
  MiniLM's weights): how much of the peak their gradient and AdamW moments take.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/memory_levers.py [--task word-order|subj] [--rounds 2]
"""

import argparse
import json
import os
import subprocess
import sys
from statistics import median

CHILD = r"""
import json, os, sys, threading, time
import psutil

process, peak = psutil.Process(), [0]
def watch():
    while True:
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.01)
threading.Thread(target=watch, daemon=True).start()

import freezelab as fl
from freezelab import experiment, grids

task, micro_batch, checkpointing, embeddings = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
if embeddings == "frozen":  # not a lever but another method: where the embeddings' share of the peak shows
    grids.PLANS["full"] = ("embeddings frozen", lambda m, e: fl.FreezePlan.freeze_bottom(m, 0))
course = fl.course.setup(show=False)
settings = grids.SweepSettings(task=task, checkpoint=course.checkpoint, dev_size=course.size.dev_size,
                               probes=False, micro_batch_size=micro_batch, gradient_checkpointing=checkpointing)
point = grids.grid(["full"], [course.lr(1)], [course.size.train_size], [0])[0]
fl.load_task(task)
start, peak[0] = process.memory_info().rss, 0
started = time.perf_counter()
record = experiment.run_point(point, settings)
print(json.dumps({"start_mb": start / 2**20, "peak_mb": peak[0] / 2**20, "seconds": time.perf_counter() - started,
                  "dev": record.dev_metric, "losses": record.losses[-3:]}))
"""

MMAP = {"MALLOC_MMAP_THRESHOLD_": "1048576"}
VARIANTS = {  # name: (micro-batch size, gradient checkpointing, extra environment, embeddings)
    "as is": (8, False, {}, "trained"),
    "mmap 1 MB": (8, False, MMAP, "trained"),
    "checkpointing": (8, True, {}, "trained"),
    "micro-batches of 4": (4, False, {}, "trained"),
    "mmap + checkpointing": (8, True, MMAP, "trained"),
    "all three": (4, True, MMAP, "trained"),
    "embeddings frozen": (8, False, {}, "frozen"),
}


def run(task: str, variant: str, size: str = "quick") -> dict:
    micro_batch, checkpointing, env, embeddings = VARIANTS[variant]
    env = {**os.environ, "FREEZELAB_SIZE": size, **env}  # quick size by default, as the notebooks in CI
    out = subprocess.run([sys.executable, "-c", CHILD, task, str(micro_batch), "1" if checkpointing else "0",
                          embeddings],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{variant}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="word-order", choices=["word-order", "subj", "sst2"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", default="quick", choices=["quick", "smoke"], help="smoke: CI's check that it runs")
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="only the first N variants ('as is' first)")
    args = parser.parse_args()
    seen = {name: [] for name in list(VARIANTS)[:args.variants]}
    for _ in range(args.rounds):  # round by round, so that every variant sees the same machine
        for name in seen:
            seen[name].append(run(args.task, name, args.size))
    base = {key: median(r[key] for r in seen["as is"]) for key in ("peak_mb", "seconds")}
    print(f"full fine-tune of MiniLM-L6 on {args.task}, {args.size} size, median of {args.rounds} runs per variant; "
          f"the process held {median(r['start_mb'] for r in seen['as is']):.0f} MB before the run")
    print(f"{'variant':20} {'peak MB':>8} {'x as is':>8} {'wall s':>7} {'x as is':>8} {'dev':>6}  last losses")
    for name, runs in seen.items():
        peak, seconds = median(r["peak_mb"] for r in runs), median(r["seconds"] for r in runs)
        print(f"{name:20} {peak:8.0f} {peak / base['peak_mb']:8.2f} {seconds:7.1f} {seconds / base['seconds']:8.2f} "
              f"{runs[0]['dev']:6.3f}  {runs[0]['losses']}")


if __name__ == "__main__":
    main()
