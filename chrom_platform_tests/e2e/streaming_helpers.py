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

import numpy as np
import pyarrow.dataset as ds

from chrom_platform.lib.contracts import READINGS_PREFIX, SIGNALS
from chrom_platform.lib.influx import InfluxV1Sink
from chrom_platform.lib.master_data import MasterData
from simulator.batch import SimBatch
from simulator.cli import _stream_sims, build_parser
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
    args = build_parser().parse_args(argv)
    args.fault_kinds = tuple(FAULT_KINDS)
    return Streamed(work / "queue.db", work / "lake", work / "truth", _stream_sims(md, args))


def fresh_database(url: str) -> InfluxV1Sink:
    sink = InfluxV1Sink(url, f"t_{uuid.uuid4().hex[:12]}")
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


def truth_cv(sims: list[SimBatch], md: MasterData) -> dict[tuple[str, int], float]:
    """The simulator's own totalized batch CV for every reading it sent."""
    out = {}
    for sim in sims:
        unit = sim.plan.unit
        k = sim.keep
        cv = sim.volume_true_l[k] / md.units[unit.unit_id].column_volume_l
        for seq, c in zip(sim.seq[k].tolist(), cv.tolist(), strict=True):
            out[(unit.unit_id, seq)] = c
    return out


def assert_cv_matches_truth(points: dict, truth: dict[tuple[str, int], float]) -> float:
    """batch_cv within 0.1% of the simulator's (absolute 0.001 CV near a batch's start)."""
    keys = sorted(truth)
    got = np.array([points[k]["batch_cv"] for k in keys])
    want = np.array([truth[k] for k in keys])
    err = np.abs(got - want)
    tol = np.maximum(1e-3 * want, 1e-3)
    worst = int(np.argmax(err / tol))
    assert (err <= tol).all(), f"batch_cv off at {keys[worst]}: {got[worst]} vs {want[worst]}"
    return float(np.max(err / np.maximum(want, 1e-9), initial=0.0))
