"""Command line: `python -m freezelab sweep ...` to run (or resume) a sweep, `python -m freezelab export ...`,
`python -m freezelab advise ...` (which set-up to train on your data), and
`python -m freezelab class create|grant|status|work|export|requeue` for class mode.

For: instructors precomputing the course's results (`--preset frontier`,
`--preset data-size`: the runs behind `freezelab/precomputed/*.json`), anyone resuming
a killed sweep (run the same command again), and a teacher running a class sweep
on PostgreSQL, and practitioners asking which set-up to train on their own data. Not for: anything the notebooks do interactively (they call
`freezelab.sweeps.run_grid` and `freezelab.classroom.join`).
"""

import argparse
import json
import os
import sys

from . import grids, sweeps
from .config import CPU_MICRO_BATCH


def _floats(text):
    return [float(x) for x in text.split(",")]


def _ints(text):
    return [int(x) for x in text.split(",")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m freezelab")
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="create (or resume) a sweep and work through its queue")
    sweep.add_argument("--name", required=True)
    sweep.add_argument("--storage", default="sqlite:///freezelab-sweep.db",
                       help="Optuna storage URL (SQLite file, or PostgreSQL to share across machines)")
    sweep.add_argument("--preset", choices=sorted(grids.COURSE_SWEEPS),
                       help="the course's grid and settings (ignores --plans ... --no-probes)")
    sweep.add_argument("--plans", default="head,feature,top2,full", help=f"from: {','.join(grids.PLANS)}")
    sweep.add_argument("--lrs", type=_floats, default=[2e-5, 1e-4, 5e-4])
    sweep.add_argument("--train-sizes", type=_ints, default=[2000])
    sweep.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    sweep.add_argument("--pooling", choices=["cls", "mean"], default="cls")
    sweep.add_argument("--task", default="sst2")
    sweep.add_argument("--checkpoint", default="minilm-l6")
    sweep.add_argument("--epochs", type=int, help="passes over the training data (default: TrainConfig's)")
    sweep.add_argument("--dev-size", type=int, help="dev sentences each run is scored on (default: the whole split)")
    sweep.add_argument("--no-probes", action="store_true", help="skip the retention probes")
    sweep.add_argument("--whole-batches", action="store_true",
                       help="run each batch at once, on a CPU too (the default, 'auto', cuts batches into length-"
                            f"sorted micro-batches of {CPU_MICRO_BATCH} on a CPU only); how the course's shipped files "
                            "were made")
    sweep.add_argument("--group-by-length", action="store_true",
                       help="batches of sentences of similar length: about 2x faster, but see TrainConfig: at high "
                            "learning rates on small sets it changed results")
    sweep.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's heartbeats")
    sweep.add_argument("--grace", type=int, default=120, help="seconds without a heartbeat before a run is retried")
    sweep.add_argument("--finished", help="exported sweeps with the same settings (comma-separated files): their "
                                          "runs of this grid's points count as done (grow a shipped grid, or "
                                          "gather one from several, without redoing a run)")
    export = commands.add_parser("export", help="write a sweep's finished runs to a small JSON file")
    export.add_argument("--name", required=True)
    export.add_argument("--storage", default="sqlite:///freezelab-sweep.db")
    export.add_argument("--out", required=True)
    commands.add_parser("claims", help="the course's claims ledger, each claim checked against the shipped results")
    layers = commands.add_parser("probe-layers", help="linear probes on every layer of the frozen encoder, per seed, "
                                                      "to a JSON file (results.load_probes reads it)")
    layers.add_argument("--task", default="word-order")
    layers.add_argument("--checkpoint", default="minilm-l6")
    layers.add_argument("--train-size", type=int, default=2000)
    layers.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    layers.add_argument("--out", required=True)
    advice = commands.add_parser("advise", help="which set-up to train on a course task or your own CSV/TSV: "
                                                "predicted score and retention of each, and the advisor's own error")
    advice.add_argument("task", nargs="?", help="a course task (sst2, subj, cola, word-order); or give --path")
    advice.add_argument("--path", help="your own CSV/TSV (a header line names the columns, or give positions)")
    advice.add_argument("--text-column", help="the text's column: a name from the header line, or a position (0, 1...)")
    advice.add_argument("--label-column", help="the label's column: a name, or a position")
    advice.add_argument("--train-size", type=int, help="train on this many sentences (a seeded subset)")
    advice.add_argument("--retention-floor", type=float, help="the share of STS-B a set-up must keep (0.8: 80%%)")
    advice.add_argument("--minutes", type=float, help="the most predicted training minutes")
    advice.add_argument("--memory-mb", type=float, help="the most predicted peak memory, in MB")
    advice.add_argument("--out", help="write the recommended set-up (plan and training settings) to this JSON file")
    advice.add_argument("--reference-signals", metavar="OUT",
                        help="instead: read the reference tasks' signals and write them to OUT (what "
                             "freezelab/precomputed/advisor/signals.json holds)")
    advice.add_argument("--reference-memory", metavar="OUT",
                        help="instead: measure each set-up's peak memory, each in a fresh process, and write them "
                             "to OUT (what freezelab/precomputed/advisor/memory.json holds)")
    advice.add_argument("--measure-memory", metavar="SETUP", help=argparse.SUPPRESS)  # one fresh process's part
    room = commands.add_parser("class", help="class mode: one sweep on a shared PostgreSQL, filled by a whole class")
    actions = room.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create the class's sweep (the teacher's address: it owns the tables)")
    create.add_argument("--name", required=True)
    create.add_argument("--preset", choices=sorted(grids.COURSE_SWEEPS), required=True)
    create.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    grant = actions.add_parser("grant", help="let the students' role take and finish the class's queued runs, "
                                             "nothing more (docs/class_mode.md: who may do what)")
    grant.add_argument("--name", required=True)
    grant.add_argument("--role", required=True, help="the students' group role (or a shared login role)")
    show = actions.add_parser("status", help="runs done / running / queued / re-issued, and runs per student")
    show.add_argument("--name", required=True)
    work = actions.add_parser("work", help="work through queued runs (what a student's notebook cell does)")
    work.add_argument("--name", required=True)
    work.add_argument("--minutes", type=float, default=None)
    work.add_argument("--runs", type=int, default=None)
    work.add_argument("--rehearse", type=float, metavar="SECONDS",
                      help="stand-in runs that only wait SECONDS: try the database and roles before the lesson")
    out = actions.add_parser("export", help="write the class's finished runs to a file notebooks 04-06 read")
    out.add_argument("--name", required=True)
    out.add_argument("--out", required=True)
    again = actions.add_parser("requeue", help="queue again the runs that failed past their retries (status names them)")
    again.add_argument("--name", required=True)
    for action in (create, grant, show, work, out, again):
        action.add_argument("--url", help="the class database's address (default: FREEZELAB_CLASS_DB, or a hidden "
                                          "prompt; an address with a password here shows in the process list and "
                                          "the shell's history, so prefer those)")
    args = parser.parse_args(argv)
    try:
        _run(args, parser)
    except Exception as error:
        if not _sqlite_busy(error):
            raise
        where = getattr(args, "storage", None) or getattr(args, "url", None)
        what = f"the SQLite file of {sweeps.masked(where)}" if where else "the sweep's SQLite file"
        parser.exit(1, f"{parser.prog}: error: {what} stayed locked by "
                       "another process for longer than SQLite waits (5 s). A worker paused in the middle of a "
                       "write (Ctrl-Z, a suspended job) keeps it locked: resume or end that worker, then run this "
                       "command again (finished runs are kept). For many workers, or workers on several machines, "
                       "store the sweep on PostgreSQL.\n")


def _column(text):
    return int(text) if text is not None and text.isdigit() else text


def _advise(args, parser) -> None:
    from . import advisor
    from .data import load_task

    if args.measure_memory:
        print(advisor.measure_memory(args.measure_memory))
        return
    if args.reference_memory:
        import subprocess

        peaks = {}
        for point in advisor.setups():
            label = advisor.describe_setup(point)
            done = subprocess.run([sys.executable, "-m", "freezelab", "advise", "--measure-memory", label],
                                  capture_output=True, text=True, check=True)
            peaks[label] = round(float(done.stdout.strip().splitlines()[-1]), 1)
            print(f"{label}: {peaks[label]:,.0f} MB", flush=True)
        with open(args.reference_memory, "w") as handle:
            json.dump({"freezelab_advisor_memory": 1, "sentences": 256, "peak_mb": peaks}, handle, indent=1)
        return
    if args.reference_signals:
        rows = []
        for task in grids.ADVISOR_TASKS:
            rows.append(advisor.signals(load_task(task), task).to_dict())
            print(rows[-1], flush=True)
        with open(args.reference_signals, "w") as handle:
            json.dump({"freezelab_advisor_signals": 1, "signals": rows}, handle, indent=1)
        return
    if (args.task is None) == (args.path is None):
        parser.error("advise needs a course task or --path (with --text-column and --label-column), not both")
    try:
        if args.path:
            data = load_task(path=args.path, text_column=_column(args.text_column),
                             label_column=_column(args.label_column), train_size=args.train_size)
            name = args.path
        else:
            data, name = args.task, None
        advice = advisor.advise(data, task=name, train_size=args.train_size if args.task else None,
                                retention_floor=args.retention_floor, minutes=args.minutes, memory_mb=args.memory_mb)
    except ValueError as error:
        parser.error(str(error))
    print(advice)
    if args.out and advice.recommended is not None:
        with open(args.out, "w") as handle:
            json.dump(advice.recommended.to_dict(), handle, indent=1)
        print(f"wrote the recommended set-up to {args.out}")


def _sqlite_busy(error: BaseException) -> bool:
    """Whether an error is SQLite's 'database is locked' by another connection (SQLITE_BUSY, extended codes
    included), however SQLAlchemy wrapped it."""
    import sqlite3

    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.OperationalError) and \
        (getattr(original, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _run(args, parser) -> None:
    if args.command == "class":
        _class(args, parser)
    elif args.command == "sweep":
        if args.preset:
            make_points, settings = grids.COURSE_SWEEPS[args.preset]
            points = make_points(seeds=args.seeds)
        else:
            options = {"pooling": "mean"} if args.pooling == "mean" else {}
            try:
                points = grids.grid(args.plans.split(","), args.lrs, args.train_sizes, args.seeds, **options)
            except ValueError as error:
                parser.error(str(error))
            given = {k: v for k, v in (("epochs", args.epochs), ("dev_size", args.dev_size)) if v is not None}
            settings = grids.SweepSettings(task=args.task, checkpoint=args.checkpoint, probes=not args.no_probes,
                                           **given)
        if args.group_by_length:
            settings = settings.replace(group_by_length=True)
        if args.whole_batches:
            settings = settings.replace(micro_batch_size=None)
        options = {"heartbeat": args.heartbeat, "grace": args.grace}
        finished = None
        if args.finished:
            try:
                finished = sweeps.merge_exports(args.finished.split(","))
            except ValueError as error:
                parser.error(str(error))
        try:
            sweeps.create_sweep(args.name, args.storage, points, settings, finished=finished, **options)
        except ValueError as error:
            parser.error(str(error))
        print(f"sweep {args.name!r}: {len(points)} runs in {sweeps.masked(args.storage)}", flush=True)
        done = sweeps.run_sweep(args.name, args.storage, progress=sys.stderr.isatty(), **options)
        print(f"this worker finished {done} run(s)")
    elif args.command == "claims":
        _claims()
    elif args.command == "advise":
        _advise(args, parser)
    elif args.command == "probe-layers":
        _probe_layers(args)
    else:
        count = sweeps.export(args.name, args.storage, args.out)
        print(f"wrote {count} runs to {args.out}")


def _probe_layers(args) -> None:
    """Each seed's training subset probed on the same dev split; rows written as the run goes (resumable by
    seed: seeds already in --out are kept and skipped)."""
    from . import probes
    from .data import load_task
    from .models import load_model

    done = json.load(open(args.out)) if os.path.exists(args.out) else None
    rows = done["rows"] if done and done["task"] == args.task and done["checkpoint"] == args.checkpoint else []
    model, tokenizer = load_model(args.checkpoint)
    for seed in args.seeds:
        if any(row["seed"] == seed for row in rows):
            continue
        data = load_task(args.task, train_size=args.train_size, seed=seed)
        table = probes.layer_probes(model, tokenizer, data)
        rows += [{"seed": seed, **row} for row in table.to_dict(orient="records")]
        with open(args.out, "w") as handle:
            json.dump({"freezelab_probes": 1, "task": args.task, "checkpoint": args.checkpoint,
                       "train_size": args.train_size, "dev_size": len(data["dev"]), "rows": rows}, handle, indent=1)
        print(f"seed {seed}: " + ", ".join(f"{r['vector']} {r['dev accuracy']:.3f}" for r in table.to_dict("records")),
              flush=True)


def _claims() -> None:
    """Print the ledger; exit 1 when a claim does not hold."""
    from . import claims

    table = claims.check()
    for row in table.to_dict(orient="records"):
        print(f"{'holds' if row['holds'] is True else 'FAILS':5}  {row['id']:34}  {row['text']}")
    failing = int((table["holds"] != True).sum())  # noqa: E712 (an error message is a failure too)
    print(f"{len(table) - failing} of {len(table)} claims hold on the shipped results "
          "(beyond the spread and about equal: freezelab.results.SPREAD_RULE)")
    if failing:
        raise SystemExit(1)


def _class(args, parser) -> None:
    from . import classroom

    try:
        url = classroom.database_url(args.url)
        if args.action == "create":
            make_points, settings = grids.COURSE_SWEEPS[args.preset]
            count = classroom.create_class(args.name, url, make_points(seeds=args.seeds), settings)
            print(f"class sweep {args.name!r}: {count} runs in {sweeps.masked(url)}. Next: "
                  f"`python -m freezelab class grant --name {args.name} --role <the students' group role>`; students join with "
                  f"fl.classroom.join({args.name!r}) in notebook 04, which asks for their address in a hidden prompt")
        elif args.action == "grant":
            classroom.grant_students(args.name, url, args.role)
            print(f"role {args.role!r} may now take and finish the queued runs of class {args.name!r} in "
                  f"{sweeps.masked(url)}, and nothing more")
        elif args.action == "status":
            now = classroom.status(args.name, url)
            print(f"{args.name}: {now['done']}/{now['runs']} done, {now['running']} running, {now['queued']} queued, "
                  f"{now['reissued']} re-issued")
            print(now["per_student"].to_string())
            for line in now["missing"]:
                print(f"not done, and not queued (`class requeue` queues it again): {line}")
        elif args.action == "requeue":
            print(f"{classroom.requeue(args.name, url)} run(s) of class {args.name!r} queued again")
        elif args.action == "export":
            count = classroom.export(args.name, url, args.out)
            print(f"wrote {count} runs of class {args.name!r} to {args.out}")
        else:
            run = None if args.rehearse is None else classroom.rehearsal(args.rehearse)
            classroom.join(args.name, url, minutes=args.minutes, runs=args.runs, progress=sys.stderr.isatty(), run=run)
    except (ConnectionError, ValueError, KeyError, OSError) as error:  # ClassConnectionError is a ConnectionError
        parser.exit(2, f"error: {error}\n")
    except Exception as error:  # a database's refusal, however Optuna or SQLAlchemy wrapped it: one line, no traceback
        import sqlalchemy

        cause = error
        while cause is not None and not isinstance(cause, sqlalchemy.exc.DBAPIError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        parser.exit(2, f"error: {classroom._refused(cause, getattr(args, 'url', None) or classroom.ENV, args.action)}\n")


if __name__ == "__main__":
    main()
