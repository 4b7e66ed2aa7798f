"""`chrom import` round trip, for real: the simulator's history exported as a plant's CSV
files (both shapes, through `chrom-sim export-csv`), imported with `chrom import`, built
with dbt and the analytics, gives the same gold tables as the same history landed directly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from chrom_platform.lib.analytics import pipeline
from chrom_platform.lib.core.contracts import IMPORTS_PREFIX
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_GOLDEN_ENVELOPE,
)
from chrom_platform.lib.io.warehouse import DBT_BUILD, WarehouseConfig
from chrom_platform_tests.warehouse_helpers import History, python_module
from simulator import DEFAULT_EQUIPMENT, DEFAULT_RECIPES

#: 2 units x 3 batches with holds and faults (sensor dropouts, a column and a load fault)
HISTORY = ["--units", "2", "--batches-per-unit", "3", "--seed", "23", "--fault-rate", "0.4"]
BATCHES = 6
#: when each history's files were loaded: the only columns allowed to differ
LOAD_TIME_COLUMNS = {"_source_loaded_at", "_loaded_at", "loaded_at", "computed_at"}


def _cli(module: str, *args: str) -> dict:
    proc = python_module(module, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _import(mapping: Path, lake: Path, *files: Path) -> dict:
    return _cli(
        "chrom_platform.cli",
        "import",
        *map(str, files),
        "--mapping",
        str(mapping),
        "--equipment",
        DEFAULT_EQUIPMENT,
        "--recipes",
        DEFAULT_RECIPES,
        "--landing",
        str(lake),
    )


def _objects(lake: Path) -> dict[str, str]:
    return {
        str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trip(md, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("import")
    direct = History(root / "direct", md)
    start = "2025-03-08"  # New York (the long export's zone) moves its clocks on March 9
    out = _cli(
        "simulator.cli",
        "backfill",
        *HISTORY,
        "--start",
        start,
        "--landing",
        str(direct.lake),
        "--truth",
        str(direct.truth_dir),
        "--workers",
        "1",
        "--quiet",
    )
    exports = {}
    for shape in ("wide", "long"):
        exports[shape] = _cli(
            "simulator.cli", "export-csv", *HISTORY, "--start", start, "--shape", shape,
            "--out", str(root / shape),
        )  # fmt: skip
    wide = History(root / "from_wide", md)
    long = History(root / "from_long", md)
    imports = {
        "wide": _import(root / "wide" / "mapping.yaml", wide.lake, root / "wide" / "readings"),
        "long": _import(root / "long" / "mapping.yaml", long.lake, root / "long" / "historian.csv"),
    }
    for h in (direct, wide):
        h.dbt(*DBT_BUILD)
        with WarehouseConfig("local", str(h.duckdb_path), str(h.lake)).connect(
            read_only=False
        ) as wh:
            pipeline.run(wh, full=True)
    return {
        "root": root,
        "direct": direct,
        "wide": wide,
        "long": long,
        "backfill": out,
        "exports": exports,
        "imports": imports,
    }


def _gold(h: History) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(h.duckdb_path), read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'gold'"
            ).fetchall()
        ]
        out = {}
        for t in sorted(names):
            df = con.execute(f"select * from gold.{t}").df()
            df = df.drop(columns=[c for c in df.columns if c in LOAD_TIME_COLUMNS])
            out[t] = df.sort_values(list(df.columns)).reset_index(drop=True) if len(df) else df
        return out


def test_both_shapes_import_every_batch_and_reading(trip: dict) -> None:
    for shape in ("wide", "long"):
        got = trip["imports"][shape]["imported"]
        assert got["batches"] == trip["backfill"]["batches"] == BATCHES, shape
        assert got["readings"] == trip["backfill"]["readings"], shape
        assert got["lab_results"] == 2 * BATCHES, (
            shape
        )  # feed and pool per batch: the reportable ones
        assert got["holds"] > 0, "the history has holds, found from flow below the dead band"


def test_the_long_export_lands_exactly_what_the_wide_one_does(trip: dict) -> None:
    """Local times without an offset (wide, Kolkata) and with offsets that change with
    daylight saving (long, New York) come to the same instants."""
    text = (trip["root"] / "long" / "historian.csv").read_text()
    assert "-05:00," in text
    assert "-04:00," in text
    long, wide = _objects(trip["long"].lake), _objects(trip["wide"].lake)
    # the same data objects; each keeps its own report (other files, other inferences)
    reports = [{k for k in o if k.startswith(f"{IMPORTS_PREFIX}/")} for o in (long, wide)]
    assert [len(r) for r in reports] == [1, 1]
    assert reports[0] != reports[1]
    assert {k: v for k, v in long.items() if k not in reports[0]} == {
        k: v for k, v in wide.items() if k not in reports[1]
    }


def test_imported_readings_and_events_are_the_directly_landed_ones(trip: dict) -> None:
    """Readings and batch events byte for byte; lab results differ only in what a LIMS
    export does not carry (failed attempts, calibration), which gold does not read."""
    direct, wide = _objects(trip["direct"].lake), _objects(trip["wide"].lake)
    for prefix in ("landing/readings/", "landing/batch_events/", "landing/master_data/"):
        d = {k: v for k, v in direct.items() if k.startswith(prefix)}
        w = {k: v for k, v in wide.items() if k.startswith(prefix)}
        assert d, prefix
        assert w == d, prefix


def test_gold_tables_from_the_import_equal_gold_from_the_direct_landing(trip: dict) -> None:
    direct, wide = _gold(trip["direct"]), _gold(trip["wide"])
    assert set(wide) == set(direct)
    assert {GOLD_BATCH_RESULTS.name, GOLD_BATCH_VERDICT.name, GOLD_GOLDEN_ENVELOPE.name} <= set(
        direct
    )
    compared = 0
    for t, d in direct.items():
        w = wide[t]
        assert list(w.columns) == list(d.columns), t
        assert len(w) == len(d), t
        for c in d.columns:
            if pd.api.types.is_float_dtype(d[c]):
                np.testing.assert_allclose(w[c], d[c], rtol=1e-9, atol=1e-9, err_msg=f"{t}.{c}")
            else:
                assert w[c].astype(str).tolist() == d[c].astype(str).tolist(), f"{t}.{c}"
            compared += len(d)
    assert compared > 100_000


def test_importing_the_same_files_again_writes_the_same_objects(trip: dict) -> None:
    before = _objects(trip["wide"].lake)
    again = _import(
        trip["root"] / "wide" / "mapping.yaml",
        trip["wide"].lake,
        trip["root"] / "wide" / "readings",
    )
    assert again["imported"]["batches"] == BATCHES
    assert _objects(trip["wide"].lake) == before
