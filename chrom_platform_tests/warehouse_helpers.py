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
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.core.tables import Table
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

    def dbt(
        self, *args: str, duckdb_path: Path | None = None, subprocess_: bool = False
    ) -> subprocess.CompletedProcess:
        return run_dbt(
            args,
            duckdb_path=duckdb_path or self.duckdb_path,
            landing=self.lake,
            work=self.root / "dbt",
            subprocess_=subprocess_,
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
    subprocess_: bool = False,
) -> subprocess.CompletedProcess:
    """`dbt <args>` on the project, writing its target and logs under `work` (never into the
    project folder a developer is using).

    In this process by default, through dbt's programmatic entry point (`dbtRunner`) with a
    manifest parsed once per worker: the same dbt, adapter, SQL and DuckDB file as the
    command, without the 3-4 s of starting dbt and the 3-5 s of parsing the project again
    for each test's own warehouse (its path is part of what dbt's partial parse hashes).
    `subprocess_`: the `dbt` command itself, for figures that must include what a Dagster
    run pays (the benchmarks)."""
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    vars_ = {"duckdb_path": str(duckdb_path), "landing_root": str(landing)}
    common = [
        "--vars",
        json.dumps(vars_),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        "local",
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    if subprocess_:
        cmd = [dbt_executable(), *args, *common]
        proc = subprocess.run(cmd, cwd=DBT_PROJECT_DIR, capture_output=True, text=True)
    else:
        proc = _in_process(list(args), common, duckdb_path)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


#: parsed manifests by DuckDB file stem: dbt-duckdb names the database (catalog) after the
#: file, and the manifest records each node's database, so one manifest serves every
#: warehouse file of that name, wherever it is and whatever landing it reads (the landing
#: root and the path are rendered when a node runs, not when the project is parsed)
_MANIFESTS: dict[str, Any] = {}


def _in_process(
    args: list[str], common: list[str], duckdb_path: Path
) -> subprocess.CompletedProcess:
    from dbt.cli.main import dbtRunner

    stem = duckdb_path.name.removesuffix(".duckdb")
    if stem not in _MANIFESTS:
        parsed = dbtRunner().invoke(
            ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--quiet", *common]
        )
        if not parsed.success:
            raise AssertionError(f"dbt parse failed: {parsed.exception}")
        _MANIFESTS[stem] = parsed.result
    lines: list[str] = []

    def keep(event: Any) -> None:  # what the command prints: info and above
        if event.info.level in ("info", "warn", "error"):
            lines.append(event.info.msg)

    try:
        res = dbtRunner(manifest=_MANIFESTS[stem], callbacks=[keep]).invoke(
            [*args, "--project-dir", str(DBT_PROJECT_DIR), "--quiet", *common]
        )
    finally:
        _close_duckdb()
    # dbt's own exit codes: 0 done, 1 a node failed, 2 dbt itself failed
    code = 0 if res.success else (2 if res.exception is not None else 1)
    err = "" if res.exception is None else f"{type(res.exception).__name__}: {res.exception}"
    return subprocess.CompletedProcess(["dbt", *args], code, "\n".join(lines), err)


def _close_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open between invocations in one process
    (its environment outlives the run, holding the file read-write), as the command's exit
    does: the test then opens the file itself, read-only or not."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager as Manager

    with Manager._LOCK:
        if Manager._ENV is not None:
            Manager._ENV.close()
            Manager._ENV = None


def python_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


#: what differs between two builds of the same landing by nature: when each ran
RUN_TIMES = ("_source_loaded_at", "judged_at", "computed_at")


def gold_tables(con: duckdb.DuckDBPyConnection, keys: dict[str, str]) -> dict[str, pa.Table]:
    """Gold tables (name: its row key, to order by), without the columns that say when a
    build ran: what two builds of the same landing must agree on. Column names lower-case
    (Snowflake's, on fakesnow, are upper)."""
    out = {}
    for name, key in keys.items():
        t = con.sql(f"select * from gold.{name} order by {key}").to_arrow_table()
        t = t.rename_columns([c.lower() for c in t.column_names])
        out[name] = t.drop_columns([c for c in RUN_TIMES if c in t.column_names])
    return out


def assert_same_tables(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    """Equal tables, floats to 1e-9 (relative and absolute) with NaN equal to NaN, compared
    a column at a time (a row-by-row loop over gold_trend_by_cv cost 10 s a comparison)."""
    for name, ta in a.items():
        tb = b[name]
        assert ta.num_rows == tb.num_rows, (name, ta.num_rows, tb.num_rows)
        assert ta.column_names == tb.column_names, (name, ta.column_names, tb.column_names)
        for col in ta.column_names:
            va, vb = ta[col].combine_chunks(), tb[col].combine_chunks()
            if vb.type != va.type:
                vb = vb.cast(va.type)
            if pa.types.is_floating(va.type):
                xa = va.to_numpy(zero_copy_only=False)
                xb = vb.to_numpy(zero_copy_only=False)
                # a null never equals a NaN: to_numpy turns both into NaN
                close = np.isclose(xa, xb, rtol=1e-9, atol=1e-9, equal_nan=True) & (
                    np.asarray(va.is_null()) == np.asarray(vb.is_null())
                )
                assert close.all(), (name, col, _rows(ta, tb, np.flatnonzero(~close)[:3]))
            elif not va.equals(vb):
                differ = np.flatnonzero(
                    ~np.asarray(pc.fill_null(pc.equal(va, vb), False))
                    | (np.asarray(va.is_null()) != np.asarray(vb.is_null()))
                )
                raise AssertionError(f"{name}.{col} differs: {_rows(ta, tb, differ[:3])}")


def _rows(ta: pa.Table, tb: pa.Table, index: np.ndarray) -> list[tuple[Any, Any]]:
    """The rows that differ, both sides: the assertion's message."""
    return [(ta.slice(i, 1).to_pylist()[0], tb.slice(i, 1).to_pylist()[0]) for i in index]


def table(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def key(table: Table, check: str | None = None) -> str:
    """How Dagster writes a table's asset key (`gold/gold_trend_by_cv`), and one of its
    checks (`...:flatlined_signals`): the tests' names come from the registry too."""
    return "/".join(table.path) + (f":{check}" if check else "")
