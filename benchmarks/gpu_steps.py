"""Benchmark: what a training step costs on a GPU, by precision and micro-batching, in one process.

`benchmarks/gpu_path.py` runs each variant in a fresh process, so each pays its own warm-up (CUDA context,
kernels loaded on first use) inside a short run. Here every variant first runs a short warm-up fine-tune in
the same process, then the timed one: `fine_tune` on 2,000 SST-2 sentences, 1 epoch (63 steps of 32), no
evaluation during training, for MiniLM-L6's architecture and bert-base's, with random weights (a step's cost
does not depend on the weights' values; no hub here). Printed per variant: training seconds, examples per
second and the ratio against fp32 whole batches on the same model, and the peak CUDA memory of training.
`--profile` adds a torch profile of a few steps of the kit's former GPU default (bf16, micro-batches of 8) on
MiniLM, the operations that take the host's time: the profile that replaced that default with fp32 and whole
batches.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/gpu_steps.py [--train-size 2000] [--profile]
"""

import argparse
import time

import torch

import freezelab as fl
from freezelab.config import TrainConfig

VARIANTS = [("fp32", None), ("bf16", None), ("fp32", 8), ("bf16", 8)]  # (precision, micro-batch size)
ARCHITECTURES = {"MiniLM-L6": "minilm-l6", "bert-base": "bert-base-uncased"}


def one_run(checkpoint: str, data, precision: str, micro_batch: int | None, size: int | None = None):
    model, tokenizer = fl.load_model(checkpoint, random_weights=True, seed=0)
    config = TrainConfig(lr=1e-4, epochs=1, micro_batch_size=micro_batch, precision=precision, evals_per_epoch=0,
                         seed=0, train_size=size)
    result = fl.fine_tune(model, tokenizer, data, config)
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return result


def profile_default(data, train_size: int) -> None:
    """Where the host's time goes in the kit's former GPU default on MiniLM (bf16, micro-batches of 8)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        one_run("minilm-l6", data, "bf16", 8, size=min(256, train_size))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only", choices=sorted(ARCHITECTURES), help="one architecture (default: both)")
    args = parser.parse_args()
    data = fl.load_task("sst2", train_size=args.train_size, dev_size=64, seed=0)
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    for name, checkpoint in ARCHITECTURES.items():
        if args.only and name != args.only:
            continue
        rows = {}
        for precision, micro_batch in VARIANTS:
            one_run(checkpoint, data, precision, micro_batch, size=min(128, args.train_size))  # warm-up: kernels, allocator, caches
            result = one_run(checkpoint, data, precision, micro_batch)
            rows[(precision, micro_batch)] = result
            print(f"  {name} {precision} micro-batch {micro_batch}: {result.train_time_s:.2f} s, "
                  f"{result.examples_per_s:.0f} ex/s, peak {result.peak_memory_mb:.0f} MB", flush=True)
        base = rows[("fp32", None)].examples_per_s
        print(f"\n{name} (random weights), {args.train_size} SST-2 sentences x 1 epoch, {where}, after a warm-up")
        print(f"{'precision':>9} {'micro-batch':>11} {'train s':>8} {'ex/s':>7} {'x fp32 whole':>12} {'peak MB':>8}")
        for (precision, micro_batch), result in rows.items():
            print(f"{precision:>9} {str(micro_batch or 'whole'):>11} {result.train_time_s:8.2f} "
                  f"{result.examples_per_s:7.0f} {result.examples_per_s / base:12.2f} {result.peak_memory_mb:8.0f}")
        print(flush=True)
        if args.profile and name == "MiniLM-L6":
            profile_default(data, args.train_size)


if __name__ == "__main__":
    main()
