"""The `prod` target (dbt-snowflake) as far as this machine allows: parse and compile every
model with the Snowflake adapter, then build the whole project on fakesnow (Snowflake SQL
executed on DuckDB; see snowflake_stand_in.py) from raw tables loaded as Snowpipe would,
and require the same gold as the DuckDB target builds from the same landing zone."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from chrom_platform.lib.core.tables import (
    BRONZE_READINGS,
    GOLD_BATCH_RESULTS,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BINNED,
    GOLD_TREND_BY_CV,
    SILVER_UNITS,
)
from chrom_platform.lib.io.warehouse import DBT_BUILD
from chrom_platform_tests.warehouse_helpers import (
    History,
    assert_same_tables,
    gold_tables,
    python_module,
)

GOLD = {
    GOLD_TREND_BY_CV.name: "unit_id, ts",
    GOLD_PHASE_SUMMARY.name: "batch_id, phase",
    GOLD_BATCH_RESULTS.name: "batch_id",
    GOLD_TREND_BINNED.name: "batch_id, phase, cv_bin",
}


def stand_in(lake: Path, work: Path, *dbt_args: str) -> str:
    proc = python_module(
        "chrom_platform_tests.snowflake_stand_in",
        "--lake",
        str(lake),
        "--db-dir",
        str(work / "fakesnow"),
        "--",
        *dbt_args,
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def history(md, tmp_path_factory) -> History:
    """A small history built twice: by the local target and by `prod` on fakesnow."""
    h = History(tmp_path_factory.mktemp("snowflake"), md)
    h.land(units=2, batches_per_unit=2, seed=5, fault_rate=0.5)
    h.dbt(*DBT_BUILD)
    out = stand_in(h.lake, h.root / "prod", *DBT_BUILD)
    assert "snowpipe stand-in loaded" in out
    return h


def test_every_model_compiles_to_snowflake_sql(history: History) -> None:
    compiled = history.root / "prod" / "target" / "compiled" / "chrom" / "models"
    models = {p.stem: p.read_text() for p in compiled.rglob("*.sql")}
    expected = {p.stem for p in (Path(__file__).parents[2] / "dbt_chrom" / "models").rglob("*.sql")}
    assert expected <= set(models), f"not compiled: {sorted(expected - set(models))}"
    # the dispatched macros picked the Snowflake forms
    assert "raw:unit_id::varchar" in models[BRONZE_READINGS.name]
    assert "lateral flatten" in models[SILVER_UNITS.name]
    assert "timestampdiff(millisecond" in models[GOLD_TREND_BY_CV.name]
    assert "read_parquet" not in models[BRONZE_READINGS.name]


def test_prod_build_on_fakesnow_gives_the_same_gold_as_duckdb(history: History) -> None:
    with history.connect() as local:
        want = gold_tables(local, GOLD)
    with duckdb.connect(str(history.root / "prod" / "fakesnow" / "CHROM.db"), read_only=True) as sf:
        got = gold_tables(sf, GOLD)
    assert all(t.num_rows > 0 for t in want.values()), {n: t.num_rows for n, t in want.items()}
    # Snowflake's NUMBER columns compare as the DuckDB target's types (assert_same_tables
    # casts the second side to the first's)
    assert_same_tables(want, got)
