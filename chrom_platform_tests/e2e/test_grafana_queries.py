"""Every dashboard and alert query, run against the real stores with Grafana's variables
filled in: InfluxQL against the local InfluxDB after batches streamed through the live
bridge, warehouse SQL against the DuckDB gold tables of a Dagster-built history, and the
Snowflake variants of the same SQL on fakesnow (Snowflake SQL on DuckDB) loaded with the
same gold tables. Each must return the columns its panel expects, and rows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import orjson
import pytest

from chrom_platform.defs.dashboards.assets import snapshot_tables, warehouse_snapshot
from chrom_platform.grafana.alerts import rule_specs
from chrom_platform.grafana.boards import TREND_SIGNALS, Recorded
from chrom_platform.grafana.generate import boards
from chrom_platform.grafana.queries import Query, substitute
from chrom_platform.lib.analytics.live import EnvelopeSource
from chrom_platform.lib.analytics.live_mspc import model_source
from chrom_platform.lib.core.contracts import READING_SCHEMA, iso_to_ns
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MSPC_SCORES,
    GOLD_MSPC_VERDICT,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BINNED,
)
from chrom_platform.lib.io.influx import InfluxV1Sink
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.lib.io.transport import READINGS_TOPIC, OutMessage, ensure_readings_topology
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import LiveBridge
from chrom_platform.resources import build_resources
from chrom_platform_tests.conftest import START_NS
from chrom_platform_tests.e2e.analytics_history import CLEAN_BATCHES, FAULT
from chrom_platform_tests.e2e.streaming_helpers import fresh_database
from chrom_platform_tests.warehouse_helpers import DAY_NS, History
from simulator.batch import SimBatch, plan_batch, simulate
from simulator.landing import recipe_for_unit

UNIT = "SKID-01"
#: measurements written at wall-clock time (the bridge's own health), not reading time
WALL_CLOCK = ("bridge_health", "live_status")
#: panels whose empty result is the healthy state of the test history
MAY_BE_EMPTY = {"panel:Column alarms"}
#: gold tables the dashboards read (copied into fakesnow for the Snowflake variants)
GOLD_TABLES = (
    GOLD_BATCH_RESULTS.name,
    GOLD_BATCH_VERDICT.name,
    GOLD_TREND_BINNED.name,
    GOLD_GOLDEN_ENVELOPE.name,
    GOLD_COLUMN_PERFORMANCE.name,
    GOLD_BATCH_ALARMS.name,
    GOLD_PHASE_SUMMARY.name,
    GOLD_MSPC_SCORES.name,
    GOLD_MSPC_VERDICT.name,
)


def all_queries(profile: str = "local") -> list[Recorded]:
    return [r for b in boards(profile) for r in b.queries]


@pytest.fixture(scope="module")
def live(built, md, influx_server, tmp_path_factory) -> dict[str, Any]:
    """Two batches of SKID-01 through the live bridge: a whole clean one, then a faulty one
    cut off ten minutes after its fault's onset (the unit is still running: its data has
    gone stale)."""
    h: History = built[0]
    unit = md.units[UNIT]
    recipe = md.recipes[recipe_for_unit(md, 0)]
    sims: list[SimBatch] = []
    for i, fault in ((0, None), (1, FAULT)):
        plan = plan_batch(
            unit=unit,
            resin=md.resins[unit.resin],
            recipe=recipe,
            unit_index=0,
            batch_index=CLEAN_BATCHES + 5 + i,
            earliest_start_ns=START_NS + (40 + i) * DAY_NS,
            seed=77,
            fault_rate=0.0,
            force_fault=fault,
        )
        sims.append(simulate(plan))
    clean, faulty = sims
    onset_ns = iso_to_ns(faulty.truth["fault"]["onset_ts"])
    msgs = clean.messages() + [
        m for m in faulty.messages() if iso_to_ns(m["ts"]) <= onset_ns + 600 * 10**9
    ]
    work = tmp_path_factory.mktemp("grafana-live")
    queue = SqliteQueue(work / "queue.db")
    ensure_readings_topology(queue)
    queue.publish(
        READINGS_TOPIC,
        [OutMessage(orjson.dumps(m), {"schema": READING_SCHEMA}, m["unit_id"]) for m in msgs],
    )
    sink = fresh_database(influx_server)
    store = open_store(str(h.lake))
    bridge = LiveBridge(
        queue,
        sink,
        md,
        envelope=EnvelopeSource(store, 6.0, 0.1),
        models=model_source(store, 0.1),
    )
    rep = bridge.drain(len(msgs) + 1, 120.0)
    queue.close()
    assert rep.written == len(msgs)
    ts = [iso_to_ns(m["ts"]) for m in msgs]
    # Grafana reads as the server's read-only user (provisioning: CHROM_INFLUX_READER_*)
    influx_server.grant_read(sink.database)
    reader = InfluxV1Sink(influx_server.url, sink.database, credentials=influx_server.reader)
    return {
        "sink": sink,
        "reader": reader,
        "first_ns": min(ts),
        "last_ns": max(ts),
        "values": {
            "unit": UNIT,
            "recipe": recipe.recipe,
            "batch": faulty.plan.batch_id,
        },
        "clean": clean.plan.batch_id,
        "faulty": faulty.plan.batch_id,
    }


def run_influxql(
    live: dict[str, Any],
    q: Query,
    signal: str,
    window_s: int | None = None,
    sink: InfluxV1Sink | None = None,
) -> list[dict]:
    """Run as Grafana does: variables interpolated, as the read-only user (unless `sink`)."""
    text = substitute(q.text, {**live["values"], "signal": signal}, sql=False)
    wall = any(f'"{m}"' in text for m in WALL_CLOCK)
    if window_s is None:
        span = (
            "time > now() - 1h"
            if wall
            else f"time >= {live['first_ns']} AND time <= {live['last_ns']}"
        )
    else:  # an alert: its relative window, ending now (wall clock) or at the newest reading
        end = "now()" if wall else str(live["last_ns"])
        span = f"time > {end} - {window_s}s"
    text = text.replace("$timeFilter", span).replace("$__interval", "30s")
    assert not re.search(r"\$[\w{]", text), f"unsubstituted variable in {text}"
    return (sink or live["reader"]).query(text)


def test_every_influxql_panel_variable_and_annotation_returns_its_columns(live) -> None:
    influx = [r for r in all_queries() if r.query.kind == "influxql"]
    assert len(influx) >= 12
    for r in influx:
        signals = TREND_SIGNALS if "$signal" in r.query.text else ("ph",)
        for signal in signals:
            series = run_influxql(live, r.query, signal)
            where = f"{r.dashboard} {r.where} {r.ref_id} ({signal})"
            assert series, f"{where}: no rows"
            expected = {c.replace("$signal", signal) for c in r.query.columns}
            for s in series:
                got = set(s["columns"]) | set(s.get("tags") or {})
                assert expected <= got, f"{where}: expected {expected}, got {got}"
                assert s["values"], where


def test_live_panels_show_what_the_bridge_wrote(live) -> None:
    """Not just shapes: the running batch's CV axis, the recent batches and the live status."""
    board = next(b for b in boards("local") if b.uid == "chrom-live-run")
    q = {r.where + r.ref_id: r.query for r in board.queries}
    title = "panel:$signal by batch CV: running batch, recent batches, golden envelope"
    running = run_influxql(live, q[title + "A"], "cond_ms_cm")[0]
    cv = [row[1] for row in running["values"]]
    assert cv == sorted(cv)
    assert cv[0] < 0.1 < cv[-1]
    recent = run_influxql(live, q[title + "B"], "cond_ms_cm")
    assert {s["tags"]["batch_id"] for s in recent} == {live["clean"]}
    status = run_influxql(live, q["panel:Unit statusA"], "ph")[0]
    row = dict(zip(status["columns"], status["values"][0], strict=True))
    assert row["running"] == 1
    assert row["age_s"] > 3600  # simulated readings are old


def test_alert_rules_fire_on_the_faulty_running_batch_and_not_on_the_clean_one(live, built) -> None:
    specs = {s.uid: s for s in rule_specs()}
    assert set(specs) == {
        "chrom-drift-out-of-envelope",
        "chrom-live-data-stale",
        "chrom-bridge-silent",
        "chrom-column-beyond-limits",
        "chrom-batch-result-failed",
    }

    def firing(uid: str) -> dict[str, bool]:
        spec = specs[uid]
        out: dict[str, bool] = {}
        if spec.query.kind == "sql":
            rows = run_sql(built[0].duckdb_path, spec.query, "ph", local_values(built[0]))
            for r in rows:
                out[r["unit_id"]] = _cmp(spec.cmp, r[spec.value], spec.threshold)
            return out
        for s in run_influxql(live, spec.query, "ph", spec.window_s):
            col = s["columns"].index(spec.value)
            vals = [row[col] for row in s["values"] if row[col] is not None]
            reduced = {"max": max, "last": lambda v: v[-1], "sum": sum, "count": len}[spec.reducer](
                vals
            )
            out[",".join(f"{k}={v}" for k, v in sorted((s.get("tags") or {}).items()))] = _cmp(
                spec.cmp, reduced, spec.threshold
            )
        return out

    drift = firing("chrom-drift-out-of-envelope")
    assert drift == {f"batch_id={live['faulty']},unit_id={UNIT}": True}, drift
    assert firing("chrom-live-data-stale") == {f"unit_id={UNIT}": True}
    assert firing("chrom-bridge-silent") == {"": False}  # it just reported
    column = firing("chrom-column-beyond-limits")
    assert column == {"SKID-01": False, "SKID-02": False}
    # each unit's latest batch made up a buffer wrong: out of its spec range
    assert firing("chrom-batch-result-failed") == {"SKID-01": True, "SKID-02": True}


def _cmp(op: str, value: float, threshold: float) -> bool:
    return value > threshold if op == "gt" else value < threshold


# -- warehouse SQL --------------------------------------------------------------------------


def local_values(h: History) -> dict[str, str | list[str]]:
    with h.connect() as con:
        recipe = con.execute(
            f"select recipe from {GOLD_BATCH_RESULTS} where unit_id = ? limit 1", [UNIT]
        ).fetchone()[0]
        batches = [
            r[0]
            for r in con.execute(
                f"select batch_id from {GOLD_BATCH_RESULTS} where unit_id = ? "
                "order by started_at desc limit 3",
                [UNIT],
            ).fetchall()
        ]
    return {"unit": UNIT, "recipe": recipe, "batches": batches, "phase": "Elution"}


def _sql_text(q: Query, profile: str, signal: str, values: dict[str, str | list[str]]) -> str:
    text = substitute(q.for_profile(profile), {**values, "signal": signal}, sql=True)
    assert not re.search(r"\$\w", text), f"unsubstituted variable in {text}"
    return text


def run_sql(path: Path, q: Query, signal: str, values: dict[str, str | list[str]]) -> list[dict]:
    return sql_result(path, q, signal, values)[1]


def sql_result(
    path: Path, q: Query, signal: str, values: dict[str, str | list[str]]
) -> tuple[tuple[str, ...], list[dict]]:
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute(_sql_text(q, "local", signal, values))
        names = tuple(d[0] for d in cur.description)
        return names, [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def snapshot(built) -> Path:
    """The copy of the gold tables Grafana's DuckDB datasource reads, made by its asset."""
    h, _, instance = built
    result = dg.materialize(
        [warehouse_snapshot], resources=build_resources(h.settings()), instance=instance
    )
    assert result.success
    path = Path(
        result.asset_materializations_for_node("dashboards__warehouse_snapshot")[0]
        .metadata["path"]
        .value
    )
    assert path.parent == h.duckdb_path.parent
    return path


def test_the_snapshot_holds_every_gold_table_the_dashboards_read(built, snapshot) -> None:
    h = built[0]
    with duckdb.connect(str(snapshot), read_only=True) as snap, h.connect() as wh:
        for t in snapshot_tables():
            n = snap.execute(f"select count(*) from gold.{t}").fetchone()[0]
            assert n == wh.execute(f"select count(*) from gold.{t}").fetchone()[0] > 0, t


def test_every_sql_panel_and_variable_runs_on_the_duckdb_gold_tables(built, snapshot) -> None:
    h = built[0]
    values = local_values(h)
    sql_queries = [r for r in all_queries() if r.query.kind == "sql"]
    assert len(sql_queries) >= 15
    for r in sql_queries:
        signals = TREND_SIGNALS if "${signal}" in r.query.text else ("ph",)
        for signal in signals:
            # on the file Grafana reads
            names, rows = sql_result(snapshot, r.query, signal, values)
            where = f"{r.dashboard} {r.where} ({signal})"
            assert names == r.query.columns, f"{where}: {names}"
            # a clean history has no column alarms; every other query must return rows
            assert rows or r.where in MAY_BE_EMPTY, f"{where}: no rows"


def test_snowflake_variants_return_the_same_columns_and_rows_on_fakesnow(built, tmp_path) -> None:
    import fakesnow
    import snowflake.connector

    h = built[0]
    values = local_values(h)
    sql_queries = [r for r in all_queries("gcp") if r.query.kind == "sql"]
    checked = 0
    with fakesnow.patch(db_path=str(tmp_path)):
        conn = snowflake.connector.connect(database="CHROM", schema="GOLD")
        # the gold tables, copied as they are from the DuckDB warehouse
        duck = conn.cursor()._duck_conn
        duck.execute(f"attach '{h.duckdb_path}' as src (read_only)")
        for t in GOLD_TABLES:
            duck.execute(f"create table chrom.gold.{t} as select * from src.gold.{t}")
        try:
            for r in sql_queries:
                snow = _sql_text(r.query, "gcp", "cond_ms_cm", values)
                cur = conn.cursor()
                cur.execute(snow)
                names = tuple(d[0] for d in cur.description)
                rows = cur.fetchall()
                local = run_sql(h.duckdb_path, r.query, "cond_ms_cm", values)
                where = f"{r.dashboard} {r.where}"
                assert names == r.query.columns, f"{where}: {names}"
                assert len(rows) == len(local), where
                checked += 1
        finally:
            conn.close()
    assert checked == len(sql_queries)


#: The adversarial run's payload: a batch_id that closed the InfluxQL string literal and
#: dropped the measurement when a panel query was sent with it substituted.
INJECTION = 'B\'; DROP MEASUREMENT "chromatography"; --'


def test_an_injected_identity_cannot_reach_influxdb_or_the_warehouse(live, built, snapshot):
    """Identities are restricted to a safe character set at the decoder (unit test), and
    behind that every dashboard query takes variables in an escaped form (regex for
    InfluxQL, quoted SQL strings): with the payload in every data-derived variable, each
    InfluxQL and SQL query runs as a plain (empty) selection and every point survives."""
    sink: InfluxV1Sink = live["sink"]
    count = 'SELECT count("seq") FROM "chromatography"'
    before = sink.query(count)[0]["values"][0][1]
    hostile = dict.fromkeys(live["values"], INJECTION)
    rules = [s.query for s in rule_specs()]
    for q in [*(r.query for r in all_queries()), *rules]:
        if q.kind == "influxql":
            # as the admin: the escaping alone must hold (the reader could not drop anyway)
            series = run_influxql({**live, "values": hostile}, q, "ph", sink=sink)
            assert all(INJECTION not in str(s.get("tags")) for s in series)
        else:
            values = {**local_values(built[0]), "unit": INJECTION, "recipe": INJECTION}
            values = {k: ([INJECTION] if isinstance(v, list) else v) for k, v in values.items()}
            values["phase"] = INJECTION
            run_sql(snapshot, q, "ph", values)  # raises if the payload broke the SQL
    assert sink.query(count)[0]["values"][0][1] == before
    assert sink.query("SHOW MEASUREMENTS")[0]["values"]  # nothing dropped


def test_the_column_rule_judges_each_units_latest_batch_by_time_not_by_id(tmp_path) -> None:
    """Batch ids "9" and "48": as strings "9" is the larger, but "48" ran last. Only "48"
    has a column alarm, so the rule sees it only if "latest" means latest by start time."""
    spec = next(s for s in rule_specs() if s.uid == "chrom-column-beyond-limits")
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema gold")
        con.execute(
            f"create table {GOLD_BATCH_RESULTS} as select * from (values "
            "('U1', '9', timestamp '2026-01-01 00:00'), ('U1', '48', timestamp '2026-03-01 00:00'))"
            " as t(unit_id, batch_id, started_at)"
        )
        con.execute(
            f"create table {GOLD_BATCH_ALARMS} as select * from (values ('48', 'column'))"
            " as t(batch_id, source)"
        )
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(spec.query.for_profile("local")).fetchall()
    assert rows == [("U1", 1)]
