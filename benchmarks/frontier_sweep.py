"""Benchmark: the CPU time of the course's frontier sweep, before and after issue 13, on the same grid.

Runs every set-up of the shipped frontier (`grids.frontier_points`, 17 set-ups; one seed, a smaller train
size so that it finishes in minutes on a laptop) through `experiment.run_point`, the function every sweep
worker calls, in two engines, alternating point by point so that both see the same machine:

- before: every run starts cold (the frozen-prefix cache emptied before each run, as when each run built
  its own) and batches are drawn at random, as the shipped files were made;
- after: the cache kept across runs and batches grouped by length (the default now; `--random-batches`
  leaves batching as before, to see the cache's share alone).

Each engine keeps its own cache (swapped in for its runs), so alternating helps neither. It prints the
process CPU time (all threads) and wall time of each engine, per set-up and in total, the ratio, and the
dev accuracy of both. Target (issue 13): the frontier sweep's CPU time at least halved.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/frontier_sweep.py [--train-size 500]
        [--random-batches] [--seed 0]
"""

import argparse
import dataclasses
import time

from freezelab import cache, experiment, grids


def timed(point, settings):
    cpu, wall = time.process_time(), time.perf_counter()
    record = experiment.run_point(point, settings)
    return time.process_time() - cpu, time.perf_counter() - wall, record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=500)
    parser.add_argument("--dev-size", type=int, default=None, help="default: the whole SST-2 dev set, as shipped")
    parser.add_argument("--sts-dev-size", type=int, default=None, help="default: all 1,500 pairs, as shipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-batches", action="store_true", help="after: keep random batches")
    args = parser.parse_args()
    points = grids.frontier_points(seeds=(args.seed,), train_size=args.train_size)
    after = dataclasses.replace(grids.PRESETS["frontier"][1], dev_size=args.dev_size, sts_dev_size=args.sts_dev_size,
                                group_by_length=not args.random_batches)
    before = dataclasses.replace(after, group_by_length=False)
    stores = {"before": cache.Store(), "after": cache.Store()}
    totals = {"before": [0.0, 0.0], "after": [0.0, 0.0]}
    print(f"frontier grid: {len(points)} set-ups, seed {args.seed}, {args.train_size} training sentences, "
          f"dev {args.dev_size or 'all'}, STS-B pairs {args.sts_dev_size or 'all'}; after: cache kept"
          f"{'' if args.random_batches else ', batches grouped by length'}\n")
    print(f"{'set-up':52} {'CPU s before':>12} {'after':>7} {'ratio':>6}  {'dev before':>10} {'after':>6}")
    for point in points:
        row = {}
        for name, settings in (("before", before), ("after", after)):
            cache.STORE = stores[name]
            if name == "before":
                cache.STORE.clear()
            cpu, wall, record = timed(point, settings)
            totals[name][0] += cpu
            totals[name][1] += wall
            row[name] = (cpu, record.dev_metric)
        print(f"{grids.describe(point):52} {row['before'][0]:12.1f} {row['after'][0]:7.1f} "
              f"{row['before'][0] / row['after'][0]:5.2f}x  {row['before'][1]:10.3f} {row['after'][1]:6.3f}",
              flush=True)
    (cpu_b, wall_b), (cpu_a, wall_a) = totals["before"], totals["after"]
    print(f"\ntotal CPU time: before {cpu_b:.0f} s, after {cpu_a:.0f} s: {cpu_b / cpu_a:.2f}x less "
          f"(target >= 2x) | wall time: before {wall_b:.0f} s, after {wall_a:.0f} s: {wall_b / wall_a:.2f}x")


if __name__ == "__main__":
    main()
