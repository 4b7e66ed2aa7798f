"""`chrom`: the platform's own commands (the simulator is `chrom-sim`, the bridge `chrom-bridge`).

chrom import --mapping mapping.yaml --equipment E --recipes R --landing L FILES...
chrom build --landing L [--data-dir D]
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
    ev.add_argument(
        "--realism",
        choices=["none", "plant"],
        default="none",
        help="plant: export the history as a plant's files (chrom-sim export-csv --realism "
        "plant) and bring it in with chrom import, as a new user would, before building",
    )
    ev.add_argument(
        "--shape", choices=["wide", "long"], default="wide", help="--realism plant: the export"
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
    im.add_argument(
        "--replace",
        action="store_true",
        help="the files correct batches already landed: land them as the batches' next "
        "revision (the landed one is superseded, kept for lineage)",
    )
    bd = sub.add_parser(
        "build",
        help="build everything from a landing zone headless through Dagster (landing -> "
        "bronze -> silver -> gold -> analytics, with the checks), on the local profile; the "
        "runs are kept in the data folder's Dagster home, where `dagster dev` shows them",
    )
    bd.add_argument(
        "--landing", help="landing zone URI (default: CHROM_LANDING_URI, else DATA_DIR/lake)"
    )
    bd.add_argument(
        "--data-dir", type=Path, help="warehouse, Dagster home and logs (default: CHROM_DATA_DIR)"
    )
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
    if args.cmd == "build":
        return _build(args)
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
            result = evaluate(
                **history_size(args),
                workdir=args.workdir,
                process=args.process,
                realism=args.realism,
                shape=args.shape,
            )
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


def _build(args: argparse.Namespace) -> int:
    import os
    import time

    import dagster as dg

    from chrom_platform.build import build_everything, build_log, check_outcomes, failed_steps
    from chrom_platform.local.instance import write_instance_config
    from chrom_platform.settings import Settings, SettingsError

    env = dict(os.environ)
    if args.data_dir is not None:
        env["CHROM_DATA_DIR"] = str(args.data_dir)
    if args.landing is not None:
        # dbt runs in its project folder: a local landing zone is given to it absolute
        local = "://" not in args.landing
        env["CHROM_LANDING_URI"] = str(Path(args.landing).resolve()) if local else args.landing
    try:
        settings = Settings.from_env(env)
    except SettingsError as e:
        print(f"chrom build: {e}", file=sys.stderr)
        return 2
    home = settings.data_dir / "dagster"
    write_instance_config(home)
    log_file = build_log(settings)
    print(
        f"chrom build: {settings.landing_uri} -> "
        + (settings.warehouse.duckdb_path if settings.warehouse.target == "local" else "Snowflake")
        + " "
        f"(Dagster home {home}; log {log_file}) ...",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.monotonic()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = build_everything(settings, instance, log_file=log_file)
    checks = check_outcomes(result)
    summary = {
        "success": result.success,
        "seconds": round(time.monotonic() - t0, 1),
        "materializations": len(result.get_asset_materialization_events()),
        "checks_passed": len(checks["passed"]),
        "checks_failed": checks["failed"],
        "failed_steps": failed_steps(result),
        "dagster_home": str(home),
    }
    print(json.dumps(summary, indent=1))
    return 0 if result.success else 1


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
