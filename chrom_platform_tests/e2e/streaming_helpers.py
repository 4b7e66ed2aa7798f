"""Helpers shared by the streaming end-to-end tests and the benchmark: stream batches into
a queue with the real `chrom-sim stream`, and compare InfluxDB and the landing zone with
what the simulator knows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds

from chrom_platform.lib.core.contracts import READINGS_PREFIX, SIGNALS
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.influx import InfluxV1Sink
from chrom_platform.local.influx_server import LocalInfluxServer
from simulator.batch import SimBatch
from simulator.cli import _stream_sims, parse_args
from simulator.faults import FAULT_KINDS


@dataclass
class Streamed:
    queue: Path
    lake: Path
    truth: Path
    sims: list[SimBatch]

    @property
    def n_readings(self) -> int:
        return sum(int(s.keep.sum()) for s in self.sims)


def stream_args(work: Path, units: int, batches: int, seed: int, start: str) -> list[str]:
    return [
        "stream",
        f"--units={units}",
        f"--batches-per-unit={batches}",
        f"--seed={seed}",
        "--fault-rate=0",
        f"--start={start}",
        "--speed=1000000",
        f"--landing={work / 'lake'}",
        f"--truth={work / 'truth'}",
        "--publisher=queue",
        f"--publish-to={work / 'queue.db'}",
    ]


def stream_batches(
    md: MasterData, work: Path, units: int, batches: int, seed: int, start: str
) -> Streamed:
    """Publish with the real CLI (a separate process, as in production), and rebuild the
    same simulated batches in-process for their ground truth (same seed, same plan)."""
    argv = stream_args(work, units, batches, seed, start)
    subprocess.run(
        [sys.executable, "-m", "simulator.cli", *argv],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    args = parse_args(argv)
    args.fault_kinds = tuple(FAULT_KINDS)
    return Streamed(work / "queue.db", work / "lake", work / "truth", _stream_sims(md, args))


def fresh_database(server: LocalInfluxServer) -> InfluxV1Sink:
    """A new database on the server, and a sink that writes to it as the server's admin."""
    sink = InfluxV1Sink(server.url, f"t_{uuid.uuid4().hex[:12]}", credentials=server.admin)
    sink.ensure_database()
    return sink


def influx_points(sink: InfluxV1Sink) -> dict[tuple[str, int], dict[str, float]]:
    """Every point of the chromatography measurement keyed by (unit_id, seq)."""
    fields = ", ".join(f'"{f}"' for f in (*SIGNALS, "batch_cv", "phase_cv", "volume_l"))
    out: dict[tuple[str, int], dict[str, float]] = {}
    for s in sink.query(f'SELECT "seq", {fields} FROM "chromatography" GROUP BY "unit_id"'):
        cols = s["columns"]
        for row in s["values"]:
            rec = dict(zip(cols, row, strict=True))
            key = (s["tags"]["unit_id"], int(rec["seq"]))
            assert key not in out, f"duplicate point for {key}"
            out[key] = rec
    return out


def landed_rows(lake: Path) -> Iterator[dict]:
    base = lake / READINGS_PREFIX
    if not base.exists():
        return iter(())
    return iter(ds.dataset(base, format="parquet").to_table().to_pylist())
