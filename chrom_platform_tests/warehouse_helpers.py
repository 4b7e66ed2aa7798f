"""Running the real dbt project in tests: a simulated history landed in a folder, `dbt` as a
subprocess on a DuckDB file (or on fakesnow, see snowflake_stand_in.py), and the
simulator's own batches for ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.landing import land_master_data
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.resources import DBT_PROJECT_DIR, dbt_executable
from chrom_platform.settings import Settings
from chrom_platform_tests.conftest import START_NS
from simulator.batch import SimBatch
from simulator.landing import land_batch, unit_batches, unit_jobs

DAY_NS = 86_400 * 1_000_000_000


@dataclass
class History:
    """A landed history and the batches the simulator made for it (truth per reading)."""

    root: Path
    md: MasterData
    sims: list[SimBatch] = field(default_factory=list)
    #: each landed batch's ground truth (from `land`, or from `chrom-sim backfill`'s result)
    truths: list[dict[str, Any]] = field(default_factory=list)
    #: results of earlier materializations a fixture kept, by name
    runs: dict[str, Any] = field(default_factory=dict)

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def truth_dir(self) -> Path:
        """Where `chrom-sim backfill` writes the truth files (apart from the landing zone)."""
        return self.root / "truth"

    def readings(self) -> pd.DataFrame | None:
        """Every landed reading as one frame (None before any landed)."""
        files = sorted((self.lake / "landing" / "readings").rglob("*.parquet"))
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()

    def events(self) -> list[dict[str, Any]]:
        """Every landed batch and phase event, in file order."""
        out = []
        for f in sorted((self.lake / "landing" / "batch_events").rglob("*.json")):
            out.extend(json.loads(line) for line in f.read_text().splitlines() if line)
        return out

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse" / "chrom.duckdb"

    def land(
        self,
        *,
        units: int,
        batches_per_unit: int,
        seed: int,
        fault_rate: float,
        first_batch: int = 0,
        start_ns: int = START_NS,
        fault_kinds: Sequence[str] | None = None,
    ) -> list[SimBatch]:
        """Land more batches as `chrom-sim backfill` does (same jobs, same landing calls),
        keeping the simulated batches for their per-reading truth: simulated once."""
        kw: dict[str, Any] = {
            "units": units,
            "batches_per_unit": batches_per_unit,
            "seed": seed,
            "fault_rate": fault_rate,
            "first_batch": first_batch,
            "start_ns": start_ns,
        }
        if fault_kinds is not None:
            kw["fault_kinds"] = tuple(fault_kinds)
        store = open_store(str(self.lake))
        land_master_data(store, self.md)
        sims = []
        for job in unit_jobs(self.md, landing=str(self.lake), **kw):
            for sim in unit_batches(job, self.md):
                land_batch(store, sim)
                sims.append(sim)
        self.sims.extend(sims)
        self.truths.extend(sim.truth for sim in sims)
        return sims

    def settings(self) -> Settings:
        """The platform's settings for this history (local profile, its own folders)."""
        return Settings.from_env(
            {
                "CHROM_DATA_DIR": str(self.root / "data"),
                "CHROM_LANDING_URI": str(self.lake),
                "CHROM_DUCKDB_PATH": str(self.duckdb_path),
            }
        )

    def truth(self, batch_id: str) -> dict[str, Any]:
        return next(s.truth for s in self.sims if s.plan.batch_id == batch_id)

    def dbt(self, *args: str, duckdb_path: Path | None = None) -> subprocess.CompletedProcess:
        return run_dbt(
            args,
            duckdb_path=duckdb_path or self.duckdb_path,
            landing=self.lake,
            work=self.root / "dbt",
        )

    def connect(self, path: Path | None = None) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(path or self.duckdb_path), read_only=True)


def run_dbt(
    args: Sequence[str],
    *,
    duckdb_path: Path,
    landing: Path,
    work: Path,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """`dbt <args>` on the project, writing its target and logs under `work` (never into the
    project folder a developer is using)."""
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    vars_ = {"duckdb_path": str(duckdb_path), "landing_root": str(landing)}
    cmd = [
        dbt_executable(),
        *args,
        "--vars",
        json.dumps(vars_),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    env = {**os.environ, "CHROM_DBT_TARGET": "local"}
    proc = subprocess.run(cmd, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def python_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
