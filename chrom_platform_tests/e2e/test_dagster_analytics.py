"""Analytics end to end: a clean history and one faulty batch per unit, landing -> dbt ->
analytics materialized through Dagster on a temporary DuckDB; then a faulty batch streamed
through the live bridge into the real local InfluxDB, with live drift against the envelope
the analytics exported.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import orjson
import pyarrow.parquet as pq
import pytest

from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.analytics.live import ENVELOPE_KEY, EnvelopeSource
from chrom_platform.lib.core.contracts import READING_SCHEMA, iso_to_ns
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_PEAKS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MONITORING_STATE,
    SILVER_RECIPES,
)
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.lib.io.transport import READINGS_TOPIC, OutMessage, ensure_readings_topology
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import LiveBridge
from chrom_platform_tests.conftest import START_NS
from chrom_platform_tests.e2e.analytics_history import CLEAN_BATCHES, FAULT, materialize
from chrom_platform_tests.e2e.streaming_helpers import fresh_database
from chrom_platform_tests.warehouse_helpers import DAY_NS, History, key
from simulator.batch import plan_batch, simulate
from simulator.landing import recipe_for_unit

LINEAGE_QUERY = "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }"
#: where the README's screenshots live (written by the browser test on request)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _query(h: History, sql: str) -> list[dict]:
    with h.connect() as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_faulty_batches_drift_clean_ones_do_not_and_the_check_names_them(built) -> None:
    h, result, _ = built
    assert result.success
    faulty = {s.plan.batch_id: s.truth["fault"] for s in h.sims if s.plan.fault}
    assert len(faulty) == 2
    verdicts = {r["batch_id"]: r for r in _query(h, f"select * from {GOLD_BATCH_VERDICT}")}
    assert len(verdicts) == 2 * (CLEAN_BATCHES + 1)
    judged_clean = [
        v
        for b, v in verdicts.items()
        if b not in faulty and v["reference_batches"] >= EnvelopeParams().min_batches
    ]
    assert judged_clean, "the history should leave clean batches judged by an envelope"
    assert all(v["verdict"] == "pass" and v["released"] for v in judged_clean)
    for bid, fault in faulty.items():
        v = verdicts[bid]
        assert v["verdict"] == "fail"
        assert not v["released"]
        drift = _query(
            h,
            f"select * from {GOLD_BATCH_DRIFT} where batch_id = '{bid}' and verdict = 'drift'",
        )
        assert [d["signal"] for d in drift] == ["cond_ms_cm"], drift
        # raised in the faulty phase, after the onset and within half a CV of it
        assert drift[0]["alarm_phase"] == fault["phase"]
        assert 0 <= drift[0]["alarm_cv"] - fault["onset_batch_cv"] <= 0.5
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    drift_check = checks["latest_batches_in_envelope"]
    assert not drift_check.passed
    assert drift_check.severity == dg.AssetCheckSeverity.ERROR
    named = {(d["batch_id"], d["signal"]) for d in drift_check.metadata["drifting"].value}
    assert named == {(b, "cond_ms_cm") for b in faulty}
    assert checks["columns_within_limits"].passed
    # the wrong buffer is out of its spec range too: the batch-result check names it, and
    # says where (the faulty phase), from the first batch on it would have
    results = checks["latest_batches_meet_specs_and_results"]
    assert not results.passed
    assert results.severity == dg.AssetCheckSeverity.ERROR
    out_of_spec = {
        (r["batch_id"], r["signal"], r["phase"])
        for r in results.metadata["offending"].value
        if r["source"] == "spec"
    }
    assert {(b, f["phase"]) for b, f in faulty.items()} <= {(b, p) for b, _, p in out_of_spec}


def test_envelope_and_column_performance_match_the_simulator(built) -> None:
    h, _, _ = built
    env = _query(h, f"select * from {GOLD_GOLDEN_ENVELOPE}")
    assert {(r["recipe"], r["unit_id"]) for r in env} == {
        ("MAB1-PROA-V3", "SKID-01"),
        ("MAB2-PROA-V1", "SKID-02"),
    }
    limited = [r for r in env if r["centre"] is not None]
    assert limited
    assert all(r["lower"] <= r["centre"] <= r["upper"] for r in limited)
    assert all(r["n_batches"] >= EnvelopeParams().min_batches for r in limited)
    perf = _query(
        h,
        "select distinct batch_id, batch_hetp_cm, batch_asymmetry, "
        f"permeability_m2 from {GOLD_COLUMN_PERFORMANCE}",
    )
    assert len(perf) == 2 * (CLEAN_BATCHES + 1)
    for p in perf:
        t = h.truth(p["batch_id"])
        assert p["batch_hetp_cm"] == pytest.approx(t["hetp_cm"], rel=0.05)
        assert p["batch_asymmetry"] == pytest.approx(t["asymmetry"], rel=0.10)
        assert p["permeability_m2"] == pytest.approx(t["permeability_m2"], rel=0.05)
    # the envelope the live bridge reads is the one in gold
    exported = pq.read_table(open_store(str(h.lake)).path(ENVELOPE_KEY))
    assert exported.num_rows == len(env)


def _png_of(md_value: dg.MetadataValue) -> bytes:
    text = md_value.value
    assert text.startswith("![")
    assert "data:image/png;base64," in text
    return base64.b64decode(text.split("base64,", 1)[1].rstrip(")"))


def test_overlay_and_column_trend_pictures_are_in_the_asset_metadata(built) -> None:
    h, result, instance = built
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    overlay = mats["analytics/batch_overlay"].materialization.metadata
    trend = mats["analytics/column_performance_trend"].materialization.metadata
    for png in (_png_of(overlay["overlay"]), _png_of(trend["trend"])):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) > 20_000
    # the overlay shows the newest batch, one of the faulty ones, with its drift named
    faulty = {s.plan.batch_id for s in h.sims if s.plan.fault}
    assert overlay["batch_id"].value in faulty
    assert overlay["drifting_signals"].value == ["cond_ms_cm"]
    assert Path(overlay["report"].value).read_text().startswith("<!doctype html>")
    # what the UI shows: the latest materialization of the asset, from the instance
    latest = instance.get_latest_materialization_event(dg.AssetKey(["analytics", "batch_overlay"]))
    assert latest is not None
    assert "overlay" in latest.asset_materialization.metadata


def test_a_second_run_only_reanalyses_changed_batches(built) -> None:
    h, _, instance = built
    again = materialize(h, instance)
    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in again.get_asset_materialization_events()
    }
    assert mats[key(GOLD_BATCH_VERDICT)]["batches_analysed"].value == 0
    assert mats[key(GOLD_BATCH_VERDICT)]["batches_judged"].value == 0
    assert mats[key(GOLD_BATCH_VERDICT)]["batches"].value == 2 * (CLEAN_BATCHES + 1)


def test_live_drift_reaches_influx_within_seconds_of_the_faulty_readings(
    built, md, influx_server, tmp_path
) -> None:
    h, _, _ = built
    unit = md.units["SKID-01"]
    recipe = md.recipes[recipe_for_unit(md, 0)]
    plan = plan_batch(
        unit=unit,
        resin=md.resins[unit.resin],
        recipe=recipe,
        unit_index=0,
        batch_index=CLEAN_BATCHES + 5,
        earliest_start_ns=START_NS + 40 * DAY_NS,
        seed=99,
        fault_rate=0.0,
        force_fault=FAULT,
    )
    sim = simulate(plan)
    onset_ns = iso_to_ns(sim.truth["fault"]["onset_ts"])
    msgs = sim.messages()
    ts = [iso_to_ns(m["ts"]) for m in msgs]
    split = next(i for i, t in enumerate(ts) if t >= onset_ns)

    queue = SqliteQueue(tmp_path / "queue.db")
    ensure_readings_topology(queue)
    sink = fresh_database(influx_server)
    bridge = LiveBridge(queue, sink, md, envelope=EnvelopeSource(open_store(str(h.lake)), 6.0, 0.1))
    stop = threading.Event()
    runner = threading.Thread(target=bridge.serve, args=(stop.is_set,), daemon=True)
    runner.start()

    def publish(batch: list[dict]) -> None:
        queue.publish(
            READINGS_TOPIC,
            [OutMessage(orjson.dumps(m), {"schema": READING_SCHEMA}, m["unit_id"]) for m in batch],
        )

    try:
        # everything before the onset at once, then the faulty readings 10 per 0.1 s
        # (10x real time), noting when each was published
        publish(msgs[:split])
        published_at: dict[int, float] = {}
        found: list[tuple[int, float]] = []
        deadline = time.monotonic() + 120
        i = split
        while not found and time.monotonic() < deadline:
            if i < len(msgs):
                chunk = msgs[i : i + 10]
                publish(chunk)
                now = time.monotonic()
                for m in chunk:
                    published_at[iso_to_ns(m["ts"])] = now
                i += len(chunk)
            rows = sink.query(
                'SELECT "out_cond_ms_cm", "z_cond_ms_cm" FROM "drift" '
                f'WHERE "out_cond_ms_cm" = 1 AND time >= {onset_ns} LIMIT 1'
            )
            if rows:
                t = int(rows[0]["values"][0][0])
                found.append((t, time.monotonic()))
            time.sleep(0.1)
    finally:
        stop.set()
        runner.join(timeout=30)
        queue.close()
    assert found, "no live drift point flagged the faulty conductivity"
    t_ns, seen_at = found[0]
    latency = seen_at - published_at[t_ns]
    print(f"live drift point in InfluxDB {latency:.2f} s after its reading was published")
    assert latency <= 5.0, f"live drift point seen {latency:.1f} s after its reading"
    # before the onset the same batch is normal: its live points rarely leave the envelope
    # for the persistence window (alarm), and all of them carry z for every signal
    before = sink.query(
        f'SELECT count("z_cond_ms_cm") AS n, sum("alarm") AS alarms FROM "drift" WHERE time < {onset_ns}'
    )
    _, n, alarms = before[0]["values"][0]
    assert n > 1000
    assert alarms / n < 0.02


def test_chrom_evaluate_runs_the_pipeline_and_scores_it(tmp_path, capsys) -> None:
    """The command on a small history of the second process family (another plant's
    names, no equilibration, ramped washes, a gradient elution, noisier sensors): a fresh
    workspace, the pipeline through Dagster, a table and JSON. (Its targets are measured on
    large histories of both families: docs/evaluation.md.)"""
    import duckdb

    from chrom_platform.cli import main

    out = tmp_path / "result.json"
    code = main(
        [
            "evaluate",
            "--process=fc-capture",
            "--seed=4",
            "--units=2",
            "--batches-per-unit=12",
            "--fault-rate=0.3",
            f"--workdir={tmp_path / 'ws'}",
            f"--json={out}",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["process"] == "fc-capture"
    s = result["score"]
    assert s["batches"] == 24
    assert s["scored_faulty"] + s["scored_fault_free"] + s["warm_up_batches"] == 24
    assert s["scored_faulty"] >= 1
    assert 0.0 <= s["recall"] <= 1.0
    assert s["hetp_error_max"] < 0.05, "HETP from steps only, never from ramps or noise"
    assert set(s["passed"]) == {
        "recall",
        "false_alarm_rate",
        "median_delay_cv",
        "hetp_error",
        "asymmetry_error",
        "step_yield_error_pp",
    }
    # as the user sees it: 12 batches a unit never reach a multivariate model (12 eligible
    # before a batch), so every batch is at least a warning, never a silent pass
    p = result["product"]
    assert p["batches"] == 24
    assert p["no_model_rate"] == 1.0
    assert p["false_error_rate"] + p["false_warn_rate"] == pytest.approx(1.0, abs=1e-3)
    assert p["alarm_load"]["all_batches"]["alarms"] >= s["scored_faulty"]
    assert 0.0 <= p["recall_all_batches"] <= 1.0
    # the yield error splits into the platform's part and the lab's (per batch, the
    # triangle inequality through the yield with exact volumes and the lab's results)
    assert s["step_yield_batches"] > 0
    assert s["step_yield_error_pp_max"] <= (
        s["step_yield_error_pp_platform_max"] + s["step_yield_error_pp_lab_max"] + 1e-3
    )
    with duckdb.connect(str(tmp_path / "ws" / "data" / "warehouse.duckdb"), read_only=True) as c:
        set_aside = dict(
            c.execute(
                f"select transition, any_value(not_applicable) from {GOLD_COLUMN_PERFORMANCE} "
                "where not_applicable is not null group by 1"
            ).fetchall()
        )
        verdicts = dict(
            c.execute(f"select verdict, count(*) from {GOLD_BATCH_VERDICT} group by 1").fetchall()
        )
        states = c.execute(
            "select unit_id, state, released_batches, envelope_batches, spec_phases, phases, "
            f"detail from {GOLD_MONITORING_STATE} order by unit_id"
        ).fetchall()
        envelopes = c.execute(
            "select v.unit_id, string_agg(v.envelope, ',' order by r.started_at) "
            f"from {GOLD_BATCH_VERDICT} as v inner join {GOLD_BATCH_RESULTS} as r "
            "on v.batch_id = r.batch_id group by 1 order by 1"
        ).fetchall()
    # both units run one recipe: before either has enough released batches of its own, their
    # batches are judged against the recipe's on both (made unit-free), not left unjudged;
    # per unit: no envelope, then the recipe's across units, then its own
    rank = {"none": 0, "cross_unit": 1, "own": 2}
    for unit, kinds in envelopes:
        seq = [rank[k] for k in kinds.split(",")]
        assert seq == sorted(seq), (unit, kinds)
    assert sum(k.count("cross_unit") for _, k in envelopes) >= 4, envelopes
    # the gradient elution and the ramped washes are said not to be steps, with the reason
    assert {"pH gradient elution", "High-salt wash", "Re-buffer"} <= set(set_aside)
    assert "ramp or gradient" in set_aside["pH gradient elution"]
    assert verdicts.get("pass", 0) >= 12, verdicts  # good batches are released
    # every unit says what it is watched with: its own envelope once min_batches batches are
    # released, before that the recipe's across units or its specifications alone (every
    # phase's buffer has ranges in master data)
    need = EnvelopeParams().min_batches
    assert [row[0] for row in states] == ["CLIN-A", "CLIN-B"]
    for _unit, state, released, n, spec_phases, phases, detail in states:
        assert spec_phases == phases == 9
        if released > need:
            assert state == "own_envelope", detail
            assert n >= need
        elif state == "cross_unit":
            assert detail.startswith("the recipe's envelope across units"), detail
        else:
            assert state == "specs_only", detail
            assert detail.startswith(f"specs only: {released} of {need} released")
    shown = capsys.readouterr()
    printed = shown.out
    assert "recall, all fault kinds" in printed
    assert "lab results alone, worst" in printed
    # the terminal has the command's own progress; Dagster's and dbt's log is in its file
    terminal = shown.out + shown.err
    assert "DEBUG" not in terminal
    assert "STEP_START" not in terminal
    assert "building through Dagster (log " in shown.err
    log = (tmp_path / "ws" / "data" / "logs" / "build.log").read_text()
    assert "STEP_SUCCESS" in log
    # a second evaluation refuses a used workspace instead of mixing histories
    assert main(["evaluate", "--units=1", f"--workdir={tmp_path / 'ws'}"]) == 2


def test_incremental_analytics_equal_a_full_recompute(built, tmp_path) -> None:
    """Judging only what changed gives the tables a full recompute gives: the newest three
    batches of each unit are removed from the analytics tables (as if new), then the
    incremental run fills them in."""
    import shutil

    import duckdb

    from chrom_platform.lib.analytics import pipeline
    from chrom_platform.lib.io.warehouse import WarehouseConfig

    h, _, _ = built
    copy = tmp_path / "copy.duckdb"
    shutil.copy(h.duckdb_path, copy)
    cfg = WarehouseConfig("local", str(copy), str(h.lake))
    tables = [
        GOLD_BATCH_DRIFT.name,
        GOLD_BATCH_VERDICT.name,
        GOLD_BATCH_ALARMS.name,
        GOLD_GOLDEN_ENVELOPE.name,
    ]

    def dump() -> dict[str, list]:
        with duckdb.connect(str(copy), read_only=True) as c:
            return {
                t: sorted(map(str, c.execute(f"select * from gold.{t}").fetchall())) for t in tables
            }

    with cfg.connect(read_only=False) as wh:
        pipeline.run(wh, full=True)
    full = dump()
    with duckdb.connect(str(copy)) as c:
        newest = [
            r[0]
            for r in c.execute(
                "select batch_id from (select batch_id, row_number() over (partition by unit_id "
                f"order by started_at desc) as rn from {GOLD_BATCH_RESULTS}) where rn <= 3"
            ).fetchall()
        ]
        marks = ",".join("?" * len(newest))
        for t in (GOLD_BATCH_PEAKS.name, GOLD_BATCH_VERDICT.name, GOLD_BATCH_DRIFT.name):
            c.execute(f"delete from gold.{t} where batch_id in ({marks})", newest)
    with cfg.connect(read_only=False) as wh:
        res = pipeline.run(wh)
    assert res.analysed == len(newest) == 6
    assert res.judged == 6
    assert dump() == full


def test_engineers_exclude_and_pin_batches_and_the_envelope_says_which(built, tmp_path) -> None:
    """Excluding a released batch takes it out of the envelope (the history is judged again:
    a changed say is not incremental), pinning a failed one puts it in; the monitoring state
    names the batches the envelope is built from, and dropping the say restores the tables."""
    import shutil

    import duckdb

    from chrom_platform.lib.analytics import pipeline
    from chrom_platform.lib.io.warehouse import WarehouseConfig

    h, _, _ = built
    copy = tmp_path / "copy.duckdb"
    shutil.copy(h.duckdb_path, copy)
    cfg = WarehouseConfig("local", str(copy), str(h.lake))

    def state() -> dict[str, dict]:
        with duckdb.connect(str(copy), read_only=True) as c:
            cur = c.execute(f"select * from {GOLD_MONITORING_STATE}")
            names = [d[0] for d in cur.description]
            return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    def released() -> set[str]:
        with duckdb.connect(str(copy), read_only=True) as c:
            rows = c.execute(f"select batch_id from {GOLD_BATCH_VERDICT} where released")
            return {r[0] for r in rows.fetchall()}

    with cfg.connect(read_only=False) as wh:
        pipeline.run(wh)
    before, was_released = state(), released()
    unit = sorted(before)[0]
    in_envelope = before[unit]["envelope_batch_ids"].split(",")
    assert len(in_envelope) >= 8  # an own envelope, from these batches
    out_one = in_envelope[0]
    with duckdb.connect(str(copy), read_only=True) as c:
        failed = c.execute(
            f"select batch_id from {GOLD_BATCH_VERDICT} where unit_id = ? and verdict = 'fail' "
            "and status = 'complete' order by batch_id limit 1",
            [unit],
        ).fetchone()[0]
    with cfg.connect(read_only=False) as wh:
        res = pipeline.run(wh, exclude=[out_one, "B-TYPO"], pin=[failed])
        # a say on a batch gold does not hold is named, not swallowed; a blank one refused
        assert res.unknown_decisions == {"B-TYPO": "exclude"}
        assert res.summary()["unknown_pinned_or_excluded"] == 1
        for bad in ([""], ["  "], [f" {failed}"]):
            with pytest.raises(ValueError, match="pin: "):
                pipeline.run(wh, pin=bad)
    after = state()[unit]
    assert out_one not in after["envelope_batch_ids"].split(",")
    assert failed in after["envelope_batch_ids"].split(",")
    assert (after["pinned_batch_ids"], after["excluded_batch_ids"]) == (failed, out_one)
    assert out_one not in released()
    assert failed in released()
    with cfg.connect(read_only=False) as wh:
        pipeline.run(wh)
    assert released() == was_released
    assert state()[unit]["envelope_batch_ids"] == before[unit]["envelope_batch_ids"]


def test_the_dagster_ui_shows_lineage_the_failed_drift_check_and_the_pictures(
    built, tmp_path
) -> None:
    """The real UI in headless Chromium: the asset lineage from landing through the warehouse
    layers to analytics, the live assets and the dashboards; the drift check failed on the
    faulty batches; each picture asset's markdown opened and its image decoded by the
    browser. Screenshots go to docs/screenshots/ with CHROM_UPDATE_SCREENSHOTS=1 (what the
    README shows), else to the test's folder."""
    from playwright.sync_api import sync_playwright

    from chrom_platform.local.demo import kill_group, wait_http
    from chrom_platform.local.influx_server import free_port

    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/bootstrap.sh installs it)")
        pytest.skip("chromium is not installed: sudo apt-get install chromium")
    h, _, _ = built
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(h.root),
        "CHROM_DATA_DIR": str(h.root / "data"),
        "CHROM_LANDING_URI": str(h.lake),
        "CHROM_DUCKDB_PATH": str(h.duckdb_path),
    }
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-m",
            "chrom_platform.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=(tmp_path / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/server_info", 120, web)

        urllib.request.urlopen(  # the community pop-up would cover the page
            urllib.request.Request(
                f"{url}/graphql",
                data=b'{"query": "mutation { setNuxSeen }"}',
                headers={"content-type": "application/json"},
            ),
            timeout=30,
        ).read()
        shots = SCREENSHOTS if os.environ.get("CHROM_UPDATE_SCREENSHOTS") else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            # lineage: the graph the UI draws, group by group, from the webserver it talks to
            nodes = json.loads(
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{url}/graphql",
                        data=json.dumps({"query": LINEAGE_QUERY}).encode(),
                        headers={"content-type": "application/json"},
                    ),
                    timeout=60,
                ).read()
            )["data"]["assetNodes"]
            group = {tuple(n["assetKey"]["path"]): n["groupName"] for n in nodes}
            edges = {
                (group[tuple(d["path"])], n["groupName"])
                for n in nodes
                for d in n["dependencyKeys"]
                if group[tuple(d["path"])] != n["groupName"]
            }
            assert {
                ("landing", "bronze"),
                ("bronze", "silver"),
                ("silver", "gold"),
                ("gold", "analytics"),
                ("analytics", "live"),
                ("live", "dashboards"),
                ("analytics", "dashboards"),
            } <= edges, edges
            page.goto(f"{url}/asset-groups", timeout=60_000)
            for g in ("landing", "bronze", "silver", "gold", "analytics", "live", "dashboards"):
                # each group is drawn as a node of the graph (and listed beside it)
                page.get_by_text(g, exact=True).nth(1).wait_for(state="attached", timeout=60_000)
            page.wait_for_timeout(2_000)
            page.screenshot(path=str(shots / "lineage.png"))
            # the drift check: failed, on the asset it guards
            page.goto(f"{url}/assets/gold/gold_batch_drift?view=checks", timeout=60_000)
            page.get_by_text("latest_batches_in_envelope").first.wait_for(timeout=60_000)
            page.get_by_text("Failed", exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("cond_ms_cm outside from").first.wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "drift_check.png"))
            for asset, alt in (
                ("analytics/batch_overlay", "overlay"),
                ("analytics/column_performance_trend", "column performance"),
            ):
                page.goto(f"{url}/assets/{asset}?view=events", timeout=60_000)
                page.get_by_text("[Show Markdown]").first.click(timeout=60_000)
                img = page.locator(f"img[alt*='{alt}']").first
                img.wait_for(timeout=30_000)
                size = page.evaluate("e => [e.naturalWidth, e.naturalHeight]", img.element_handle())
                page.screenshot(path=str(shots / f"{asset.split('/')[1]}.png"))
                assert size[0] > 500, f"{asset}: picture not decoded ({size})"
                assert size[1] > 400, f"{asset}: picture not decoded ({size})"
                page.keyboard.press("Escape")
            browser.close()
    finally:
        kill_group(web.pid)


def test_the_readme_shows_the_screenshots_the_browser_test_takes() -> None:
    readme = (SCREENSHOTS.parents[1] / "README.md").read_text()
    for name in ("lineage", "drift_check", "batch_overlay", "column_performance_trend"):
        assert f"docs/screenshots/{name}.png" in readme
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_a_recipe_sets_how_its_envelope_judges_in_master_data(built, tmp_path) -> None:
    """A recipe's `envelope: {min_batches, z_limit}` (silver_recipes, from master data) is
    what its envelope judges by: the unit's own envelope from its 7th released batch instead
    of the platform's 5th, the limits at the recipe's z (also the live drift's: the exported rows carry
    it), the monitoring state saying so; the other recipes keep the platform's defaults."""
    import shutil

    import duckdb

    from chrom_platform.lib.analytics import pipeline
    from chrom_platform.lib.io.warehouse import WarehouseConfig

    h, _, _ = built
    copy = tmp_path / "copy.duckdb"
    shutil.copy(h.duckdb_path, copy)
    cfg = WarehouseConfig("local", str(copy), str(h.lake))
    with duckdb.connect(str(copy)) as c:
        ran = [
            r[0] for r in c.execute(f"select distinct recipe from {GOLD_BATCH_RESULTS}").fetchall()
        ]
        recipe = sorted(ran)[0]
        c.execute(
            f"update {SILVER_RECIPES} set envelope_min_batches = 7, envelope_z_limit = 4.5 "
            "where recipe = ?",
            [recipe],
        )
    with cfg.connect(read_only=False) as wh:
        pipeline.run(wh, full=True)
    default = EnvelopeParams()
    with duckdb.connect(str(copy), read_only=True) as c:
        state = c.execute(f"select recipe, min_batches from {GOLD_MONITORING_STATE}").fetchall()
        rows = c.execute(f"select recipe, max(z_limit) from {GOLD_GOLDEN_ENVELOPE} group by 1")
        limits = dict(rows.fetchall())
        first_own = c.execute(
            f"select min(reference_batches) from {GOLD_BATCH_VERDICT} "
            "where recipe = ? and envelope = 'own'",
            [recipe],
        ).fetchone()[0]
    assert {m for r, m in state if r == recipe} == {7}
    assert {m for r, m in state if r != recipe} <= {default.min_batches}
    assert limits[recipe] == 4.5
    assert all(z == default.z_limit for r, z in limits.items() if r != recipe)
    assert first_own == 7
