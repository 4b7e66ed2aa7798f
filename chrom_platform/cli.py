"""`chrom`: the platform's own commands (the simulator is `chrom-sim`, the bridge `chrom-bridge`).

chrom import --mapping mapping.yaml --equipment E --recipes R --landing L FILES...
chrom evaluate --seed 7 --units 4 --batches-per-unit 60 --fault-rate 0.25
chrom check-config --profile gcp
chrom dashboards [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chrom_platform.evaluation.sweep import SEVERITIES
from simulator.cli import add_history_arguments, history_size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chrom", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser(
        "evaluate",
        help="backfill a history with faults in a fresh workspace, run the whole pipeline "
        "headless through Dagster and score the verdicts against the simulator's truth",
    )
    add_history_arguments(ev, units=4, batches_per_unit=60, seed=7, fault_rate=0.25)
    ev.add_argument(
        "--process",
        default="mab-capture",
        help="process family the simulator plays (simulator.PROCESSES: mab-capture, fc-capture)",
    )
    ev.add_argument("--workdir", type=Path, help="keep the workspace here (default: a temp dir)")
    ev.add_argument("--json", type=Path, help="also write the full result as JSON to this file")
    ev.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (for CI)")
    ev.add_argument(
        "--sweep",
        action="store_true",
        help="instead: graded faults at each severity on every test batch of fault-free "
        "histories, and each monitoring method's detection, delay and false alarms at the "
        "same calibrated false-alarm rate (evaluation/sweep.py; --units, --seed, --process "
        "apply)",
    )
    ev.add_argument(
        "--severities",
        default=",".join(f"{s:g}" for s in SEVERITIES),
        help="sweep: severities in sigma of normal variation, comma-separated",
    )
    ev.add_argument(
        "--history", type=int, default=40, help="sweep: fault-free batches each model sees"
    )
    ev.add_argument(
        "--evaluation",
        type=int,
        default=50,
        help="sweep: batches per unit after the history, alternately calibration and test",
    )
    ev.add_argument("--plots", type=Path, help="sweep: write a PNG per fault kind here")
    im = sub.add_parser(
        "import",
        help="validate a plant's CSV files (wide or long, through a mapping file) and land "
        "them; nothing lands unless every file is valid",
    )
    im.add_argument("files", nargs="+", type=Path, help="readings files, or folders of *.csv")
    im.add_argument("--mapping", type=Path, required=True, help="the mapping file (YAML)")
    im.add_argument("--equipment", type=Path, required=True, help="equipment master data")
    im.add_argument("--recipes", type=Path, required=True, help="recipe master data")
    im.add_argument("--landing", required=True, help="landing zone URI (folder or gs://)")
    im.add_argument("--quiet", action="store_true", help="no progress bar")
    cc = sub.add_parser(
        "check-config",
        help="validate the settings in the environment for a profile; names every missing "
        "or malformed variable (exit 1 when there is one)",
    )
    cc.add_argument("--profile", default="gcp")
    dash = sub.add_parser(
        "dashboards", help="regenerate the Grafana dashboards, alert rules and provisioning"
    )
    dash.add_argument(
        "--check", action="store_true", help="only compare with infra/grafana/; exit 1 if stale"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "check-config":
        import os

        from chrom_platform.check_config import check

        problems = check(os.environ, args.profile)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(
            f"chrom check-config --profile {args.profile}: "
            + (f"{len(problems)} problem(s)" if problems else "ok"),
            file=sys.stderr if problems else sys.stdout,
        )
        return 1 if problems else 0
    if args.cmd == "import":
        from chrom_platform.importing_cli import run_import

        return run_import(args)
    if args.cmd == "dashboards":
        from chrom_platform.grafana.generate import GRAFANA_DIR, differences, write

        changed = differences() if args.check else write()
        for rel in changed:
            print(f"{'stale' if args.check else 'wrote'}: {GRAFANA_DIR / rel}")
        return 1 if args.check and changed else 0
    if args.cmd == "evaluate" and args.sweep:
        return _sweep(args)
    if args.cmd == "evaluate":
        from chrom_platform.evaluation.run import evaluate, render_table

        try:
            result = evaluate(**history_size(args), workdir=args.workdir, process=args.process)
        except ValueError as e:
            print(f"chrom evaluate: {e}", file=sys.stderr)
            return 2
        print(render_table(result))
        text = json.dumps(result, indent=2, sort_keys=True, default=str)
        if args.json:
            args.json.write_text(text + "\n")
        print(text)
        if args.strict and not result["score"]["all_passed"]:
            return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from chrom_platform.evaluation.sweep import SweepConfig, render_sweep, run_sweep, write_json

    try:
        severities = tuple(float(x) for x in args.severities.split(",") if x.strip())
        cfg = SweepConfig(
            seed=args.seed,
            process=args.process,
            units=args.units,
            history=args.history,
            evaluation=args.evaluation,
            severities=severities,
        )
        cfg.validate()
    except ValueError as e:
        print(f"chrom evaluate --sweep: {e}", file=sys.stderr)
        return 2
    result = run_sweep(cfg, plots=args.plots)
    print(render_sweep(result))
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
