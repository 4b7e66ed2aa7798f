"""One master data for live and warehouse: the consumers judge with the newest master data
snapshot in the landing zone, the one dbt reads, so a change landed once (a repacked column's
volume) reaches the live CV in InfluxDB and the warehouse's CV alike (issue 25)."""

from __future__ import annotations

import os

import orjson
import pytest

from chrom_platform.lib.core.contracts import READING_SCHEMA, master_data_key
from chrom_platform.lib.core.master_data import content_hash, parse_master_data
from chrom_platform.lib.core.tables import GOLD_TREND_BY_CV, SILVER_UNITS
from chrom_platform.lib.io.landing import json_bytes
from chrom_platform.lib.io.transport import (
    READINGS_TOPIC,
    OutMessage,
    ensure_readings_topology,
)
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.io.warehouse import DBT_BUILD
from chrom_platform.settings import Settings
from chrom_platform_tests.e2e.streaming_helpers import fresh_database, influx_points
from chrom_platform_tests.truth import assert_cv_matches_truth, truth_cv
from chrom_platform_tests.warehouse_helpers import History, run_dbt, table

pytestmark = pytest.mark.e2e


def test_a_master_data_change_reaches_live_and_warehouse_cv_alike(
    md, influx_server, tmp_path
) -> None:
    h = History(tmp_path, md)
    (sim,) = h.land(units=1, batches_per_unit=1, seed=8, fault_rate=0.0)  # snapshot 1 lands
    unit_id = sim.plan.unit.unit_id
    # the column repacked: a 10% taller bed, in a second equipment snapshot landed after the first
    # (and not in the configured YAML files the consumers used to read)
    equipment = md.equipment_record()
    (row,) = [u for u in equipment["units"] if u["unit_id"] == unit_id]
    row["bed_height_cm"] = row["bed_height_cm"] * 1.1
    row["column_volume_l"] = round(row["column_volume_l"] * 1.1, 4)
    repacked = parse_master_data(
        equipment, md.recipes_record(), equipment_source="test", recipes_source="test"
    )
    key = h.lake / master_data_key("equipment", content_hash(equipment))
    key.write_bytes(json_bytes(equipment))
    later = key.stat().st_mtime + 2  # a later second than the first snapshot's
    os.utime(key, (later, later))

    sink = fresh_database(influx_server)
    settings = Settings.from_env(
        {
            "CHROM_DATA_DIR": str(tmp_path / "data"),
            "CHROM_LANDING_URI": str(h.lake),
            "CHROM_TRANSPORT_URI": str(tmp_path / "queue.db"),
            "CHROM_INFLUX_URL": influx_server.url,
            "CHROM_INFLUX_DATABASE": sink.database,
            "CHROM_INFLUX_USER": influx_server.admin.username,
            "CHROM_INFLUX_PASSWORD": influx_server.admin.password,
        }
    )
    q = SqliteQueue(tmp_path / "queue.db")
    ensure_readings_topology(q)
    q.publish(
        READINGS_TOPIC,
        [OutMessage(orjson.dumps(m), {"schema": READING_SCHEMA}, unit_id) for m in sim.messages()],
    )
    bridge = settings.streaming.bridge()
    try:
        assert bridge.md.units[unit_id].column_volume_l == row["column_volume_l"]
        rep = bridge.drain(10**6, 120.0)
    finally:
        bridge.transport.close()
    assert rep.written == int(sim.keep.sum())
    assert not rep.dead_lettered
    live = influx_points(sink)

    run_dbt(DBT_BUILD, duckdb_path=h.duckdb_path, landing=h.lake, work=tmp_path / "dbt")
    with h.connect() as con:
        gold = {
            (r["unit_id"], int(r["seq"])): r
            for r in table(con, f"select unit_id, seq, batch_cv from {GOLD_TREND_BY_CV}")
        }
        (volume,) = table(
            con,
            f"select column_volume_l as v from {SILVER_UNITS} where unit_id = '{unit_id}'",
        )
    assert volume["v"] == row["column_volume_l"]

    # both on the repacked volume: the simulator's totalized volume over the new bed
    want = truth_cv([sim], repacked)
    assert_cv_matches_truth(live, want)
    assert_cv_matches_truth(gold, want)
    # ... and not on the configured files' (10% apart, far outside the 0.1% tolerance)
    with pytest.raises(AssertionError, match="batch_cv off"):
        assert_cv_matches_truth(live, truth_cv([sim], md))
