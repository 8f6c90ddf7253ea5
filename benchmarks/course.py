"""Benchmark: the whole course at one run size, as a student (or CI) runs it.

Executes every notebook top to bottom in a fresh kernel, one at a time, and
prints each one's wall time and peak memory (the largest resident set of the
kernel and its helpers, as `/usr/bin/time -v` reports it: both read the
children's rusage), the largest anonymous memory of the kernel (RssAnon, sampled
every 0.1 s: the resident set also counts the code pages of torch's libraries,
which a memory limit such as Binder's reclaims, while anonymous memory it cannot
without swap), on a GPU also the largest GPU memory in use (sampled from
nvidia-smi every half second), then the total. Targets (issue 6): the whole
course in quick mode <= 15 minutes, every notebook <= 2 GB (Binder's limit); issue 13: every kernel
<= 1.3 GB, leaving Binder's JupyterLab server room. --cells N also prints, for each notebook, the N cells whose
sampled peak rose most above what the kernel held before them.

Finished runs of the live grids are cached in notebooks/runs/; this script
runs each notebook in a scratch copy of the folder, so every grid trains.

    FREEZELAB_DATA_DIR=../shared/data python benchmarks/course.py [--size quick|full|smoke]
        [--memory lean|fast] [--checkpoint bert-base-uncased] [--cells 3] [notebooks/04_*.ipynb ...]

Without --size or --memory, the notebooks choose as they do for a student: quick on a CPU, full size on a GPU;
lean memory where a kernel may use under 6 GB, as on Binder. The README's figures are `--memory lean`.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_TOTAL_MIN, TARGET_PEAK_MB = 15, 2048
TARGET_BINDER_MB = 1300  # issue 13: Binder's 2 GB holds the JupyterLab server beside the kernel


def run_one(path: str) -> None:
    """Child mode: execute one notebook here, cell by cell, then print its own rusage of the kernel as JSON,
    with each code cell's sampled peaks (resident and anonymous MiB), its seconds and its first line."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    gpu, memory = GpuPeak(), KernelMemory()
    client = NotebookClient(notebook, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(path).parent)}})
    cells = []
    started = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            before = memory.children_mb()[0]
            memory.cell = {"index": index, "line": (cell.source.strip().splitlines() or [""])[0][:60],
                         "before_mb": before, "rss_mb": before, "anon_mb": 0.0}
            began = time.perf_counter()
            client.execute_cell(cell, index)
            time.sleep(0.15)  # one more sample inside the cell
            cells.append({**memory.cell, "seconds": time.perf_counter() - began})
    seconds = time.perf_counter() - started
    kernel = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux -> MiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": max(kernel, own), "anon_peak_mb": memory.stop(),
                      "gpu_peak_mb": gpu.stop(), "cells": cells}))


class KernelMemory:
    """The largest anonymous resident memory (MiB) of this process's children (the kernel), sampled; also the
    largest resident and anonymous memory while the cell in `self.cell` runs."""

    def __init__(self, every: float = 0.1):
        self.peak, self.done, self.cell = 0.0, threading.Event(), None
        self.thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
        self.thread.start()

    @staticmethod
    def children_mb() -> tuple[float, float]:
        """(resident, anonymous) MiB of this process's children, summed."""
        rss = anon = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                    continue
                status = (stat.parent / "status").read_text()
            except (OSError, IndexError, ValueError):  # a process that ended while read
                continue
            rss += int(status.split("VmRSS:")[1].split()[0]) / 1024
            anon += int(status.split("RssAnon:")[1].split()[0]) / 1024
        return rss, anon

    def _watch(self, every: float) -> None:
        while not self.done.wait(every):
            rss, anon = self.children_mb()
            self.peak = max(self.peak, anon)
            cell = self.cell
            if cell is not None:
                cell["rss_mb"], cell["anon_mb"] = max(cell["rss_mb"], rss), max(cell["anon_mb"], anon)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak


class GpuPeak:
    """The largest GPU memory in use (MiB, all processes: only the kernel runs) while a notebook runs; None
    without nvidia-smi. Sampled, because the kit resets torch's own peak counter at every fine-tune."""

    def __init__(self, every: float = 0.5):
        self.peak, self.done = None, threading.Event()
        if shutil.which("nvidia-smi"):
            self.thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
            self.thread.start()

    def _watch(self, every: float) -> None:
        while not self.done.wait(every):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            if out:
                self.peak = max(self.peak or 0.0, max(float(v) for v in out))

    def stop(self) -> float | None:
        self.done.set()
        return self.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="*")
    parser.add_argument("--size", choices=["smoke", "quick", "full"],
                        help="run size (default: what the notebooks choose, quick on a CPU, full on a GPU)")
    parser.add_argument("--checkpoint", help="FREEZELAB_CHECKPOINT for the notebooks (default: the course model)")
    parser.add_argument("--memory", choices=["lean", "fast"],
                        help="FREEZELAB_LEAN for the notebooks (default: what they choose, lean under 6 GB as on "
                             "Binder; the README's figures are lean)")
    parser.add_argument("--cells", type=int, default=0, metavar="N",
                        help="also print the N code cells of each notebook whose peak rose most above the memory held before it")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one)

    notebooks = args.notebooks or sorted(str(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    if args.size:
        env["FREEZELAB_SIZE"] = args.size
    if args.checkpoint:
        env["FREEZELAB_CHECKPOINT"] = args.checkpoint
    if args.memory:
        env["FREEZELAB_LEAN"] = "1" if args.memory == "lean" else "0"
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "notebooks"
        shutil.copytree(ROOT / "notebooks", work, ignore=shutil.ignore_patterns("runs", "naive-demo", ".ipynb_checkpoints"))
        for path in notebooks:
            copy = work / Path(path).name
            done = subprocess.run([sys.executable, __file__, "--one", str(copy)], env=env, capture_output=True,
                                  text=True)
            if done.returncode != 0:  # say so, and go on: one broken notebook should not hide the others' figures
                failed.append(Path(path).name)
                print(f"{Path(path).name} FAILED:\n{done.stderr[-3000:]}", flush=True)
                continue
            row = {"notebook": Path(path).name, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            gpu = "" if row["gpu_peak_mb"] is None else f"   GPU peak {row['gpu_peak_mb']:6.0f} MiB"
            print(f"{row['notebook']:40s} {row['seconds'] / 60:5.1f} min   peak {row['peak_mb']:6.0f} MB"
                  f"   anonymous peak {row['anon_peak_mb']:6.0f} MB{gpu}", flush=True)
            for cell in sorted(row["cells"], key=lambda c: c["before_mb"] - c["rss_mb"])[:args.cells]:  # most growth
                print(f"    cell {cell['index']:2d}: {cell['before_mb']:6.0f} MB before, peak {cell['rss_mb']:6.0f} MB "
                      f"(+{cell['rss_mb'] - cell['before_mb']:.0f}), anonymous peak {cell['anon_mb']:6.0f} MB, "
                      f"{cell['seconds']:5.1f} s | {cell['line']}", flush=True)
    if not rows:
        sys.exit(f"every notebook failed: {', '.join(failed)}")
    total = sum(r["seconds"] for r in rows) / 60
    worst = max(r["peak_mb"] for r in rows)
    mode = (f"size {args.size or 'chosen by the runtime'}, checkpoint {args.checkpoint or 'the course model'}, "
            f"memory {args.memory or 'chosen by the runtime'}")
    print(f"\n{len(rows)} notebooks, {mode}: {total:.1f} min in all (target <= {TARGET_TOTAL_MIN} min: "
          f"{'met' if total <= TARGET_TOTAL_MIN else 'MISSED'}, ratio {total / TARGET_TOTAL_MIN:.2f}); "
          f"largest peak {worst:.0f} MB (target <= {TARGET_PEAK_MB} MB: "
          f"{'met' if worst <= TARGET_PEAK_MB else 'MISSED'}, ratio {worst / TARGET_PEAK_MB:.2f}; issue 13's "
          f"<= {TARGET_BINDER_MB} MB: {'met' if worst <= TARGET_BINDER_MB else 'MISSED'}, "
          f"ratio {worst / TARGET_BINDER_MB:.2f}; largest anonymous peak {max(r['anon_peak_mb'] for r in rows):.0f} MB)")
    if failed:
        sys.exit(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
