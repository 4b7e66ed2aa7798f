"""`chrom-sim`: plays chromatography skids.

chrom-sim backfill  history straight to the landing zone (Parquet, JSON), truth apart
chrom-sim stream    batches in accelerated real time through a publisher
chrom-sim export-csv  a history as a plant exports it (wide or long CSV), for `chrom import`
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chrom_platform.lib.core.contracts import EVENTS_PREFIX, iso_to_ns, samples_key
from chrom_platform.lib.core.master_data import ConfigError, MasterData, load_master_data
from chrom_platform.lib.io.landing import json_bytes, land_master_data
from chrom_platform.lib.io.objectstore import open_store
from simulator import DEFAULT_PROCESS, DEFAULT_START, PROCESSES, process_files
from simulator.batch import (
    NS,
    SimBatch,
    load_behaviour,
    plan_batch,
    simulate,
    unit_clock_offset_ns,
)
from simulator.faults import FAULT_KINDS, GRADED_KINDS, check_severities
from simulator.landing import (
    DEFAULT_START_NS,
    backfill,
    recipe_for_unit,
    unit_batches,
    unit_jobs,
    write_truth,
)
from simulator.publishers import make_publisher
from simulator.realism import REALISMS
from simulator.realism import draw as draw_realism
from simulator.samples import sample_results


def _parse_start(value: str) -> int:
    if value == "now":
        return time.time_ns() // NS * NS
    try:
        return iso_to_ns(value if "T" in value else value + "T00:00:00Z")
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"--start: expected 'now' or ISO 8601 UTC, got {value!r}"
        ) from e


def _fault_kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}"
        )
    return kinds


def add_history_arguments(
    p: argparse.ArgumentParser,
    *,
    units: int = 3,
    batches_per_unit: int = 10,
    seed: int = 42,
    fault_rate: float = 0.15,
) -> None:
    """What sizes a simulated history, for every command that makes one (`chrom-sim`,
    `chrom evaluate`), each with its own defaults."""
    p.add_argument(
        "--units",
        type=int,
        default=units,
        help="number of units (skids), from equipment master data",
    )
    p.add_argument("--batches-per-unit", type=int, default=batches_per_unit)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument(
        "--fault-rate", type=float, default=fault_rate, help="probability a batch carries a fault"
    )


def history_size(args: argparse.Namespace) -> dict[str, Any]:
    """The history-size arguments `add_history_arguments` declared, as keyword arguments."""
    return {k: getattr(args, k) for k in ("units", "batches_per_unit", "seed", "fault_rate")}


def add_process_arguments(p: argparse.ArgumentParser) -> None:
    """Which plant to play: a process family's shipped files, or your own master data."""
    p.add_argument(
        "--process",
        default=DEFAULT_PROCESS,
        choices=sorted(PROCESSES),
        help=f"process family (default {DEFAULT_PROCESS}): its equipment, recipes and behaviour",
    )
    p.add_argument("--equipment", help="equipment master data (default: the process's)")
    p.add_argument("--recipes", help="recipe master data (default: the process's)")


def resolve_process(args: argparse.Namespace) -> None:
    """Fill in the process's files where --equipment / --recipes were not given."""
    files = process_files(args.process)
    args.equipment = args.equipment or files.equipment
    args.recipes = args.recipes or files.recipes
    args.simulation = files.simulation


def _common(p: argparse.ArgumentParser) -> None:
    add_history_arguments(p)
    add_process_arguments(p)
    p.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=tuple(FAULT_KINDS),
        help=f"comma-separated subset of: {','.join(FAULT_KINDS)}",
    )
    p.add_argument(
        "--fault-severity",
        type=float,
        help="size every fault at this many standard deviations of the changed signal's normal "
        "variation (0.5-10; graded kinds only: pass --fault-kinds " + ",".join(GRADED_KINDS) + ")",
    )
    p.add_argument("--landing", required=True, help="landing zone URI (folder path or file://)")
    p.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="ground-truth folder (never inside the landing zone)",
    )
    p.add_argument(
        "--first-batch",
        type=int,
        default=0,
        help="index of the first batch per unit (batch ids are 1-based)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="chrom-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backfill", help="write a history of batches to the landing zone")
    _common(b)
    b.add_argument(
        "--start",
        type=_parse_start,
        default=DEFAULT_START_NS,
        help=f"history start (ISO 8601 UTC or 'now'; default {DEFAULT_START})",
    )
    b.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    b.add_argument("--quiet", action="store_true")
    s = sub.add_parser("stream", help="play batches in accelerated real time through a publisher")
    _common(s)
    s.add_argument("--start", type=_parse_start, default="now")
    s.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second")
    s.add_argument("--publisher", default="jsonl", choices=["jsonl", "queue"])
    s.add_argument(
        "--publish-to",
        default="-",
        help="jsonl: output file ('-' = stdout); queue: queue file or pubsub://<project>",
    )
    x = sub.add_parser(
        "export-csv",
        help="write a history as a plant would export it (CSV, a mapping file) for chrom import",
    )
    add_history_arguments(x)
    x.add_argument("--shape", choices=["wide", "long"], default="wide")
    x.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    x.add_argument("--truth", type=Path, help="also write the ground truth here")
    add_process_arguments(x)
    x.add_argument("--first-batch", type=int, default=0)
    x.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=tuple(FAULT_KINDS),
        help=f"comma-separated subset of: {','.join(FAULT_KINDS)}",
    )
    x.add_argument("--start", type=_parse_start, default=DEFAULT_START_NS)
    x.add_argument(
        "--realism",
        choices=REALISMS,
        default="none",
        help="plant: the files as a plant's systems write them (flow-meter noise at zero "
        "flow, labels at the operator's command, unlabelled gaps, jittered, extra and missing "
        "scans, historian compression, the plant's own column names and vocabularies, local "
        "time across daylight saving); parameters drawn per --plant-seed (simulator/realism.py)",
    )
    x.add_argument("--plant-seed", type=int, help="seed of the plant's habits (default: --seed)")
    return ap


def cmd_export_csv(args: argparse.Namespace) -> int:
    """The same batches `backfill` with these arguments lands, written as CSV files."""
    from simulator.export import export_csv

    md = _load(args)
    if not 1 <= args.units <= len(md.units):
        raise SystemExit(f"chrom-sim: --units must be between 1 and {len(md.units)}")
    jobs = unit_jobs(
        md,
        landing="",
        **history_size(args),
        start_ns=args.start,
        equipment_path=args.equipment,
        recipes_path=args.recipes,
        fault_kinds=args.fault_kinds,
        first_batch=args.first_batch,
        simulation_path=args.simulation,
    )
    sims = [sim for job in jobs for sim in unit_batches(job, md)]
    realism = None
    if args.realism == "plant":
        realism = draw_realism(args.seed if args.plant_seed is None else args.plant_seed)
    files = export_csv(args.out, sims, args.shape, realism)
    if args.truth is not None:
        write_truth(
            args.truth, [s.truth for s in sims], manifest={"mode": "export-csv", "seed": args.seed}
        )
    print(
        json.dumps(
            {
                "shape": args.shape,
                "batches": len(sims),
                "readings": sum(s.n_readings for s in sims),
                "files": len(files),
                "mapping": str(args.out / "mapping.yaml"),
            }
        )
    )
    return 0


def _check_truth_apart(landing: str, truth: Path) -> None:
    lp = Path(landing.removeprefix("file://")).resolve()
    tp = truth.resolve()
    if tp == lp or lp in tp.parents:
        raise SystemExit(
            "chrom-sim: --truth must not be inside the landing zone (detection must never read it)"
        )


def _load(args: argparse.Namespace) -> MasterData:
    try:
        return load_master_data(args.equipment, args.recipes)
    except ConfigError as e:
        raise SystemExit(f"chrom-sim: invalid master data: {e}") from e


def cmd_backfill(args: argparse.Namespace) -> int:
    _check_truth_apart(args.landing, args.truth)
    try:
        res = backfill(
            equipment_path=args.equipment,
            recipes_path=args.recipes,
            landing=args.landing,
            truth_dir=args.truth,
            **history_size(args),
            start_ns=args.start,
            fault_kinds=args.fault_kinds,
            fault_severity=args.fault_severity,
            first_batch=args.first_batch,
            workers=args.workers,
            progress=not args.quiet,
            simulation_path=args.simulation,
        )
    except ConfigError as e:  # raised before anything is landed, naming file, key and problem
        raise SystemExit(f"chrom-sim: invalid master data: {e}") from e
    except ValueError as e:
        raise SystemExit(f"chrom-sim: {e}") from e
    faults = sum(1 for t in res.truth if t["fault"])
    print(
        json.dumps(
            {
                "units": res.units,
                "batches": res.batches,
                "faulty_batches": faults,
                "readings": res.readings,
                "seconds": round(res.seconds, 2),
                "readings_per_s": round(res.readings_per_s),
                "landing": args.landing,
                "truth": str(args.truth),
            }
        )
    )
    return 0


def _stream_sims(md: MasterData, args: argparse.Namespace) -> list[SimBatch]:
    behaviour = load_behaviour(args.simulation)
    sims = []
    for ui, unit_id in enumerate(list(md.units)[: args.units]):
        unit = md.units[unit_id]
        cursor = args.start
        for i in range(args.first_batch, args.first_batch + args.batches_per_unit):
            plan = plan_batch(
                unit=unit,
                resin=md.resins[unit.resin],
                recipe=md.recipes[recipe_for_unit(md, ui)],
                unit_index=ui,
                batch_index=i,
                # the first live batch starts right away; later ones after the turnaround
                earliest_start_ns=cursor,
                seed=args.seed,
                fault_rate=args.fault_rate,
                fault_kinds=args.fault_kinds,
                behaviour=behaviour,
                fault_severity=args.fault_severity,
            )
            if i == args.first_batch:
                plan = replace(plan, start_ns=args.start + unit_clock_offset_ns(ui))
            sim = simulate(plan)
            sims.append(sim)
            cursor = int(sim.ts_ns[-1]) + 60 * NS
    return sims


def cmd_stream(args: argparse.Namespace) -> int:
    """Publish readings in time order across units, paced at `speed` x real time.

    Batch and phase events land as they happen (one object per event); lab results land
    when their analysis time has passed, the rest at the end.
    """
    _check_truth_apart(args.landing, args.truth)
    if args.speed <= 0:
        raise SystemExit("chrom-sim: --speed must be > 0")
    try:
        check_severities(list(args.fault_kinds), args.fault_severity)
    except ValueError as e:
        raise SystemExit(f"chrom-sim: {e}") from e
    md = _load(args)
    if not 1 <= args.units <= len(md.units):
        raise SystemExit(f"chrom-sim: --units must be between 1 and {len(md.units)}")
    store = open_store(args.landing)
    land_master_data(store, md)
    pub = make_publisher(args.publisher, args.publish_to)
    sims = _stream_sims(md, args)
    write_truth(args.truth, [s.truth for s in sims], manifest={"mode": "stream", "seed": args.seed})

    # (ts, batch order, tiebreak, kind, payload), merged across batches in time order. The
    # tiebreak keeps the order within a batch (hold_end and phase_end share a timestamp).
    items: list[tuple[int, int, int, str, Any]] = []
    for bi, sim in enumerate(sims):
        ts_kept = sim.ts_ns[sim.keep]
        batch_items: list[tuple[int, str, Any]] = [
            *((int(t), "reading", m) for t, m in zip(ts_kept, sim.messages(), strict=True)),
            *((iso_to_ns(e["ts"]), "event", e) for e in sim.events),
            *((iso_to_ns(d["analyzed_at"]), "sample", d) for d in sample_results(sim)),
        ]
        items.extend((t, bi, j, kind, payload) for j, (t, kind, payload) in enumerate(batch_items))
    heapq.heapify(items)
    t_sim0 = min(int(s.ts_ns[0]) for s in sims)
    wall0 = time.monotonic()
    published = 0
    last_reading_ts = max(int(s.ts_ns[-1]) for s in sims)
    pending: list[dict[str, Any]] = []
    current_sec = None
    while items:
        ts, _bi, _j, kind, payload = heapq.heappop(items)
        sec = ts // NS
        if current_sec is not None and sec != current_sec and pending:
            pub.publish(pending)
            published += len(pending)
            pending = []
        current_sec = sec
        if ts <= last_reading_ts:
            due = wall0 + (ts - t_sim0) / NS / args.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if kind == "reading":
            pending.append(payload)
        elif kind == "event":
            store.put(
                f"{EVENTS_PREFIX}/unit_id={payload['unit_id']}/date={payload['ts'][:10]}/"
                f"{payload['event_id']}.json",
                json_bytes(payload),
            )
        else:
            store.put(
                samples_key(
                    payload["unit_id"],
                    payload["sample_id"],
                    payload["attempt"],
                    iso_to_ns(payload["analyzed_at"]),
                ),
                json_bytes(payload),
            )
    if pending:
        pub.publish(pending)
        published += len(pending)
    pub.close()
    print(
        json.dumps(
            {
                "published": published,
                "batches": len(sims),
                "seconds": round(time.monotonic() - wall0, 2),
            }
        ),
        file=sys.stderr,
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the process family's files filled in."""
    args = build_parser().parse_args(argv)
    resolve_process(args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "backfill":
        return cmd_backfill(args)
    if args.command == "export-csv":
        return cmd_export_csv(args)
    return cmd_stream(args)


if __name__ == "__main__":
    raise SystemExit(main())
