"""Benchmark: the whole course in quick mode, as a student (or CI) runs it.

Executes every notebook top to bottom in a fresh kernel, one at a time, and
prints each one's wall time and peak memory (the largest resident set of the
kernel and its helpers, as `/usr/bin/time -v` reports it: both read the
children's rusage), then the total. Targets (issue 6): the whole course
<= 15 minutes, every notebook <= 2 GB (Binder's limit).

Finished runs of the live grids are cached in notebooks/runs/; this script
runs each notebook in a scratch copy of the folder, so every grid trains.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/course.py [--full] [notebooks/04_*.ipynb ...]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_TOTAL_MIN, TARGET_PEAK_MB = 15, 2048


def run_one(path: str) -> None:
    """Child mode: execute one notebook here, then print its own rusage of the kernel as JSON."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    seconds = time.perf_counter() - started
    kernel = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux -> MiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": max(kernel, own)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--full", action="store_true", help="full-size runs instead of quick mode")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one)

    notebooks = args.notebooks or sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    env["FREEZELAB_QUICK"] = "0" if args.full else "1"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "notebooks"
        shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("runs", "naive-demo", ".ipynb_checkpoints"))
        for path in notebooks:
            copy = work / Path(path).name
            done = subprocess.run([sys.executable, __file__, "--one", str(copy)], env=env, capture_output=True,
                                  text=True)
            if done.returncode != 0:
                sys.exit(f"{Path(path).name} failed:\n{done.stderr[-3000:]}")
            row = {"notebook": Path(path).name, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"{row['notebook']:40s} {row['seconds'] / 60:5.1f} min   peak {row['peak_mb']:6.0f} MB", flush=True)
    total = sum(r["seconds"] for r in rows) / 60
    worst = max(r["peak_mb"] for r in rows)
    mode = "full size" if args.full else "quick mode"
    print(f"\n{len(rows)} notebooks, {mode}: {total:.1f} min in all (target <= {TARGET_TOTAL_MIN} min: "
          f"{'met' if total <= TARGET_TOTAL_MIN else 'MISSED'}, ratio {total / TARGET_TOTAL_MIN:.2f}); "
          f"largest peak {worst:.0f} MB (target <= {TARGET_PEAK_MB} MB: "
          f"{'met' if worst <= TARGET_PEAK_MB else 'MISSED'}, ratio {worst / TARGET_PEAK_MB:.2f})")


if __name__ == "__main__":
    main()
