"""Benchmark: the retention-aware range test against the shipped frontier (issue 27).

For each seed, one `fl.range_test` of full fine-tuning on SST-2 (MiniLM-L6), and its three suggestions: the
loss valley (fastai's rule), the steepest loss (Lightning's rule) and the highest rate that kept STS-B
retention at or above a floor. Each floor is a fraction of the untouched model's retention. Beside them:
the shipped frontier's full fine-tuning grid (2,000 sentences, 3 seeds) and, per floor, its best rate that
meets the floor (the highest mean dev accuracy among rates whose mean retention is at or above it). The
grid's rates are a factor of 2 to 5 apart, so "near" means within one grid step. Also the test's cost.

    python benchmarks/lr_range_test.py                       # 3 seeds, 100 steps: about 2-4 min each on 2 cores
    python benchmarks/lr_range_test.py --seeds 0 --steps 10 --probe-pairs 16    # smoke
"""

import argparse
import math

import freezelab as fl
from freezelab import results
from freezelab.lr_range import retention_limit


def grid_best(table, floor: float):
    """The shipped full fine-tuning rate with the best mean dev accuracy whose mean retention meets `floor`."""
    met = table[table["sts_spearman mean"] >= floor]
    return None if met.empty else float(met.loc[met["dev_metric mean"].idxmax(), "lr"])


def steps_apart(a, b) -> str:
    return "-" if a is None or b is None else f"{math.log10(a / b):+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--probe-pairs", type=int, default=200)
    parser.add_argument("--floors", type=float, nargs="+", default=[0.9, 0.65],
                        help="retention floors, as fractions of the untouched model's")
    args = parser.parse_args()

    shipped = results.shipped("frontier")
    table = results.summary(shipped)
    table = table[(table["plan"] == "full") & table["layer_decay"].isna() & table["warmup"].isna()]
    untouched_full = float(results.summary(shipped[shipped["plan"] == "head"])["sts_spearman mean"].iloc[0])
    print("shipped frontier, full fine-tuning (2,000 SST-2 sentences, 3 seeds; STS-B on the whole dev set):")
    for row in table.to_dict(orient="records"):
        print(f"  lr {row['lr']:.0e}: dev accuracy {row['dev_metric mean']:.3f} ± {row['dev_metric std']:.3f}, "
              f"STS-B {row['sts_spearman mean']:.3f} ± {row['sts_spearman std']:.3f}")
    print(f"  untouched STS-B: {untouched_full:.3f}")
    best = {f: grid_best(table, f * untouched_full) for f in args.floors}

    model, tokenizer = fl.load_model("minilm-l6", seed=0)
    lines = []
    for seed in args.seeds:
        test = fl.range_test(model, tokenizer, "sst2", steps=args.steps, probe_every=args.probe_every,
                             probe_pairs=args.probe_pairs, seed=seed)
        for fraction in args.floors:
            floor = fraction * test.untouched
            lines.append((seed, fraction, test.suggestions["loss valley"], test.suggestions["steepest loss"],
                          retention_limit(test.curve, floor), best[fraction], test.seconds, len(test.curve) - 1))
    print(f"\nrange test: {args.steps} steps from 1e-7 to 1e-2, STS-B ({args.probe_pairs} pairs) every "
          f"{args.probe_every} steps; log10(suggested / grid best) in the last three columns")
    print(f"{'seed':>4} {'floor':>5} {'valley':>8} {'steepest':>8} {'retention':>9} {'grid best':>9} "
          f"{'valley':>7} {'steep':>7} {'retain':>7} {'seconds':>8}")
    fmt = lambda lr: "none" if lr is None else f"{lr:.1e}"  # noqa: E731
    for seed, fraction, valley, steep, kept, grid, seconds, steps in lines:
        print(f"{seed:>4} {fraction:>5.2f} {fmt(valley):>8} {fmt(steep):>8} {fmt(kept):>9} {fmt(grid):>9} "
              f"{steps_apart(valley, grid):>7} {steps_apart(steep, grid):>7} {steps_apart(kept, grid):>7} "
              f"{seconds:>8.0f}")
    print(f"cost: median {sorted(l[6] for l in lines)[len(lines) // 2]:.0f} s per test "
          f"({lines[0][7]} steps run of {args.steps})")


if __name__ == "__main__":
    main()
