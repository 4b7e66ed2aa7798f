"""Dagster drives the streaming path: the live bridge sensor writes to a real InfluxDB and
reports the live asset and its freshness check; the landing sensor lands the stream."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from chrom_platform.definitions import defs as lazy_defs
from chrom_platform.defs.landing.assets import landing_sensor
from chrom_platform.defs.streaming.assets import FRESH_CHECK, LIVE_KEY, live_bridge_sensor
from chrom_platform.lib.core.contracts import EVENTS_PREFIX, ts_to_iso
from chrom_platform.lib.io.objectstore import LocalObjectStore
from chrom_platform.lib.io.transport import OutMessage, ensure_readings_topology
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.resources import build_resources
from chrom_platform.settings import Settings
from chrom_platform_tests.e2e.streaming_helpers import fresh_database
from chrom_platform_tests.unit.test_readings_decoder import msg

S = 1_000_000_000


def _event(store: LocalObjectStore, unit: str, batch: str, kind: str, ts_ns: int) -> None:
    e = {"event_type": kind, "batch_id": batch, "unit_id": unit, "ts": ts_to_iso(ts_ns)}
    key = f"{EVENTS_PREFIX}/unit_id={unit}/date={e['ts'][:10]}/{batch}-{kind}.json"
    store.put(key, json.dumps(e).encode())


@pytest.fixture
def env(influx_server, tmp_path):
    db = fresh_database(influx_server).database
    settings = Settings.from_env(
        {
            "CHROM_DATA_DIR": str(tmp_path),
            "CHROM_INFLUX_URL": influx_server.url,
            "CHROM_INFLUX_DATABASE": db,
            "CHROM_INFLUX_USER": influx_server.admin.username,
            "CHROM_INFLUX_PASSWORD": influx_server.admin.password,
            "CHROM_LIVE_STALE_AFTER_S": "60",
        }
    )
    q = SqliteQueue(settings.streaming.transport_uri)
    ensure_readings_topology(q)
    return settings, q, LocalObjectStore(settings.landing_uri)


@contextlib.contextmanager
def sensor_context(settings: Settings) -> Iterator[dg.SensorEvaluationContext]:
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(instance=instance, resources=build_resources(settings)) as ctx,
    ):
        yield ctx


def _asset_events(result: dg.SensorResult) -> tuple[list, list]:
    mats = [e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)]
    checks = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    return mats, checks


def test_live_bridge_sensor_writes_and_reports_freshness(env):
    settings, q, store = env
    now = time.time_ns() // S * S
    batch = "SKID-01-B00001"
    q.publish(
        "chrom-readings",
        [
            OutMessage(msg(seq=5000 + i, ts=now - (300 - i) * S, batch_id=batch), {}, "SKID-01")
            for i in range(300)
        ],
    )
    _event(store, "SKID-01", batch, "batch_start", now - 301 * S)
    _event(store, "SKID-02", "SKID-02-B00007", "batch_start", now - 600 * S)  # silent unit
    with sensor_context(settings) as ctx:
        first = live_bridge_sensor(ctx)
        mats, checks = _asset_events(first)
        assert mats[0].asset_key == LIVE_KEY
        assert mats[0].metadata["points_written"].value == 300
        assert mats[0].metadata["dead_lettered"].value == 0
        assert 0 < mats[0].metadata["lag_p50_s"].value < 600
        (check,) = checks
        assert check.check_name == FRESH_CHECK
        assert not check.passed  # SKID-02 runs a batch but sent nothing
        assert check.metadata["stale_units"].value == ["SKID-02"]
        assert check.metadata["running_units"].value == {
            "SKID-01": batch,
            "SKID-02": "SKID-02-B00007",
        }
        # SKID-02's batch ends: the check passes, reported at once because it changed
        _event(store, "SKID-02", "SKID-02-B00007", "batch_end", now - 10 * S)
        ctx.update_cursor(first.cursor)
        second = live_bridge_sensor(ctx)
        mats, checks = _asset_events(second)
        assert mats == []  # nothing new to write
        assert [c.passed for c in checks] == [True]
        # unchanged result within the minute: not re-reported
        ctx.update_cursor(second.cursor)
        third = live_bridge_sensor(ctx)
        assert third.asset_events == []
    # three ticks, one sink and one parse of the master data: what lasts across ticks
    parts = settings.streaming.lasting()
    assert parts.master_data_loads == 1
    assert parts.sink.database == settings.streaming.influx_database


def test_the_bridges_lasting_parts_reread_master_data_when_a_file_changes(env, tmp_path):
    """A sensor's ticks share the sink and the sources, and parse the configured master
    data files again only when one changes: a changed unit reaches the next tick's bridge."""
    import dataclasses

    import yaml

    settings, _, _ = env
    cfg = settings.streaming
    files = {}
    for name, src in (("equipment", cfg.equipment_path), ("recipes", cfg.recipes_path)):
        files[name] = tmp_path / Path(src).name
        files[name].write_bytes(Path(src).read_bytes())
    # without a landing zone to follow (test_one_master_data.py has the landed snapshots)
    cfg = dataclasses.replace(
        cfg,
        equipment_path=str(files["equipment"]),
        recipes_path=str(files["recipes"]),
        master_data_uri=None,
    )
    parts = cfg.lasting()
    assert cfg.lasting() is parts
    first = parts.bridge()
    second = parts.bridge()
    first.transport.close()
    second.transport.close()
    assert parts.master_data_loads == 1
    assert first.sink is second.sink
    assert first.md is second.md
    doc = yaml.safe_load(files["equipment"].read_text())
    doc["units"].append({**doc["units"][0], "unit_id": "SKID-99"})
    files["equipment"].write_text(yaml.safe_dump(doc))
    third = parts.bridge()
    third.transport.close()
    assert parts.master_data_loads == 2
    assert "SKID-99" in third.md.units
    assert "SKID-99" not in first.md.units


def test_freshness_fails_when_points_stop(env):
    settings, q, store = env
    now = time.time_ns() // S * S
    q.publish(
        "chrom-readings",
        [OutMessage(msg(seq=7000 + i, ts=now - (400 - i) * S), {}, "SKID-01") for i in range(100)],
    )  # last point 300 s ago, window 60 s
    _event(store, "SKID-01", "SKID-01-B00001", "batch_start", now - 500 * S)
    with sensor_context(settings) as c:
        _, checks = _asset_events(live_bridge_sensor(c))
    # the age is taken during the tick: 301 s after `now` at the earliest, and no later than
    # the tick's end (a loaded machine may take seconds over it), to its 0.1 s rounding
    elapsed_s = (time.time_ns() - now) / S
    assert not checks[0].passed
    age = checks[0].metadata["newest_point_age_s"].value["SKID-01"]
    assert 301 - 0.1 <= age <= 301 + elapsed_s + 0.1


def test_landing_sensor_lands_the_stream_and_reports_it(env):
    settings, q, _store = env
    q.publish(
        "chrom-readings",
        [
            OutMessage(msg(seq=9000 + i, ts=1_772_431_200 * S + i * S), {}, "SKID-01")
            for i in range(50)
        ],
    )
    with sensor_context(settings) as c:
        result = landing_sensor(c)
    (mat,) = [e for e in result.asset_events if e.asset_key == dg.AssetKey(["landing", "readings"])]
    assert mat.metadata["streamed_readings_landed"].value == 50
    assert mat.metadata["new_objects"].value == 1
    assert mat.metadata["latest_object"].value.endswith("SKID-01-000000009000-000000009049.parquet")


def test_code_location_has_the_live_asset_and_its_check(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROM_DATA_DIR", str(tmp_path))
    defs = lazy_defs()
    assert LIVE_KEY in set(defs.resolve_all_asset_keys())
    assert defs.resolve_sensor_def("live_bridge_sensor").minimum_interval_seconds == 5
    graph = defs.resolve_asset_graph()
    assert dg.AssetCheckKey(LIVE_KEY, FRESH_CHECK) in graph.asset_check_keys
