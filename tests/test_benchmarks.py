"""Specification of the benchmarks: each one runs at its smallest size, finishes and prints its table.

A smoke test only: the figures depend on the machine and are not asserted (each benchmark states its own
targets as ratios against a baseline measured in the same run). The list is the folder's: a new benchmark
without a smallest size here fails `test_every_benchmark_has_a_smoke_run`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TINY = ["--train-size", "16"]

# file -> (its smallest arguments, a line of its table that must be printed)
SMOKE = {
    "class_mode.py": (["--workers", "1", "--runs-per-worker", "1", "--run-seconds", "0.2"], "duplicates"),
    "course.py": (["--size", "smoke", "notebooks/00_start_here.ipynb"], "in all"),
    "frontier_sweep.py": ([*TINY, "--dev-size", "16", "--sts-dev-size", "16", "--setups", "1"], "total CPU time"),
    "frozen_prefix_cache.py": ([*TINY, "--dev-size", "16", "--full-size", "16", "--pairs", "1", "--seeds", "1"],
                               "median ratio"),
    "gpu_path.py": (["--only", "minilm", *TINY, "--dev-size", "16", "--sts-dev-size", "16",
                     "--variants", "fp32, whole batches", "head only"], "variant"),
    "gpu_steps.py": ([*TINY, "--only", "MiniLM-L6"], "ex/s"),
    "lr_range_test.py": (["--seeds", "0", "--steps", "10", "--probe-every", "5", "--probe-pairs", "16"], "grid best"),
    "interpolation_recovery.py": ([*TINY, "--dev-size", "16", "--sts-dev-size", "16", "--seeds", "0", "1",
                                   "--setups", "full:5e-4", "--alphas", "1", "0.5"], "end points"),
    "length_grouping.py": ([*TINY, "--seeds", "0"], "pairs"),
    "memory.py": (TINY, "peak"),
    "memory_levers.py": (["--rounds", "1", "--size", "smoke", "--variants", "2"], "x as is"),
    "picker_update.py": ([], "ratio toggle / build"),
    "reading_time.py": ([], "all"),
    "run_reuse.py": (["--checkpoint", "tiny-random-bert", *TINY, "--dev-size", "16", "--setups", "2"], "exercise 4 total"),
}


def test_every_benchmark_has_a_smoke_run():
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(SMOKE)


def run_benchmark(name: str) -> None:
    arguments, table_line = SMOKE[name]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run([sys.executable, str(BENCHMARKS / name), *arguments], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"{name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert table_line.lower() in run.stdout.lower(), f"{name} printed no table:\n{run.stdout[-2000:]}"


@pytest.mark.parametrize("name", sorted(set(SMOKE) - {"class_mode.py"}))
def test_the_benchmark_runs_at_its_smallest_size_and_prints_its_table(name, offline_data):
    run_benchmark(name)


def test_the_class_benchmark_runs_on_the_test_postgres(postgres_database):
    run_benchmark("class_mode.py")  # it makes databases of its own with the teacher role of FREEZELAB_TEST_POSTGRES
