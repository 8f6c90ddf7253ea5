"""Command line: `python -m freezelab sweep ...` to run (or resume) a sweep, `python -m freezelab export ...`.

For: instructors precomputing the course's results (`--preset frontier`,
`--preset data-size`: the runs behind `freezelab/precomputed/*.json`), and anyone resuming
a killed sweep (run the same command again). Not for: anything the notebooks
do interactively (they call `freezelab.sweeps.run_grid`).
"""

import argparse
import json
import sys

from . import sweeps


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
    sweep.add_argument("--preset", choices=sorted(sweeps.PRESETS),
                       help="the course's grid and settings (ignores --plans ... --no-probes)")
    sweep.add_argument("--plans", default="head,feature,top2,full", help=f"from: {','.join(sweeps.PLANS)}")
    sweep.add_argument("--lrs", type=_floats, default=[2e-5, 1e-4, 5e-4])
    sweep.add_argument("--train-sizes", type=_ints, default=[2000])
    sweep.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    sweep.add_argument("--pooling", choices=["cls", "mean"], default="cls")
    sweep.add_argument("--task", default="sst2")
    sweep.add_argument("--checkpoint", default="minilm-l6")
    sweep.add_argument("--epochs", type=int, default=2)
    sweep.add_argument("--dev-size", type=int, default=None)
    sweep.add_argument("--no-probes", action="store_true", help="skip the retention probes")
    sweep.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's heartbeats")
    sweep.add_argument("--grace", type=int, default=120, help="seconds without a heartbeat before a run is retried")
    sweep.add_argument("--finished", help="an exported sweep with the same settings: its runs of this grid's "
                                          "points count as done (grow a shipped grid without redoing it)")
    export = commands.add_parser("export", help="write a sweep's finished runs to a small JSON file")
    export.add_argument("--name", required=True)
    export.add_argument("--storage", default="sqlite:///freezelab-sweep.db")
    export.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    if args.command == "sweep":
        if args.preset:
            make_points, settings = sweeps.PRESETS[args.preset]
            points = make_points(seeds=args.seeds)
        else:
            options = {"pooling": "mean"} if args.pooling == "mean" else {}
            try:
                points = sweeps.grid(args.plans.split(","), args.lrs, args.train_sizes, args.seeds, **options)
            except ValueError as error:
                parser.error(str(error))
            settings = sweeps.SweepSettings(task=args.task, checkpoint=args.checkpoint, epochs=args.epochs,
                                            dev_size=args.dev_size, probes=not args.no_probes)
        options = {"heartbeat": args.heartbeat, "grace": args.grace}
        finished = None
        if args.finished:
            with open(args.finished) as handle:
                finished = json.load(handle)
        try:
            sweeps.create_sweep(args.name, args.storage, points, settings, finished=finished, **options)
        except ValueError as error:
            parser.error(str(error))
        print(f"sweep {args.name!r}: {len(points)} runs in {args.storage}", flush=True)
        done = sweeps.run_sweep(args.name, args.storage, progress=sys.stderr.isatty(), **options)
        print(f"this worker finished {done} run(s)")
    else:
        count = sweeps.export(args.name, args.storage, args.out)
        print(f"wrote {count} runs to {args.out}")


if __name__ == "__main__":
    main()
