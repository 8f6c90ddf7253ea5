"""Benchmark: the GPU path. One fine-tune of the frontier (2,000 SST-2 sentences, 2 epochs, all 872 dev
sentences, retention probes on all 1,500 STS-B pairs) run the way a sweep runs it (`experiment.run_point`),
in a fresh process per variant, with ratios against fp32 whole batches (the kit's default on a GPU):

- fp32, micro-batches: length-sorted micro-batches of 8 (the kit's default on a CPU);
- bf16, micro-batches / bf16, whole batches: mixed precision (`TrainConfig.precision`); bf16 with
  micro-batches was the kit's GPU default until `benchmarks/gpu_steps.py` measured it;
- checkpointing: activations recomputed in the backward pass (what lean memory turns on);
- head only: the frozen-prefix cache's path.

The same on bert-base's architecture ("bert-base-random": bert-base-uncased's config with random weights and
its masked-LM head, written once into FREEZELAB_CACHE; no machine here reaches the hub). Its accuracy means
nothing; its time and memory are bert-base's. Printed per variant: training seconds, examples per second,
peak memory of the training (CUDA allocated on a GPU, the resident set on a CPU), the whole run's seconds
(load, training, probes), the dev accuracy and the retention probe, then the shipped CPU runs of the same
set-up, for the seed spread. Each process pays its own warm-up inside a short run (`benchmarks/gpu_steps.py`
measures the steps alone, after a warm-up).

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/gpu_path.py [--rounds 1] [--only minilm|bert-base]
        [--train-size 2000] [--dev-size 0] [--sts-dev-size 0] [--variants NAME ...]

The small sizes exist to try the script on a CPU (`--train-size 64 --dev-size 64 --sts-dev-size 64
--big tiny-random-bert`); the figures in the README come from the default sizes on a GPU.
"""

import argparse
import json
import os
import subprocess
import sys
from statistics import median

CHILD = r"""
import json, sys, time
variant = json.loads(sys.argv[1])
from transformers import BertConfig
import torch
import freezelab as fl
from freezelab import experiment, grids, models

models.RANDOM_CHECKPOINTS["bert-base-random"] = BertConfig  # bert-base-uncased's architecture, random weights
device = models.pick_device()
config = grids.SweepSettings.config  # the variant's precision and checkpointing, for the run below
grids.SweepSettings.config = lambda self, point=None: config(self, point).replace(
    precision=variant["precision"], gradient_checkpointing=variant["checkpointing"])
settings = grids.SweepSettings(task="sst2", checkpoint=variant["checkpoint"], dev_size=variant["dev_size"],
                               sts_dev_size=variant["sts_dev_size"], micro_batch_size=variant["micro_batch"])
point = grids.grid([variant["plan"]], [variant["lr"]], [variant["train_size"]], [0])[0]
fl.load_task("sst2"), fl.load_task("stsb")  # read the data before the clock starts
started = time.perf_counter()
record = experiment.run_point(point, settings)
retention = record.retention or {}
print(json.dumps({"seconds": time.perf_counter() - started, "train_s": record.train_time_s,
                  "examples_per_s": record.examples_per_s, "peak_mb": record.peak_memory_mb,
                  "device": record.device, "precision": record.precision, "dev": record.dev_metric,
                  "probe": retention.get("mlm_accuracy", retention.get("sts_spearman")),
                  "gpu": torch.cuda.get_device_name() if device == "cuda" else None}))
"""

# name: (micro-batch size, precision, gradient checkpointing, plan, lr)
VARIANTS = {
    "fp32, whole batches": (None, "fp32", False, "full", 1e-4),  # the kit's default on a GPU
    "fp32, micro-batches": (8, "fp32", False, "full", 1e-4),  # the kit's default on a CPU
    "bf16, micro-batches": (8, "bf16", False, "full", 1e-4),  # the kit's default on a GPU before gpu_steps.py
    "bf16, whole batches": (None, "bf16", False, "full", 1e-4),
    "checkpointing": ("auto", "fp32", True, "full", 1e-4),  # what lean memory adds
    "head only": ("auto", "fp32", False, "head", 1e-3),  # the frozen-prefix cache
}
BASE = "fp32, whole batches"


def run(variant: str, checkpoint: str, args) -> dict:
    micro_batch, precision, checkpointing, plan, lr = VARIANTS[variant]
    settings = {"checkpoint": checkpoint, "micro_batch": micro_batch, "precision": precision,
                "checkpointing": checkpointing, "plan": plan, "lr": lr, "train_size": args.train_size,
                "dev_size": args.dev_size or None, "sts_dev_size": args.sts_dev_size or None}
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)], env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
                "log": out.stderr[-3000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def shipped_spread(plan: str, lr: float) -> str:
    """The shipped frontier's runs of the same set-up (2-core CPU, fp32, whole batches): dev accuracy per seed."""
    from freezelab import results

    runs = results.shipped("frontier")
    chosen = runs[(runs["plan"] == plan) & (runs["lr"] == lr) & (runs["warmup"].fillna(0.06) == 0.06)
                  & runs["layer_decay"].isna() & (runs["pooling"].fillna("cls") == "cls")]
    values = ", ".join(f"{v:.3f}" for v in chosen.sort_values("seed")["dev_metric"])
    return f"shipped CPU runs of {plan} at lr {lr:g} (seeds 0-2): dev {values}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", choices=["minilm", "bert-base"])
    parser.add_argument("--big", default="bert-base-random", help="the second checkpoint (default: bert-base's "
                        "architecture with random weights)")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--dev-size", type=int, default=0, help="0: all 872 SST-2 dev sentences")
    parser.add_argument("--sts-dev-size", type=int, default=0, help="0: all 1,500 STS-B pairs")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="only these (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    checkpoints = {"minilm": ("minilm-l6", list(VARIANTS)),
                   "bert-base": (args.big, [v for v in VARIANTS if v != "head only"])}
    for name, (checkpoint, variants) in checkpoints.items():
        if args.only and args.only != name:
            continue
        seen = {variant: [] for variant in variants if not args.variants or variant in args.variants}
        for _ in range(args.rounds):  # round by round, so that every variant sees the same machine
            for variant in seen:
                seen[variant].append(run(variant, checkpoint, args))
                print(f"  {checkpoint} / {variant}: {json.dumps(seen[variant][-1])[:600]}", flush=True)
        good = {v: runs for v, runs in seen.items() if all("error" not in r for r in runs)}
        first = next(iter(good.values()), [{}])[0]
        print(f"\n{checkpoint}: {args.train_size} SST-2 sentences x 2 epochs, device {first.get('gpu') or first.get('device')}, "
              f"median of {args.rounds} run(s) per variant")
        print(f"{'variant':22} {'precision':>9} {'train s':>8} {'ex/s':>7} {'x':>6} {'peak MB':>8} {'x':>6} "
              f"{'run s':>6} {'dev':>6} {'probe':>6}   (x: against {BASE})")
        base = good.get(BASE)
        for variant, runs in seen.items():
            if variant not in good:
                print(f"{variant:22} FAILED: {runs[-1]['error']}\n{runs[-1]['log']}")
                continue
            m = {k: median(r[k] for r in runs) for k in ("train_s", "examples_per_s", "peak_mb", "seconds")}
            speed = f"{m['examples_per_s'] / median(r['examples_per_s'] for r in base):6.2f}" if base else "     -"
            memory = f"{m['peak_mb'] / median(r['peak_mb'] for r in base):6.2f}" if base else "     -"
            probe = f"{runs[0]['probe']:6.3f}" if runs[0]["probe"] is not None else "     -"
            print(f"{variant:22} {runs[0]['precision']:>9} {m['train_s']:8.1f} {m['examples_per_s']:7.0f} {speed} "
                  f"{m['peak_mb']:8.0f} {memory} {m['seconds']:6.1f} {runs[0]['dev']:6.3f} {probe}")
        if checkpoint == "minilm-l6":
            print(shipped_spread("full", 1e-4))
            print(shipped_spread("head", 1e-3))
        print(flush=True)


if __name__ == "__main__":
    main()
