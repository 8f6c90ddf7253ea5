"""Simulate a class on one machine: N students' kernels sharing one class sweep on PostgreSQL.

Each worker is a separate process (forked, so 30 of them start in a second) that joins the class with rehearsal
runs of a fixed duration: the queue and the database are measured, not the training. For each N it prints
runs per minute (and as a share of what N workers could do with zero overhead), the queue's overhead per run
(worker-seconds per run beyond the run itself), CPU seconds per run spent by the workers and by the database
server, the two numbers that must be 0: duplicates (a grid point finished twice) and lost runs (a point
never finished), and the most database sessions the class held at once (what max_connections must allow). Where the share falls while the database's CPU per run grows, the database is the limit.

    source .ci/postgres   # or any PostgreSQL the teacher role of FREEZELAB_TEST_POSTGRES may create databases on
    python benchmarks/class_mode.py --workers 1,2,5,10,20,30 --runs-per-worker 6 --run-seconds 1
"""

import argparse
import multiprocessing
import os
import resource
import threading
import time
import uuid

import sqlalchemy
from optuna.trial import TrialState

from freezelab import classroom, grids, sweeps


def postgres_cpu() -> dict[str, float]:
    """CPU seconds of every postgres process on this machine (server and backends), by pid, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() != "postgres":
                    continue
        except OSError:  # gone meanwhile
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


class DatabaseCPU(threading.Thread):
    """Samples the database's CPU while a simulation runs: a backend lives only as long as its worker, so
    reading /proc once at the end would miss the backends that are gone (and the last 0.1 s of each)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_values, self.last, self.stopping = postgres_cpu(), {}, threading.Event()

    def run(self):
        while not self.stopping.wait(0.1):
            self.last.update(postgres_cpu())

    def stop(self) -> float:
        self.stopping.set()
        self.join()
        self.last.update(postgres_cpu())
        return sum(value - self.start_values.get(pid, 0.0) for pid, value in self.last.items())


class Connections(threading.Thread):
    """Samples how many sessions the class's database has (pg_stat_activity), to find the peak a class needs:
    the number the server's max_connections must leave room for."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.engine = sqlalchemy.create_engine(classroom.normalize(url), pool_size=1)
        self.peak, self.stopping = 0, threading.Event()

    def run(self):
        with self.engine.connect() as connection:
            while not self.stopping.wait(0.05):
                now = connection.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                                 "current_database() AND pid <> pg_backend_pid()").scalar()
                self.peak = max(self.peak, now)
                connection.rollback()

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        self.engine.dispose()
        return self.peak


def work(name, url, student, seconds):
    sweeps.run_sweep(name, classroom.class_url(url, name), run=classroom.rehearsal(seconds), progress=False,
                     log=lambda *a: None, worker=student)


def simulate(base_url: str, workers: int, runs: int, seconds: float) -> dict:
    database = f"freezelab_bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(classroom.normalize(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{database}"')
    url = f"{base_url.rsplit('/', 1)[0]}/{database}"
    try:
        points = grids.grid(["head"], [1e-3], [100], list(range(runs)))
        classroom.create_class("bench", url, points, grids.SweepSettings(probes=False))
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=work, args=("bench", url, f"student-{i}", seconds)) for i in range(workers)]
        cpu_before, database_cpu, sessions = resource.getrusage(resource.RUSAGE_CHILDREN), DatabaseCPU(), Connections(url)
        database_cpu.start()
        sessions.start()
        started = time.perf_counter()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        wall = time.perf_counter() - started
        cpu_after, db_seconds, peak = resource.getrusage(resource.RUSAGE_CHILDREN), database_cpu.stop(), sessions.stop()
        trials = classroom._study("bench", url).get_trials(deepcopy=False)
        done = [sweeps._key(t.user_attrs["point"], grids.SweepSettings()) for t in trials
                if t.state == TrialState.COMPLETE]
        expected = {sweeps._key(p, grids.SweepSettings()) for p in points}
        worker_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        return {"workers": workers, "runs": runs, "wall_s": wall, "runs_per_min": 60 * len(done) / wall,
                "share_of_ideal": (len(done) * seconds) / (wall * workers),
                "overhead_per_run_s": wall * workers / max(len(done), 1) - seconds,
                "worker_cpu_per_run_s": worker_cpu / max(len(done), 1),
                "db_cpu_per_run_s": db_seconds / max(len(done), 1),
                "cores_busy": (worker_cpu + db_seconds) / wall, "db_cores_busy": db_seconds / wall,
                "duplicates": len(done) - len(set(done)), "lost": len(expected - set(done)), "connections": peak}
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{database}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("FREEZELAB_TEST_POSTGRES"),
                        help="a PostgreSQL address whose role may create databases (default: FREEZELAB_TEST_POSTGRES)")
    parser.add_argument("--workers", default="1,2,5,10,20,30")
    parser.add_argument("--runs-per-worker", type=int, default=6)
    parser.add_argument("--run-seconds", type=float, default=1.0)
    args = parser.parse_args()
    if not args.url:
        parser.error("no PostgreSQL: pass --url or `source .ci/postgres` first")
    print(f"rehearsal runs of {args.run_seconds:g} s, {args.runs_per_worker} per worker, on {sweeps.masked(args.url)}; "
          f"{os.cpu_count()} CPU cores for workers and database together")
    header = ("workers", "runs", "wall s", "runs/min", "of ideal", "overhead/run s", "worker CPU/run s",
              "db CPU/run s", "cores busy (db)", "duplicates", "lost", "peak connections")
    print(" | ".join(header))
    for workers in (int(n) for n in args.workers.split(",")):
        r = simulate(args.url, workers, workers * args.runs_per_worker, args.run_seconds)
        print(f"{r['workers']:>7} | {r['runs']:>4} | {r['wall_s']:6.1f} | {r['runs_per_min']:8.1f} | "
              f"{r['share_of_ideal']:8.0%} | {r['overhead_per_run_s']:14.3f} | {r['worker_cpu_per_run_s']:16.3f} | "
              f"{r['db_cpu_per_run_s']:12.3f} | {r['cores_busy']:5.2f} ({r['db_cores_busy']:.2f}) | "
              f"{r['duplicates']:>10} | {r['lost']:>4} | {r['connections']:>16}", flush=True)
    # Where the database becomes the limit: when it needs a whole core. Real students' runs take minutes, on
    # their own machines, so only the database's share is shared.
    per_run = r["db_cpu_per_run_s"]
    print(f"at {r['workers']} workers the database spent {per_run:.3f} CPU s per run: one database core serves about "
          f"{60 / per_run:,.0f} runs per minute: as many students, each finishing a run a minute, before the "
          f"database, not the students, sets the pace")
    # PostgreSQL keeps superuser_reserved_connections (3 by default) of max_connections for administrators
    print(f"at {r['workers']} workers the class held at most {r['connections']} sessions at once "
          f"({r['connections'] / r['workers']:.1f} per worker): the server's max_connections must be at least "
          f"{r['connections']} + the teacher's notebook (about 2) + superuser_reserved_connections (3 by default)")


if __name__ == "__main__":
    main()
