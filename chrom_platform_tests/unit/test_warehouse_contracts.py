"""The dbt project and the Python side name the same things: signals, instrument ranges,
paths. And the freshness rule, as a pure function."""

from __future__ import annotations

import csv
import re

import pytest
import yaml

from chrom_platform.defs.warehouse.freshness import lag_behind_landing
from chrom_platform.lib.core.contracts import SIGNAL_SPECS, SIGNALS
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_PEAKS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MONITORING_STATE,
)
from chrom_platform.resources import DBT_PROJECT_DIR, build_resources
from chrom_platform.settings import Settings, SettingsError


def test_the_seed_is_the_contracts_signal_specs() -> None:
    with open(DBT_PROJECT_DIR / "seeds" / "signal_specs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["signal"] for r in rows] == list(SIGNALS)
    for r in rows:
        spec = SIGNAL_SPECS[r["signal"]]
        assert (float(r["valid_min"]), float(r["valid_max"])) == (spec.valid_min, spec.valid_max)
        assert (r["unit"], r["description"]) == (spec.unit, spec.description)


def test_the_dbt_signal_list_is_the_contracts() -> None:
    text = (DBT_PROJECT_DIR / "macros" / "contracts.sql").read_text()
    listed = re.search(r"return\(\[(.*?)\]\)", text, re.S)
    assert listed is not None
    assert tuple(re.findall(r"'(\w+)'", listed.group(1))) == SIGNALS


def test_dbt_and_settings_default_to_the_same_warehouse_file() -> None:
    profile = (DBT_PROJECT_DIR / "profiles.yml").read_text()
    assert "env_var('CHROM_DATA_DIR', '../.data') ~ '/warehouse/chrom.duckdb'" in profile
    s = Settings.from_env({})
    # dbt runs in dbt_chrom/, so '../.data' is the project's .data
    assert s.warehouse.duckdb_path == str(
        DBT_PROJECT_DIR.parent / ".data" / "warehouse" / "chrom.duckdb"
    )
    assert s.warehouse.target == "local"
    assert Settings.from_env({"CHROM_PROFILE": "gcp"}).warehouse.target == "prod"
    assert s.warehouse.dbt_vars() == {
        "duckdb_path": s.warehouse.duckdb_path,
        "landing_root": s.landing_uri,
    }


def test_the_dbt_resource_knows_its_dbt_without_running_it(monkeypatch, tmp_path) -> None:
    """dagster-dbt asks `dbt --version` (3 s) and opens an adapter (1.5 s) before every dbt
    step; ours reads the version of the dbt-core installed beside it and opens none."""
    from importlib.metadata import version

    import dagster_dbt.core.resource as dbt_resource
    from packaging.version import Version

    def refuse(*_a: object, **_k: object) -> bytes:
        raise AssertionError("the dbt resource ran a command to learn dbt's version")

    monkeypatch.setattr(dbt_resource, "check_output", refuse)
    dbt = build_resources(Settings.from_env({}))["dbt"]
    assert dbt._cli_version == Version(version("dbt-core"))
    assert dbt._cli_version.major < 2  # dbt Core: dagster-dbt parses its events as such
    assert dbt._initialize_dbt_core_adapter(["build"]) is None
    # a dbt installed elsewhere is still asked
    elsewhere = tmp_path / "dbt"
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    other = type(dbt)(project_dir=dbt.project_dir, dbt_executable=str(elsewhere))
    with pytest.raises(AssertionError, match="ran a command"):
        _ = other._cli_version


def test_an_unknown_dbt_target_is_named() -> None:
    with pytest.raises(SettingsError, match=r"CHROM_DBT_TARGET.*'staging'"):
        Settings.from_env({"CHROM_DBT_TARGET": "staging"})


def test_snowflake_settings_come_from_the_environment_without_the_passphrase() -> None:
    s = Settings.from_env(
        {
            "CHROM_PROFILE": "gcp",
            "SNOWFLAKE_ACCOUNT": "acme-xy123",
            "SNOWFLAKE_PRIVATE_KEY_PATH": "/secrets/key.p8",
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "not-kept",
        }
    )
    cfg = s.warehouse
    assert cfg.target == "prod"
    assert cfg.snowflake == {"account": "acme-xy123", "private_key_file": "/secrets/key.p8"}


@pytest.mark.parametrize(
    ("landing_at", "asset_at", "now", "passed", "lag"),
    [
        (None, None, 1000.0, True, 0.0),  # nothing landed: nothing to be behind
        (100.0, 150.0, 1000.0, True, 0.0),  # caught up
        (100.0, None, 500.0, True, 400.0),  # never built, landed 400 s ago: within 900 s
        (100.0, 50.0, 1001.0, False, 901.0),  # behind by more than allowed
        (100.0, 50.0, 1000.0, True, 900.0),  # exactly at the limit
    ],
)
def test_lag_behind_landing(landing_at, asset_at, now, passed, lag) -> None:
    res = lag_behind_landing(landing_at, asset_at, now, max_lag_s=900.0)
    assert (res.passed, res.lag_s) == (passed, lag)


def test_the_python_gold_tables_are_declared_in_dbt_with_their_columns() -> None:
    """A newcomer searching the dbt project finds every gold table: the ones the Python
    analytics write are a dbt source, column for column as pipeline.py writes them."""
    from chrom_platform.lib.analytics import pipeline

    doc = yaml.safe_load((DBT_PROJECT_DIR / "models/gold/__analytics_sources.yml").read_text())
    (source,) = doc["sources"]
    assert source["schema"] == pipeline.SCHEMA
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in source["tables"]}
    written = {
        GOLD_COLUMN_PERFORMANCE.name: pipeline.PERF_SCHEMA,
        GOLD_BATCH_PEAKS.name: pipeline.PEAKS_SCHEMA,
        GOLD_GOLDEN_ENVELOPE.name: pipeline.ENVELOPE_SCHEMA,
        GOLD_BATCH_DRIFT.name: pipeline.DRIFT_SCHEMA,
        GOLD_BATCH_ALARMS.name: pipeline.ALARM_SCHEMA,
        GOLD_BATCH_VERDICT.name: pipeline.VERDICT_SCHEMA,
        GOLD_MONITORING_STATE.name: pipeline.STATE_SCHEMA,
    }
    assert set(written) == {t.name for t in pipeline.TABLES}
    assert declared == {name: schema.names for name, schema in written.items()}
    for t in source["tables"]:
        assert t["config"]["meta"]["dagster"]["asset_key"] == ["gold", t["name"]]
        assert all(c.get("description") for c in t["columns"]), t["name"]


def test_a_table_written_by_key_takes_a_new_column_and_keeps_its_rows(tmp_path) -> None:
    """The analytics write some tables batch by batch: a column a newer version writes
    (gold_column_performance.not_applicable) is added, the stored rows kept with null."""
    import pyarrow as pa

    from chrom_platform.lib.io.warehouse import WarehouseConfig

    cfg = WarehouseConfig("local", str(tmp_path / "w.duckdb"), str(tmp_path))
    with cfg.connect(read_only=False) as wh:
        old = pa.table({"batch_id": ["a", "b"], "x": [1.0, 2.0]})
        wh.write_table("gold", "t", old, replace_key="batch_id")
        new = pa.table({"batch_id": ["b"], "x": [3.0], "why": ["ramp"], "n": [4]})
        wh.write_table("gold", "t", new, replace_key="batch_id")
        rows = wh.query("select * from gold.t order by batch_id")
    assert rows == [
        {"batch_id": "a", "x": 1.0, "why": None, "n": None},
        {"batch_id": "b", "x": 3.0, "why": "ramp", "n": 4},
    ]


_HOLD = """
import sys, time
from chrom_platform.lib.io.warehouse import duckdb_file_lock
with duckdb_file_lock(sys.argv[1], shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
"""


def _holder(db, mode: str):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_for_the_warehouse_file_and_names_the_writer(tmp_path) -> None:
    """The lock that makes the warehouse pool's exclusion certain: a writer keeps other
    processes out (the wait ends in an error naming its pid), readers share, and a process
    that holds the file does not wait for itself."""
    import os

    from chrom_platform.lib.io.warehouse import duckdb_file_lock

    db = tmp_path / "chrom.duckdb"
    writer = _holder(db, "exclusive")
    heard: list[str] = []
    try:
        with (
            pytest.raises(TimeoutError, match=rf"after 1 s \(last writer: pid {writer.pid} on"),
            duckdb_file_lock(db, shared=True, timeout_s=0.6, on_wait=heard.append),
        ):
            pass
        assert len(heard) == 1
        assert f"pid {writer.pid}" in heard[0]
    finally:
        writer.communicate("\n", timeout=10)
    reader = _holder(db, "shared")
    try:
        with duckdb_file_lock(db, shared=True, timeout_s=5):  # readers share
            pass
        with pytest.raises(TimeoutError), duckdb_file_lock(db, timeout_s=0.3):
            pass  # a writer waits for the reader
    finally:
        reader.communicate("\n", timeout=10)
    with duckdb_file_lock(db, timeout_s=1), duckdb_file_lock(db, timeout_s=1):
        assert f"pid {os.getpid()}" in (tmp_path / "chrom.duckdb.lock").read_text()
    writer = _holder(db, "exclusive")  # released by the nested holds above
    writer.communicate("\n", timeout=10)
    assert writer.returncode == 0
