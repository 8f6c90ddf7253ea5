"""Benchmark: how much retention weight interpolation (WiSE-FT) buys back, and at what accuracy (issue 27).

Each set-up (full fine-tuning at two rates, LoRA of rank 16 on the attention matrices) is trained on SST-2
for each seed, with the frontier's settings, then walked back towards the pre-trained weights
(`fl.alpha_curve`, the fine-tuned head kept). Per set-up: the mean over seeds at each α, and the α with
the most retention whose mean dev accuracy is at most 0.5 points below α = 1; its retention gain is judged
against the seed spread by the course's one rule (`results.SPREAD_RULE`). Then the share of the set-ups'
own end points (α = 1) that some α-point of any curve beats on both axes beyond the spread. Evaluation is
all the walk costs: the seconds are printed beside the training's.

    python benchmarks/interpolation_recovery.py                      # 2,000 sentences, 3 seeds: long on a CPU
    python benchmarks/interpolation_recovery.py --train-size 500 --dev-size 400 --sts-dev-size 400
    python benchmarks/interpolation_recovery.py --train-size 16 --dev-size 16 --sts-dev-size 16 --seeds 0 \
        --setups full:5e-4 --alphas 1 0.5                              # smoke
"""

import argparse
import time

import pandas as pd

import freezelab as fl
from freezelab import grids, results

COST = 0.005  # at most half a point of dev accuracy given up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=["full:1e-4", "full:5e-4", "lora16-attn:5e-4"],
                        help="grid key:learning rate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--dev-size", type=int, default=None)
    parser.add_argument("--sts-dev-size", type=int, default=None)
    parser.add_argument("--checkpoint", default="minilm-l6")
    args = parser.parse_args()

    lines, train_s, walk_s = [], 0.0, 0.0
    for setup in args.setups:
        key, lr = setup.split(":")
        for seed in args.seeds:
            model, tokenizer = fl.load_model(args.checkpoint, seed=seed)
            pretrained = fl.load_model(args.checkpoint, seed=seed)[0]
            data = fl.load_task("sst2", train_size=args.train_size, dev_size=args.dev_size, seed=seed)
            config = grids.SWEEP_TRAINING.replace(lr=float(lr), seed=seed, train_size=args.train_size)
            start = time.perf_counter()
            fl.fine_tune(model, tokenizer, data, config, plan=grids.PLANS[key][1](model, config.epochs))
            train_s += time.perf_counter() - start
            start = time.perf_counter()
            curve = fl.alpha_curve(pretrained, model, tokenizer, data, alphas=args.alphas,
                                   sts_dev_size=args.sts_dev_size)
            walk_s += time.perf_counter() - start
            for line in curve.to_dict(orient="records"):
                lines.append({"setup": f"{grids.describe({'plan': key, 'lr': float(lr)}, short=True)}",
                              "seed": seed, **line})
            del model, pretrained

    runs = pd.DataFrame(lines)
    runs["run"] = runs["setup"]
    runs["label"] = runs["setup"] + " · α " + runs["alpha"].map("{:.2f}".format)
    runs.attrs["settings"] = {"task": "sst2", "dev_size": args.dev_size}
    table = results.summary(runs, metrics=("dev_metric", "sts_spearman"))
    table = table.merge(runs.groupby("label")[["setup", "alpha"]].first(), left_on="label", right_index=True)
    print(f"SST-2, {args.train_size} sentences, seeds {args.seeds}; means over seeds (± std):")
    for row in table.to_dict(orient="records"):
        print(f"  {row['label']:<28} dev {row['dev_metric mean']:.3f} ± {row['dev_metric std']:.3f}   "
              f"STS-B {row['sts_spearman mean']:.3f} ± {row['sts_spearman std']:.3f}")

    print(f"\nretention bought back at a cost of at most {100 * COST:.1f} points of mean dev accuracy:")
    for gain in results.walk_gains(runs, cost=COST).to_dict(orient="records"):
        print(f"  {gain['run']:<22} best α {gain['alpha']:.2f}: STS-B {gain['STS-B change']:+.3f} "
              f"({gain['STS-B'].outcome}; larger std {gain['STS-B'].spread:.3f}), dev {gain['dev change']:+.3f}")

    ends = table[table["alpha"] == 1.0]
    beaten = 0
    for end in ends.to_dict(orient="records"):
        others = table[table["alpha"] < 1.0]
        if any(results.gap(table, other, end["label"], "dev_metric").outcome != "lower" and
               results.gap(table, other, end["label"], "sts_spearman").outcome == "higher"
               for other in others["label"]):
            beaten += 1
    print(f"\nend points (α = 1) that some α-point matches on accuracy (not lower beyond the spread) and beats on "
          f"retention beyond it: {beaten} of {len(ends)}")
    print(f"seconds: training {train_s:.0f}, walking and scoring {walk_s:.0f} ({len(args.alphas)} α per run)")


if __name__ == "__main__":
    main()
