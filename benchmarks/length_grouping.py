"""Benchmark: batches of similar length (Trainer's `group_by_length`) against random batches, same runs.

Full fine-tunes of MiniLM-L6 on SST-2 (the course's heaviest kind of run), one pair per seed, the two
orders alternating: training examples/s of each, their ratio, and dev accuracy over the seeds, with the
gap in means stated against the larger standard deviation over seeds (the course's rule for "beyond the
seed spread"). Decides whether grouping is worth turning on (issue 13).

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/length_grouping.py [--train-size 1000] [--seeds 0 1 2]
        [--plan full|top2] [--lr 1e-4]
"""

import argparse
import statistics

import freezelab as fl
from freezelab import FreezePlan
from freezelab.data import load_task, tokenize


def run(plan, train_size, seed, grouped, lr):
    model, tokenizer = fl.load_model("minilm-l6", seed=seed)
    made = FreezePlan.full_finetune(model) if plan == "full" else FreezePlan.train_top(model, 2)
    return fl.fine_tune(model, tokenizer, "sst2", plan=made, lr=lr, epochs=2, train_size=train_size, seed=seed,
                        evals_per_epoch=0, frozen_eval_mode=True, cache_prefix=plan != "full",
                        group_by_length=grouped)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plan", choices=("full", "top2"), default="full")
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    _, tokenizer = fl.load_model("minilm-l6")
    lengths = tokenize(load_task("sst2", train_size=args.train_size, seed=0)["train"], tokenizer, 64)["input_ids"]
    tokens = [len(ids) for ids in lengths]
    print(f"MiniLM-L6, SST-2, {args.plan}, {args.train_size} sentences x 2 epochs, batch 32, lr {args.lr:g}; "
          f"tokens per sentence: mean {statistics.mean(tokens):.1f}, max {max(tokens)}\n")
    speed, accuracy = {True: [], False: []}, {True: [], False: []}
    for i, seed in enumerate(args.seeds):
        for grouped in ((False, True) if i % 2 == 0 else (True, False)):
            result = run(args.plan, args.train_size, seed, grouped, args.lr)
            speed[grouped].append(result.examples_per_s)
            accuracy[grouped].append(result.dev_metric)
            print(f"seed {seed} {'grouped' if grouped else 'random '}: {result.examples_per_s:6.1f} examples/s, "
                  f"dev accuracy {result.dev_metric:.3f}", flush=True)
    ratios = [g / r for g, r in zip(speed[True], speed[False])]
    means = {k: statistics.mean(v) for k, v in accuracy.items()}
    stds = {k: statistics.stdev(v) if len(v) > 1 else float("nan") for k, v in accuracy.items()}
    gap, spread = means[True] - means[False], max(stds.values())
    print(f"\nspeed: grouped / random, median over {len(ratios)} pairs: {statistics.median(ratios):.2f}x "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"dev accuracy: random {means[False]:.3f} ± {stds[False]:.3f}, grouped {means[True]:.3f} ± {stds[True]:.3f}; "
          f"gap {gap:+.3f}, {'within' if abs(gap) <= spread else 'beyond'} the seed spread ({spread:.3f})")


if __name__ == "__main__":
    main()
