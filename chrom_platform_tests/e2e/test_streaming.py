"""Streaming end to end: `chrom-sim stream` -> queue -> live bridge -> real InfluxDB, and
-> landing consumer -> Parquet; compared with the simulator's own truth."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.io.objectstore import LocalObjectStore
from chrom_platform.lib.io.transport import (
    DEAD_LETTER_SUBSCRIPTION,
    LANDING_SUBSCRIPTION,
    LIVE_BRIDGE_SUBSCRIPTION,
    ensure_readings_topology,
)
from chrom_platform.lib.io.transport.base import OutMessage
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import LiveBridge
from chrom_platform.lib.streaming.landing_consumer import LandingConsumer
from chrom_platform.local.influx_server import LocalInfluxServer
from chrom_platform_tests.e2e.streaming_helpers import (
    fresh_database,
    influx_points,
    landed_rows,
    stream_batches,
)
from chrom_platform_tests.truth import assert_cv_matches_truth, truth_cv

START = "2026-03-02T06:00:00Z"


def _check_everything_arrived(streamed, points, md) -> None:
    truth = truth_cv(streamed.sims, md)
    assert set(points) == set(truth), "InfluxDB must hold exactly the published readings"
    assert_cv_matches_truth(points, truth)
    rows = list(landed_rows(streamed.lake))
    keys = [(r["unit_id"], r["seq"]) for r in rows]
    assert len(keys) == len(set(keys)), "a reading was landed twice"
    assert set(keys) == set(truth), "the landing zone must hold exactly the published readings"
    landed = {(r["unit_id"], r["seq"]): r for r in rows}
    for key in list(truth)[:: max(1, len(truth) // 2000)]:
        for s in SIGNALS:  # InfluxDB and Parquet carry the same values, bit for bit
            assert points[key][s] == landed[key][s], (key, s)


def test_stream_three_units_to_influx_and_landing(md, influx_server, tmp_path):
    streamed = stream_batches(md, tmp_path, units=3, batches=2, seed=23, start=START)
    assert streamed.n_readings > 60_000
    q = SqliteQueue(streamed.queue)
    sink = fresh_database(influx_server)
    rep = LiveBridge(q, sink, md).drain(max_messages=10**7, max_seconds=300)
    assert rep.written == streamed.n_readings
    assert not rep.dead_lettered
    # a bridge started afterwards (state rebuilt from InfluxDB) finds nothing left to do
    assert LiveBridge(q, sink, md).drain(10**6, 10).pulled == 0
    lrep = LandingConsumer(q, LocalObjectStore(streamed.lake), md).drain(10**7, 300)
    assert lrep.landed == streamed.n_readings
    _check_everything_arrived(streamed, influx_points(sink), md)
    assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) == 0
    assert q.backlog(LANDING_SUBSCRIPTION) == 0


def _env(
    tmp_path: Path, srv: LocalInfluxServer, database: str, queue: Path, lake: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "CHROM_DATA_DIR": str(tmp_path / "data"),
        "CHROM_INFLUX_URL": srv.url,
        "CHROM_INFLUX_USER": srv.admin.username,
        "CHROM_INFLUX_PASSWORD": srv.admin.password,
        "CHROM_INFLUX_DATABASE": database,
        "CHROM_TRANSPORT_URI": str(queue),
        "CHROM_LANDING_URI": str(lake),
    }


def test_influx_outage_mid_stream_loses_nothing(md, tmp_path):
    srv = LocalInfluxServer(data_dir=tmp_path / "influx").start()
    try:
        streamed = stream_batches(md, tmp_path, units=3, batches=1, seed=41, start=START)
        sink = fresh_database(srv)
        env = _env(tmp_path, srv, sink.database, streamed.queue, streamed.lake)
        q = SqliteQueue(streamed.queue)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chrom_platform.bridge_cli",
                "serve",
                "--only",
                "live",
                "--batch-size",
                "500",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while q.backlog(LIVE_BRIDGE_SUBSCRIPTION) > 0.8 * streamed.n_readings:
                assert time.monotonic() < deadline, "bridge made no progress"
                time.sleep(0.05)
            srv.stop()  # InfluxDB goes away mid-stream
            during = q.backlog(LIVE_BRIDGE_SUBSCRIPTION)
            time.sleep(4)
            assert proc.poll() is None, "the bridge must survive the outage"
            assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) >= during - 500  # at most one batch
            assert during > 0
            srv.start()
            deadline = time.monotonic() + 120
            while q.backlog(LIVE_BRIDGE_SUBSCRIPTION) > 0:
                assert time.monotonic() < deadline, "backlog did not drain after restart"
                time.sleep(0.1)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        # the outage, the retries and the recovery are logged with counts (case 11 of
        # issue 18: `serve` used to retry through the whole outage in silence)
        assert "InfluxDB unavailable" in err
        assert re.search(r"\d+ lines held, \d+ messages leased", err)
        assert re.search(r"InfluxDB (took the write after \d+ failed attempts|is back after)", err)
        points = influx_points(sink)
        truth = truth_cv(streamed.sims, md)
        assert set(points) == set(truth)
        assert_cv_matches_truth(points, truth)
        assert q.pull(DEAD_LETTER_SUBSCRIPTION, 10) == []
    finally:
        srv.stop()


def test_bad_input_is_dead_lettered_with_reasons_and_good_input_all_written(
    md, influx_server, tmp_path
):
    from chrom_platform_tests.unit.test_readings_decoder import BAD, msg

    base_ns = 1_772_431_200_000_000_000
    good = [msg(seq=1000 + i, ts=base_ns + i * 1_000_000_000, flow_lpm=40.0 + i) for i in range(60)]
    duplicate = good[10]
    out_of_order = msg(seq=2000, ts=base_ns - 5_000_000_000)  # newer seq, older time
    q = SqliteQueue(tmp_path / "queue.db")
    ensure_readings_topology(q)
    payloads = [*good[:30], *(b[1] for b in BAD), *good[30:], duplicate, out_of_order]
    q.publish("chrom-readings", [OutMessage(p, {}, "SKID-01") for p in payloads])
    sink = fresh_database(influx_server)
    rep = LiveBridge(q, sink, md, batch_size=17).drain(10_000, 60)  # small batches: mixed
    assert rep.written == 60
    points = influx_points(sink)
    assert sorted(seq for _, seq in points) == [1000 + i for i in range(60)]
    assert points[("SKID-01", 1059)]["flow_lpm"] == 99.0
    dead = q.pull(DEAD_LETTER_SUBSCRIPTION, 1000)
    got = sorted(m.attributes["reason"].split(":")[0] for m in dead)
    want = sorted([*(b[2] for b in BAD), "duplicate", "out_of_order"])
    assert got == want
    assert all(m.attributes["source_subscription"] == "live-bridge" for m in dead)
    q.ack(DEAD_LETTER_SUBSCRIPTION, [m.ack_id for m in dead])
    # the landing consumer lands the same good readings, by the same rules: a unit's landed
    # readings advance in seq and time together, so the reading whose time went back is
    # out of order there too
    lrep = LandingConsumer(q, LocalObjectStore(tmp_path / "lake"), md).drain(10_000, 60)
    assert lrep.landed == 60
    assert lrep.dead_lettered["duplicate"] == 1
    # (seq 2000 five seconds before seq 1000 is also a seq its clock cannot explain: judged
    # against the batch's own readings, as this consumer had landed nothing yet, it is that)
    assert lrep.dead_lettered["out_of_order"] + lrep.dead_lettered["implausible_seq"] == 1
    assert sum(lrep.dead_lettered.values()) == len(BAD) + 2
    assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) == 0
    assert q.backlog(LANDING_SUBSCRIPTION) == 0


def test_lines_influx_refuses_are_isolated_and_dead_lettered(md, influx_server, tmp_path):
    """A 4xx from InfluxDB costs only the refused line: the batch is bisected, the rest is
    written, the refused reading is dead-lettered as sink_rejected, and the bridge rebuilds
    its CV state from InfluxDB before going on."""
    from chrom_platform.lib.io.influx import InfluxV1Sink, SinkRejected
    from chrom_platform_tests.unit.test_readings_decoder import msg

    class PickySink(InfluxV1Sink):
        def write(self, lines: bytes) -> None:
            if b"seq=1005i" in lines:
                raise SinkRejected("InfluxDB answered 400: field type conflict")
            super().write(lines)

    db = fresh_database(influx_server).database
    sink = PickySink(influx_server.url, db, credentials=influx_server.admin)
    q = SqliteQueue(tmp_path / "queue.db")
    ensure_readings_topology(q)
    base_ns = 1_772_431_200_000_000_000
    q.publish(
        "chrom-readings",
        [
            OutMessage(msg(seq=1000 + i, ts=base_ns + i * 1_000_000_000), {}, "SKID-01")
            for i in range(40)
        ],
    )
    rep = LiveBridge(q, sink, md, batch_size=8).drain(1000, 60)
    assert rep.written == 39
    points = influx_points(sink)
    assert sorted(seq for _, seq in points) == [1000 + i for i in range(40) if i != 5]
    # CV keeps integrating across the refused reading: 40 s at 37.7 L/min by the end
    cv_l = md.units["SKID-01"].column_volume_l
    assert points[("SKID-01", 1039)]["volume_l"] == pytest.approx(37.7 * 39 / 60, rel=1e-9)
    assert points[("SKID-01", 1039)]["batch_cv"] == pytest.approx(37.7 * 39 / 60 / cv_l)
    (dead,) = q.pull(DEAD_LETTER_SUBSCRIPTION, 10)
    assert dead.attributes["reason"].startswith("sink_rejected: InfluxDB answered 400")
    assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) == 0


def test_credential_changes_hold_the_stream_and_lose_nothing(md, influx_server, tmp_path, caplog):
    """A password rotated and a grant revoked mid-stream are outages, not bad data: the
    bridge dead-letters nothing, acknowledges nothing InfluxDB did not take, keeps running
    (a restart with the old password does not crash) and says why; once the credentials
    are right again, every reading is written exactly once."""
    import logging
    import threading

    from chrom_platform.lib.io.influx import Credentials, InfluxV1Sink

    streamed = stream_batches(md, tmp_path, units=2, batches=1, seed=43, start=START)
    admin = fresh_database(influx_server)
    db = admin.database
    user = f"w_{db}"
    admin.query(f"CREATE USER \"{user}\" WITH PASSWORD 'first'")
    admin.query(f'GRANT ALL ON "{db}" TO "{user}"')
    q = SqliteQueue(streamed.queue)

    def bridge(password: str) -> LiveBridge:
        sink = InfluxV1Sink(influx_server.url, db, credentials=Credentials(user, password))
        return LiveBridge(q, sink, md, batch_size=500)

    live = bridge("first")
    part = live.drain(max_messages=streamed.n_readings // 3, max_seconds=60)
    assert part.written > 0
    assert not part.dead_lettered

    def held(b: LiveBridge, why: str) -> None:
        before = q.backlog(LIVE_BRIDGE_SUBSCRIPTION)
        rep = b.drain(10**7, max_seconds=3)
        assert rep.sink_down
        assert rep.written == 0
        assert not rep.dead_lettered, rep.dead_lettered
        assert rep.outage is not None
        assert why in rep.outage, rep.outage
        assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) == before, "nothing acknowledged"

    admin.query(f"SET PASSWORD FOR \"{user}\" = 'second'")  # rotated mid-stream
    held(live, "refused the bridge's credentials (401")
    held(bridge("first"), "CHROM_INFLUX_PASSWORD")  # a restart with the old one: no crash

    fixed = bridge("second")
    admin.query(f'REVOKE ALL ON "{db}" FROM "{user}"')
    admin.query(f'GRANT READ ON "{db}" TO "{user}"')  # can rebuild its state, cannot write
    held(fixed, "WRITE grant")

    # the long-running loop stays up through it and logs the reason
    stop = threading.Event()
    with caplog.at_level(logging.WARNING):
        t = threading.Thread(target=lambda: fixed.serve(stop.is_set), daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while "refused the bridge's credentials" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.1)
        assert t.is_alive()
        assert q.pull(DEAD_LETTER_SUBSCRIPTION, 10) == []
        admin.query(f'GRANT ALL ON "{db}" TO "{user}"')  # fixed: the loop goes on by itself
        deadline = time.monotonic() + 120
        while q.backlog(LIVE_BRIDGE_SUBSCRIPTION) > 0:
            assert time.monotonic() < deadline, "the backlog did not drain"
            time.sleep(0.1)
        stop.set()
        t.join(timeout=30)
    points = influx_points(admin)
    truth = truth_cv(streamed.sims, md)
    assert set(points) == set(truth)
    assert_cv_matches_truth(points, truth)
    assert q.pull(DEAD_LETTER_SUBSCRIPTION, 10) == []
