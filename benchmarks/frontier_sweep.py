"""Benchmark: the CPU time of the course's frontier sweep, the engine before issue 13 against this one, same grid.

Every set-up of the shipped frontier (`grids.frontier_points`, 17 set-ups; one seed, and by default a
smaller train size, dev set and probe set so that it finishes in minutes on a laptop) runs through the
function each sweep worker calls for a point, in two long-lived worker processes:

- before: the package as it was at `--before` (a git commit; default: the last commit before issue 13's
  engine work), unpacked into a scratch folder, running `sweeps.run_point`;
- after: this checkout, running `experiment.run_point`.

The two workers take the points in turns, so both see the same machine; each keeps what it computed in
earlier runs, as a real worker does. Printed per set-up and in total: the worker's CPU time (all threads)
for the run, the ratio, and the dev accuracy of each. Target (issue 13): CPU time at least halved.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/frontier_sweep.py [--train-size 500]
        [--dev-size 300] [--sts-dev-size 500] [--seed 0] [--group-by-length] [--before 5fc92dc]
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
settings = json.loads(sys.argv[1])
try:
    from freezelab import experiment, grids
    def run(point):
        return experiment.run_point(point, grids.SweepSettings(**settings)).to_dict()
except ImportError:  # the package before issue 13: no grids, no experiment
    from freezelab import sweeps
    settings.pop("group_by_length", None)
    def run(point):
        return sweeps.run_point(point, sweeps.SweepSettings(**settings))
for line in sys.stdin:
    point = json.loads(line)
    cpu, wall = time.process_time(), time.perf_counter()
    record = run(point)
    print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                      "dev": record["dev_metric"]}), flush=True)
"""


def worker(folder: Path, settings: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    if env.get("FREEZELAB_DATA_DIR"):  # the workers run in other folders
        env["FREEZELAB_DATA_DIR"] = str(Path(env["FREEZELAB_DATA_DIR"]).resolve())
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings)], cwd=folder, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def ask(process: subprocess.Popen, point: dict) -> dict:
    process.stdin.write(json.dumps(point) + "\n")
    process.stdin.flush()
    line = process.stdout.readline()
    if not line:
        raise RuntimeError("a worker died; its traceback is above")
    return json.loads(line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-size", type=int, default=500)
    parser.add_argument("--dev-size", type=int, default=300, help="0: the whole SST-2 dev set, as shipped")
    parser.add_argument("--sts-dev-size", type=int, default=500, help="0: all 1,500 pairs, as shipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--setups", type=int, default=0, help="only the first N set-ups (0: all 17)")
    parser.add_argument("--group-by-length", action="store_true", help="after: batches grouped by length")
    parser.add_argument("--before", default="5fc92dc", help="git commit of the engine to compare with")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from freezelab import grids

    points = grids.frontier_points(seeds=(args.seed,), train_size=args.train_size)
    points = points[:args.setups] if args.setups else points
    settings = {"dev_size": args.dev_size or None, "sts_dev_size": args.sts_dev_size or None,
                "group_by_length": args.group_by_length}
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "before.tar"
        subprocess.run(["git", "archive", "-o", archive, args.before, "freezelab"], cwd=ROOT, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        workers = {"before": worker(Path(scratch), settings), "after": worker(ROOT, settings)}
        print(f"frontier grid: {len(points)} set-ups, seed {args.seed}, {args.train_size} training sentences, "
              f"dev {args.dev_size or 'all'}, STS-B pairs {args.sts_dev_size or 'all'}; before: {args.before}; "
              f"after: this checkout{', batches grouped by length' if args.group_by_length else ''}\n")
        print(f"{'set-up':52} {'CPU s before':>12} {'after':>7} {'ratio':>6}  {'dev before':>10} {'after':>6}")
        totals = {"before": [0.0, 0.0], "after": [0.0, 0.0]}
        for i, point in enumerate(points):
            names = ("before", "after") if i % 2 == 0 else ("after", "before")
            row = {name: ask(workers[name], point) for name in names}
            for name in names:
                totals[name][0] += row[name]["cpu"]
                totals[name][1] += row[name]["wall"]
            print(f"{grids.describe(point):52} {row['before']['cpu']:12.1f} {row['after']['cpu']:7.1f} "
                  f"{row['before']['cpu'] / row['after']['cpu']:5.2f}x  {row['before']['dev']:10.3f} "
                  f"{row['after']['dev']:6.3f}", flush=True)
        for process in workers.values():
            process.stdin.close()
            process.wait()
    (cpu_b, wall_b), (cpu_a, wall_a) = totals["before"], totals["after"]
    print(f"\ntotal CPU time: before {cpu_b:.0f} s, after {cpu_a:.0f} s: {cpu_b / cpu_a:.2f}x less (target >= 2x)"
          f" | wall time: before {wall_b:.0f} s, after {wall_a:.0f} s: {wall_b / wall_a:.2f}x")


if __name__ == "__main__":
    main()
