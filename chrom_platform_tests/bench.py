"""`make bench`: throughput figures, each against a baseline measured in the same run.

Writes its section of docs/benchmarks.md (between markers, so other benchmarks keep theirs)
with the machine and the date. Run: python -m chrom_platform_tests.bench [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.landing_io import PARQUET_OPTIONS
from chrom_platform.lib.master_data import load_master_data
from chrom_platform.settings import PROJECT_ROOT
from simulator import DEFAULT_EQUIPMENT, DEFAULT_RECIPES
from simulator.batch import plan_batch, simulate
from simulator.landing import DEFAULT_START_NS, backfill

DOC = PROJECT_ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, pyarrow {pa.__version__}"
    )


def bench_backfill(units: int, batches: int, workers: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="chrom-bench-"))
    try:
        t0 = time.perf_counter()
        res = backfill(
            landing=str(tmp / "lake"),
            truth_dir=tmp / "truth",
            units=units,
            batches_per_unit=batches,
            seed=1,
            fault_rate=0.15,
            workers=workers,
        )
        wall = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (tmp / "lake").rglob("*.parquet"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "readings": res.readings,
        "batches": res.batches,
        "seconds": wall,
        "readings_per_s": res.readings / wall,
        "parquet_bytes_per_reading": size / res.readings,
    }


def bench_parquet(batches: int) -> dict[str, float]:
    """Our Parquet options against pyarrow's defaults on the same simulated tables."""
    md = load_master_data(DEFAULT_EQUIPMENT, DEFAULT_RECIPES)
    u = md.units["SKID-01"]
    tables = [
        simulate(
            plan_batch(
                unit=u,
                resin=md.resins[u.resin],
                recipe=md.recipes["MAB1-PROA-V3"],
                unit_index=0,
                batch_index=i,
                earliest_start_ns=DEFAULT_START_NS,
                seed=1,
                fault_rate=0.0,
            )
        ).readings_table()
        for i in range(batches)
    ]
    rows = sum(t.num_rows for t in tables)
    out = {}
    for name, opts in (("tuned", PARQUET_OPTIONS), ("default", {})):
        best = float("inf")
        size = 0
        for _ in range(3):
            t0 = time.perf_counter()
            size = 0
            for t in tables:
                sink = pa.BufferOutputStream()
                pq.write_table(t, sink, **opts)
                size += sink.tell()
            best = min(best, time.perf_counter() - t0)
        out[f"{name}_rows_per_s"] = rows / best
        out[f"{name}_bytes_per_row"] = size / rows
    return out


def write_section(name: str, body: str) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nFigures written by `make bench`; each section keeps the machine and date it was measured on.\n"
    )
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args()
    units, batches = (2, 20) if args.quick else (4, 350)
    print(f"simulator: backfill {units} units x {batches} batches, 2 workers ...", flush=True)
    two = bench_backfill(units, batches, workers=2)
    print(
        f"  {two['readings']:,} readings in {two['seconds']:.1f} s = {two['readings_per_s']:,.0f} readings/s",
        flush=True,
    )
    print("simulator: same, 1 worker (baseline) ...", flush=True)
    one = bench_backfill(units, batches, workers=1)
    print(f"  {one['readings_per_s']:,.0f} readings/s", flush=True)
    print("parquet: tuned options vs pyarrow defaults ...", flush=True)
    pqb = bench_parquet(20 if args.quick else 60)
    target = 1_000_000
    verdict = "meets" if two["readings_per_s"] >= target else "MISSES"
    body = f"""
## Simulator: readings generated and landed as Parquet

Measured {dt.date.today().isoformat()} on: {machine()}.

`chrom-sim backfill` of {units} units x {batches} batches ({two["batches"]:,} batches, about a year of
history per unit), fault rate 0.15: physics, faults, noise, events, lab results, Parquet
encoding and durable (fsync + atomic rename) writes to a local landing folder.

| run | readings | wall time | readings/s |
|---|---:|---:|---:|
| 2 workers (default) | {two["readings"]:,} | {two["seconds"]:.1f} s | **{two["readings_per_s"]:,.0f}** |
| 1 worker (baseline, same run) | {one["readings"]:,} | {one["seconds"]:.1f} s | {one["readings_per_s"]:,.0f} |

- Target at least 1,000,000 readings/s: **{verdict}** ({two["readings_per_s"] / target:.2f}x the target).
- Parallel speed-up, 2 workers over 1: {two["readings_per_s"] / one["readings_per_s"]:.2f}x on {os.cpu_count()} cores.
- Landed size: {two["parquet_bytes_per_reading"]:.1f} bytes per reading (11 fields).

Parquet encoding of the same simulated tables (best of 3, in memory):

| options | rows/s | bytes/row |
|---|---:|---:|
| tuned: dictionary for strings only, delta for ts/seq, snappy | {pqb["tuned_rows_per_s"]:,.0f} | {pqb["tuned_bytes_per_row"]:.1f} |
| pyarrow defaults (baseline) | {pqb["default_rows_per_s"]:,.0f} | {pqb["default_bytes_per_row"]:.1f} |

Tuned over default: {pqb["tuned_rows_per_s"] / pqb["default_rows_per_s"]:.2f}x faster, {pqb["default_bytes_per_row"] / pqb["tuned_bytes_per_row"]:.2f}x smaller.
"""
    write_section("simulator", body)
    print(f"written to {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
