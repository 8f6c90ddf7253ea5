"""Benchmark: notebook 04's exercise 4 with runs reused point by point, against a store keyed by whole grids.

The exercise grows the live grid twice: add top 4, then a second seed for every set-up. Each step calls
`sweeps.run_grid` on the grown grid, with real runs (`experiment.run_point`, MiniLM-L6 by default, SST-2):

- before: a grid found nothing of an earlier grid (a store keyed by the whole grid's hash, the kit before
  issue 26), so each step trains its whole grid; measured by giving each step a fresh store;
- after: one store for the course, where `run_grid` reuses every run it already holds with the same settings.

Printed per step and in total: runs trained and wall seconds, before and after, and their ratio. The run
size is small by default (a run is mostly model loading and a few steps): the count of runs does not depend on
it, and the seconds scale with it.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/run_reuse.py [--train-size 64] [--checkpoint minilm-l6]
        [--setups 5]
"""

import argparse
import tempfile
import time
from pathlib import Path

import freezelab as fl
from freezelab import grids, sweeps


def exercise_steps(lr: float, n: int, setups: int = 0) -> list[tuple[str, list[dict]]]:
    """The grids notebook 04 runs: its live grid (its first `setups` set-ups; 0: all 5), then exercise 4's two
    changes."""
    live = (grids.grid(["head"], [1e-2], [n], [0], pooling="mean") + grids.grid(["top2"], [lr * 2], [n], [0])
            + grids.grid(["full"], [lr, lr * 5], [n], [0]) + grids.grid(["full"], [lr * 20], [n], [0], warmup=0.0))
    live = live[:setups or len(live)]
    top4 = live + grids.grid(["top4"], [lr], [n], [0])
    seeds = [dict(point, seed=seed) for seed in (0, 1) for point in top4]
    return [("the live grid", live), ("+ top 4", top4), ("+ a second seed", seeds)]


def timed_steps(steps, settings, store) -> list[tuple[int, float]]:
    """(runs trained, seconds) per step; `store(i)` is the storage URL of step i."""
    out = []
    for i, (_, points) in enumerate(steps):
        fl.clear_caches()  # each step starts cold in this process: no frozen-prefix cache from the other phase
        started = time.perf_counter()
        frame = sweeps.run_grid(points, settings, store(i), progress=False, log=lambda line: None)
        out.append((frame.attrs["trained"], time.perf_counter() - started))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--dev-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4, help="the course's lr for full fine-tuning")
    parser.add_argument("--setups", type=int, default=0, help="only the live grid's first N set-ups (0: all 5)")
    args = parser.parse_args(argv)

    settings = grids.SweepSettings(checkpoint=args.checkpoint, epochs=1, dev_size=args.dev_size, probes=False)
    steps = exercise_steps(args.lr, args.train_size, args.setups)
    with tempfile.TemporaryDirectory() as folder:
        before = timed_steps(steps, settings, lambda i: f"sqlite:///{Path(folder) / f'grid-{i}.db'}")
        after = timed_steps(steps, settings, lambda i: f"sqlite:///{Path(folder) / 'course.db'}")

    print(f"notebook 04, exercise 4: {args.checkpoint}, {args.train_size} sentences, 1 epoch, {args.dev_size} dev")
    print(f"{'step':<18}{'points':>7}{'runs before':>13}{'runs after':>12}{'s before':>10}{'s after':>9}{'ratio':>7}")
    for (name, points), (runs_b, s_b), (runs_a, s_a) in zip(steps, before, after):
        print(f"{name:<18}{len(points):>7}{runs_b:>13}{runs_a:>12}{s_b:>10.1f}{s_a:>9.1f}{s_b / max(s_a, 1e-9):>6.1f}x")
    total_b, total_a = sum(s for _, s in before[1:]), sum(s for _, s in after[1:])
    print(f"{'exercise 4 total':<18}{'':>7}{sum(r for r, _ in before[1:]):>13}{sum(r for r, _ in after[1:]):>12}"
          f"{total_b:>10.1f}{total_a:>9.1f}{total_b / max(total_a, 1e-9):>6.1f}x")


if __name__ == "__main__":
    main()
