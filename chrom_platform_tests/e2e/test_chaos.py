"""Chaos suite: hostile input and failing parts against the real consumers, the real local
queue and a real InfluxDB (issue 18). Each case here once stalled the stream, poisoned a
unit or let a consumer die quietly; each test shows it no longer does, and that the good
readings around the hostile ones all arrive exactly once."""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from chrom_platform import bridge_cli
from chrom_platform.lib.core.contracts import READING_SCHEMA
from chrom_platform.lib.io.landing import land_readings
from chrom_platform.lib.io.objectstore import LocalObjectStore
from chrom_platform.lib.io.transport import (
    DEAD_LETTER_SUBSCRIPTION,
    LANDING_SUBSCRIPTION,
    LIVE_BRIDGE_SUBSCRIPTION,
    READINGS_TOPIC,
    OutMessage,
    ensure_readings_topology,
)
from chrom_platform.lib.io.transport import sqlite_queue as sqlite_queue_module
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import NEW_BATCH_PERSISTENCE, LiveBridge
from chrom_platform.lib.streaming.landing_consumer import LandingConsumer
from chrom_platform.lib.streaming.readings import ReadingDecoder
from chrom_platform_tests.e2e.streaming_helpers import (
    fresh_database,
    influx_points,
    landed_rows,
    stream_args,
)
from chrom_platform_tests.truth import assert_cv_matches_truth, truth_cv
from chrom_platform_tests.unit.test_readings_decoder import INJECTION, _nested_extra, msg
from simulator.cli import _stream_sims, parse_args
from simulator.faults import FAULT_KINDS

S = 10**9
BASE_NS = 1_772_431_200_000_000_000  # 2026-03-02T06:00:00Z
UNIT = "SKID-01"


def good(i: int, **kw: object) -> bytes:
    """Reading i of SKID-01's batch: one a second, seq 1000 + i, flow 40 L/min."""
    return msg(**{"seq": 1000 + i, "ts": BASE_NS + i * S, "flow_lpm": 40.0, **kw})


def publish(q: SqliteQueue, payloads: list[bytes], key: str = UNIT) -> None:
    q.publish(READINGS_TOPIC, [OutMessage(p, {}, key) for p in payloads])


def new_queue(path: Path) -> SqliteQueue:
    q = SqliteQueue(path)
    ensure_readings_topology(q)
    return q


def bridge_env(tmp_path: Path, influx_url: str, database: str = "chrom") -> dict[str, str]:
    """The environment `chrom-bridge` runs with in these tests: the queue, the landing zone
    and the data folder in `tmp_path`, the session's InfluxDB (its admin is in os.environ)."""
    return {
        **os.environ,
        "CHROM_DATA_DIR": str(tmp_path / "data"),
        "CHROM_INFLUX_URL": influx_url,
        "CHROM_INFLUX_DATABASE": database,
        "CHROM_TRANSPORT_URI": str(tmp_path / "queue.db"),
        "CHROM_LANDING_URI": str(tmp_path / "lake"),
    }


def drain_all(env: dict[str, str]) -> None:
    """`chrom-bridge drain`: both consumers settle what is queued, and the command exits 0."""
    run = subprocess.run(
        [sys.executable, "-m", "chrom_platform.bridge_cli", "drain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr


def dead_letters(q: SqliteQueue) -> list:
    """Every dead letter held, taken off the audit subscription (pulls stop at a byte
    budget, so a few at a time when they are large)."""
    out = []
    while got := q.pull(DEAD_LETTER_SUBSCRIPTION, 10**6):
        out.extend(got)
        q.ack(DEAD_LETTER_SUBSCRIPTION, [m.ack_id for m in got])
    return out


def dead_reasons(q: SqliteQueue) -> Counter[tuple[str, str]]:
    """(source subscription, reason code) of every dead letter."""
    return Counter(
        (m.attributes["source_subscription"], m.attributes["reason"].split(":")[0])
        for m in dead_letters(q)
    )


def both(q_path: Path, sink, lake: Path, md) -> tuple[object, object]:
    """Drain the live bridge and the landing consumer, each on its own connection."""
    live = LiveBridge(SqliteQueue(q_path), sink, md).drain(10**6, 60)
    landed = LandingConsumer(SqliteQueue(q_path), LocalObjectStore(lake), md).drain(10**6, 60)
    return live, landed


def landed_seqs(lake: Path) -> list[int]:
    return sorted(r["seq"] for r in landed_rows(lake))


def test_deeply_nested_messages_cost_only_themselves(md, influx_server, tmp_path):
    """Case 1: `[` x 5,000 and a reading with an extra field 1,000 deep crashed both
    consumers with RecursionError (`chrom-bridge drain` exited 1 on every restart, every
    later reading waited). Now both are dead-lettered as nested_too_deep and the command
    settles everything."""
    q = new_queue(tmp_path / "queue.db")
    payloads = [*(good(i) for i in range(30))]
    payloads += [b"[" * 5000, _nested_extra(1000)]
    payloads += [good(i) for i in range(30, 60)]
    publish(q, payloads)
    sink = fresh_database(influx_server)
    drain_all(bridge_env(tmp_path, influx_server.url, sink.database))
    assert sorted(seq for _, seq in influx_points(sink)) == [1000 + i for i in range(60)]
    assert landed_seqs(tmp_path / "lake") == [1000 + i for i in range(60)]
    assert dead_reasons(q) == {
        ("live-bridge", "nested_too_deep"): 2,
        ("landing", "nested_too_deep"): 2,
    }


def test_oversized_messages_cannot_wedge_the_queue(md, influx_server, tmp_path, monkeypatch):
    """Case 2: 105 messages of 10 MB made every pull exceed SQLite's string limit (1 GB);
    the pull rolled back before counting attempts, so no good reading behind them was ever
    written. Reproduced at a smaller scale: the connections' string limit lowered to 20 MB
    and a dozen messages of 2 MB (24 MB in one unbounded pull). Pulls now stop at a byte
    budget: the big ones are dead-lettered as oversized and every good reading arrives."""
    limit = 20_000_000
    monkeypatch.setattr(sqlite_queue_module, "MAX_PULL_BYTES", 8_000_000)
    q = new_queue(tmp_path / "queue.db")
    publish(q, [b'{"x": "' + b"y" * 2_000_000 + b'"}' for _ in range(12)])
    publish(q, [good(i) for i in range(50)])
    sink = fresh_database(influx_server)
    bridge_q, landing_q = SqliteQueue(tmp_path / "queue.db"), SqliteQueue(tmp_path / "queue.db")
    for c in (bridge_q, landing_q):
        c._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
    live = LiveBridge(bridge_q, sink, md).drain(10**6, 60)
    landed = LandingConsumer(landing_q, LocalObjectStore(tmp_path / "lake"), md).drain(10**6, 60)
    assert live.written == 50
    assert landed.landed == 50
    assert dead_reasons(q) == {("live-bridge", "oversized"): 12, ("landing", "oversized"): 12}
    assert q.backlog(LIVE_BRIDGE_SUBSCRIPTION) == q.backlog(LANDING_SUBSCRIPTION) == 0


def test_a_reading_from_the_future_or_with_a_wild_seq_poisons_no_unit(md, influx_server, tmp_path):
    """Case 3: one reading dated 2099-12-31 or with seq 10^15 was accepted, and every later
    reading of its unit was dead-lettered as out_of_order or duplicate, across restarts.
    Now both are dead-lettered (implausible_time, implausible_seq) and the unit goes on;
    points of that kind already in InfluxDB or the landing zone (written before) are
    passed over when a restarted consumer rebuilds its state. Case 5, too: the landing
    consumer's restart no longer lands readings twice after a future-dated object."""
    q = new_queue(tmp_path / "queue.db")
    lake = tmp_path / "lake"
    publish(q, [good(i) for i in range(20)])
    publish(q, [msg(seq=1020, ts="2099-12-31T00:00:00.000Z"), good(20, seq=10**15)])
    publish(q, [good(i) for i in range(21, 60)])
    sink = fresh_database(influx_server)
    live, landed = both(tmp_path / "queue.db", sink, lake, md)
    assert live.written == landed.landed == 59
    assert dead_reasons(q) == {
        ("live-bridge", "implausible_time"): 1,
        ("live-bridge", "implausible_seq"): 1,
        ("landing", "implausible_time"): 1,
        ("landing", "implausible_seq"): 1,
    }
    # Leftovers of the old behaviour, as the two hostile readings left them when they were
    # accepted: in InfluxDB a point with seq 10^15 after the newest reading and one dated a
    # year ahead; in the landing zone an object in a 2099 partition and one named by
    # seq 10^15 (16 digits, which the object-name pattern once did not match).
    sink.write(
        b"chromatography,unit_id=SKID-01,batch_id=SKID-01-B00001,recipe=MAB1-PROA-V3,"
        b"phase=Load seq=1000000000000000i,flow_lpm=40,volume_l=1,phase_cv=0.1 "
        + str(BASE_NS + 61 * S + S // 2).encode()
        + b"\nchromatography,unit_id=SKID-01,batch_id=SKID-01-B00001,recipe=MAB1-PROA-V3,"
        b"phase=Load seq=1020i,flow_lpm=40,volume_l=1,phase_cv=0.1 "
        + str(time.time_ns() + 365 * 86400 * S).encode()
    )
    lenient = ReadingDecoder(md, max_ahead_s=1e12)
    for payload in (msg(seq=1020, ts="2099-12-31T00:00:00.000Z"), good(20, seq=10**15)):
        land_readings(LocalObjectStore(lake), lenient.decode([payload])[0].to_arrow())
    assert any("date=2099-12-31" in o.key for o in LocalObjectStore(lake).list("landing"))
    # restarted consumers (state rebuilt from InfluxDB and the landing zone) go on
    publish(q, [good(i) for i in range(60, 70)])
    live, landed = both(tmp_path / "queue.db", sink, lake, md)
    assert live.written == landed.landed == 10
    assert not live.dead_lettered
    assert not landed.dead_lettered
    legit = [1000 + i for i in range(70) if i != 20]
    assert landed_seqs(lake) == sorted([*legit, 1020, 10**15])  # each exactly once
    assert {seq for _, seq in influx_points(sink)} == {*legit, 1020, 10**15}  # leftovers stay


def test_an_injected_batch_id_is_dead_lettered_and_reaches_no_store(md, influx_server, tmp_path):
    """Case 4 at the door: the payload that dropped the measurement through a dashboard
    query cannot become a tag (the dashboards' escaping is tested with it in
    test_grafana_queries)."""
    q = new_queue(tmp_path / "queue.db")
    publish(q, [good(0), good(1, batch_id=INJECTION), good(2)])
    sink = fresh_database(influx_server)
    live, landed = both(tmp_path / "queue.db", sink, tmp_path / "lake", md)
    assert live.written == landed.landed == 2
    assert dead_reasons(q) == {("live-bridge", "bad_value"): 1, ("landing", "bad_value"): 1}
    tags = sink.query('SHOW TAG VALUES FROM "chromatography" WITH KEY = "batch_id"')
    assert [v[1] for v in tags[0]["values"]] == ["SKID-01-B00001"]


def _final_batch_cv(md, influx_server, tmp_path: Path, payloads: list[bytes]):
    q = new_queue(tmp_path / "queue.db")
    publish(q, payloads)
    sink = fresh_database(influx_server)
    LiveBridge(q, sink, md, batch_size=7).drain(10**6, 60)
    pts = influx_points(sink)
    return pts, dead_reasons(q)


def test_stray_readings_of_another_batch_do_not_reset_the_running_batch(
    md, influx_server, tmp_path
):
    """Case 6: five stray readings with another batch_id restarted the running batch's CV
    integral (final batch_cv 0.548 instead of 1.264). A batch now starts on evidence: its
    recipe's first phase, or NEW_BATCH_PERSISTENCE readings in a row."""
    payloads = [good(i) for i in range(120)]
    for i in range(50, 55):
        payloads[i] = good(i, batch_id="SKID-01-B00077")
    (a := tmp_path / "a").mkdir()
    pts, dead = _final_batch_cv(md, influx_server, a, payloads)
    control_payloads = [p for i, p in enumerate(payloads) if not 50 <= i < 55]
    (b := tmp_path / "b").mkdir()
    control, _ = _final_batch_cv(md, influx_server, b, control_payloads)
    cv_l = md.units[UNIT].column_volume_l
    assert pts[(UNIT, 1119)]["batch_cv"] == pytest.approx(40.0 * 119 / 60 / cv_l, rel=1e-9)
    assert pts[(UNIT, 1119)]["batch_cv"] == control[(UNIT, 1119)]["batch_cv"]
    assert dead == {("live-bridge", "stray_batch"): 5}
    # a real next batch starts in its recipe's first phase and is taken at once ...
    (c := tmp_path / "c").mkdir()
    nxt = [good(120 + i, batch_id="SKID-01-B00002", phase="Equilibration") for i in range(3)]
    pts, dead = _final_batch_cv(md, influx_server, c, payloads[:50] + nxt)
    assert pts[(UNIT, 1122)]["batch_cv"] == pytest.approx(40.0 * 2 / 60 / cv_l, rel=1e-9)
    # ... and one that does not (joined mid-recipe) after that many readings in a row
    (d := tmp_path / "d").mkdir()
    n = NEW_BATCH_PERSISTENCE + 5
    mid = [good(120 + i, batch_id="SKID-01-B00003") for i in range(n)]
    pts, dead = _final_batch_cv(md, influx_server, d, payloads[:50] + mid)
    assert dead == {("live-bridge", "stray_batch"): NEW_BATCH_PERSISTENCE - 1}
    assert (UNIT, 120 + 1000 + n - 1) in pts


class FlakyStore(LocalObjectStore):
    """A real local folder that refuses its first `fail` writes as a full disk does."""

    def __init__(self, root: Path, fail: int) -> None:
        super().__init__(root)
        self.fail = fail

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise OSError(errno.ENOSPC, "No space left on device", key)
        super().put(key, data, durable=durable)


def test_a_full_disk_holds_the_landing_consumer_until_it_has_room(md, tmp_path, caplog):
    """Case 7 (full disk): the landing thread died and the readings stayed stuck after the
    disk came back. Now `serve` keeps the batch, retries with backoff and says so, and
    lands everything once writes succeed."""
    q = new_queue(tmp_path / "queue.db")
    publish(q, [good(i) for i in range(40)])
    consumer = LandingConsumer(
        SqliteQueue(tmp_path / "queue.db"), FlakyStore(tmp_path / "lake", 3), md
    )
    done = threading.Event()

    def stop() -> bool:
        if q.backlog(LANDING_SUBSCRIPTION) == 0:
            done.set()
        return done.is_set()

    caplog.set_level(logging.INFO, logger="chrom.landing")
    rep = consumer.serve(stop, flush_every_s=0.1)
    assert rep.landed == 40
    assert landed_seqs(tmp_path / "lake") == [1000 + i for i in range(40)]
    text = caplog.text
    assert text.count("landing store refused a write") == 3
    assert "No space left on device" in text
    assert "took the write after 3 failed attempts" in text


def test_serve_waits_out_a_broken_landing_folder_and_drains_when_it_is_back(
    md, influx_server, tmp_path
):
    """Case 7 (landing folder unwritable mid-run, as the real command): the process stays
    up, logs each refusal, and lands the backlog once the folder is back. (A read-only
    folder cannot be made here, as root writes anyway; a folder replaced by a regular file
    refuses writes the same way, with an OSError.)"""
    q = new_queue(tmp_path / "queue.db")
    lake = tmp_path / "lake"
    env = bridge_env(tmp_path, influx_server.url)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "chrom_platform.bridge_cli", "serve", "--only", "landing"),
            *("--flush-every-s", "0.2"),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def wait_drained() -> None:
        deadline = time.monotonic() + 60
        while q.backlog(LANDING_SUBSCRIPTION) > 0:
            assert time.monotonic() < deadline, "backlog stuck"
            assert proc.poll() is None, "the process died"
            time.sleep(0.1)

    try:
        publish(q, [good(i) for i in range(20)])
        wait_drained()
        lake.rename(tmp_path / "lake.away")  # the folder goes away ...
        lake.write_text("not a folder")
        publish(q, [good(i) for i in range(20, 40)])
        time.sleep(4)
        assert proc.poll() is None, "the process must not die with its landing folder"
        assert q.backlog(LANDING_SUBSCRIPTION) == 20
        lake.unlink()  # ... and comes back
        (tmp_path / "lake.away").rename(lake)
        wait_drained()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "landing store refused a write" in err
    assert "took the write after" in err
    assert landed_seqs(lake) == [1000 + i for i in range(40)]


def test_serve_exits_non_zero_when_a_consumer_dies(md, tmp_path, monkeypatch, caplog):
    """Case 7 (a consumer that dies): `serve` kept running, or exited 0 with `--only
    landing`, so no supervisor restarted it. Now it says why and exits 1."""
    q = new_queue(tmp_path / "queue.db")
    publish(q, [good(0)])
    for k, v in bridge_env(tmp_path, "http://127.0.0.1:1").items():
        monkeypatch.setenv(k, v)

    def boom(self, msgs):
        raise RuntimeError("a bug, not a bad message")

    monkeypatch.setattr(LandingConsumer, "land", boom)
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    assert bridge_cli.main(["serve", "--only", "landing"]) == 1
    assert time.monotonic() - t0 < 30
    assert "landing consumer died" in caplog.text
    assert "RuntimeError: a bug, not a bad message" in caplog.text
    # the batch was handed back with the error, the reason it carries if it is forwarded
    err = q._db.execute("select last_error from deliveries where last_error is not null")
    assert err.fetchone()[0] == "RuntimeError: a bug, not a bad message"


def _hostile(i: int, rng: random.Random) -> bytes:
    kinds = [
        lambda: b"[" * 5000,
        lambda: _nested_extra(1000),
        lambda: msg(note="x" * 20_000),
        lambda: msg(seq=1000 + i, ts="2099-12-31T00:00:00.000Z"),
        lambda: msg(seq=10**15 + i, ts=BASE_NS + i * S),
        lambda: msg(batch_id=INJECTION),
        lambda: b'{"unit_id": "SKID-01", ',
        lambda: msg(ph=float("nan")),
        lambda: msg(unit_id="SKID-99"),
    ]
    return rng.choice(kinds)()


def test_kill_minus_9_twenty_times_with_hostile_messages_mixed_in(md, influx_server, tmp_path):
    """Done-when of issue 18: 20 kill -9 of `chrom-bridge serve` while it works through a
    stream with hostile messages at 1% of traffic: no good reading lost or duplicated in
    InfluxDB or the landing zone, every hostile message dead-lettered with a reason by
    both consumers, and no consumer exit other than the kills."""
    q = SqliteQueue(tmp_path / "queue.db")
    lease_s = 2.0  # killed leases expire quickly
    ensure_readings_topology(q, ack_deadline_s=lease_s)
    argv = stream_args(tmp_path, units=3, batches=3, seed=37, start="2026-03-02T06:00:00Z")
    args = parse_args(argv)
    args.fault_kinds = tuple(FAULT_KINDS)
    sims = _stream_sims(md, args)
    rows = sorted(
        (int(t), m["unit_id"], orjson.dumps(m))
        for s in sims
        for t, m in zip(s.ts_ns[s.keep], s.messages(), strict=True)
    )
    rng = random.Random(11)
    out: list[OutMessage] = []
    hostile: list[bytes] = []
    for n, (_, unit, data) in enumerate(rows):
        out.append(OutMessage(data, {"schema": READING_SCHEMA}, unit))
        if n % 100 == 50:
            h = _hostile(n, rng)
            hostile.append(h)
            out.append(OutMessage(h, {}, unit))
    for a in range(0, len(out), 5000):
        q.publish(READINGS_TOPIC, out[a : a + 5000])
    sink = fresh_database(influx_server)
    lake = tmp_path / "lake"
    env = bridge_env(tmp_path, influx_server.url, sink.database)

    def backlog() -> int:
        return q.backlog(LIVE_BRIDGE_SUBSCRIPTION) + q.backlog(LANDING_SUBSCRIPTION)

    kills, mid_work, stderr_texts = 0, 0, []
    for _ in range(20):
        before = backlog()
        if before == 0:
            break
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chrom_platform.bridge_cli",
                "serve",
                "--batch-size",
                "300",
                "--landing-batch-size",
                "300",
                "--flush-every-s",
                "0.2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while backlog() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        assert proc.poll() is None, "a consumer exited on its own"
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        stderr_texts.append(err)
        kills += 1
        mid_work += 0 < backlog() < before
        # no wait: the next consumer starts while the killed one's leases are live, and the
        # queue must keep each unit's later readings from it until they expire
    assert kills == 20, f"the stream drained after {kills} kills: make it longer"
    # `drain` settles what it can pull now: the last killed consumer's leases expire first
    time.sleep(lease_s + 0.1)
    assert mid_work >= 15, "most kills must interrupt work in progress"
    drain_all(env)
    for err in stderr_texts:
        assert "Traceback" not in err
        assert "died" not in err
    truth = truth_cv(sims, md)
    points = influx_points(sink)  # raises on a duplicate point
    assert set(points) == set(truth)
    assert_cv_matches_truth(points, truth)
    keys = [(r["unit_id"], r["seq"]) for r in landed_rows(lake)]
    assert len(keys) == len(set(keys)), "a reading was landed twice"
    assert set(keys) == set(truth)
    # every hostile message dead-lettered by each consumer with a reason (a kill between
    # dead-lettering and the ack can dead-letter one twice); `duplicate` is a redelivery
    # of a good reading a killed consumer had written, recognised as such
    by_sub: dict[str, Counter[bytes]] = {"live-bridge": Counter(), "landing": Counter()}
    reasons: Counter[str] = Counter()
    for m in dead_letters(q):
        code, _, detail = m.attributes["reason"].partition(":")
        assert code
        assert detail.strip()
        reasons[code] += 1
        if code != "duplicate":
            by_sub[m.attributes["source_subscription"]][m.data] += 1
    want = Counter(hostile)
    for sub, got in by_sub.items():
        assert set(got) == set(want), sub
        assert all(got[h] >= n for h, n in want.items()), sub
    assert len(hostile) >= 0.0099 * len(rows)
    print(
        f"chaos: {len(rows):,} readings, {len(hostile)} hostile ({len(set(hostile))} distinct),"
        f" {kills} kill -9 ({mid_work} mid-work); dead letters by reason: {dict(reasons)}"
    )


def test_drain_says_what_another_consumers_leases_keep_from_it(tmp_path, monkeypatch, capsys):
    """`chrom-bridge drain` settles what it can pull now; what a stopped consumer still holds
    leased (and a unit's later readings, kept in order behind it) comes back when the lease
    ends. The command says how many it left instead of reading as done; after the lease it
    lands them all."""
    q = SqliteQueue(tmp_path / "queue.db")
    ensure_readings_topology(q, ack_deadline_s=1.0)
    q.publish(
        READINGS_TOPIC, [OutMessage(good(i), {"schema": READING_SCHEMA}, UNIT) for i in range(10)]
    )
    held = q.pull(LANDING_SUBSCRIPTION, 4, consumer="a-stopped-serve")  # never acknowledged
    assert len(held) == 4
    env = bridge_env(tmp_path, "http://127.0.0.1:9")
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def drain() -> dict:
        capsys.readouterr()
        assert bridge_cli.main(["drain", "--only", "landing"]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
        return orjson.loads(line)

    first = drain()
    assert first["left_unsettled"] == 10  # the 4 leased and the 6 behind them, in order
    time.sleep(1.2)  # the stopped consumer's lease ends
    second = drain()
    assert second["left_unsettled"] == 0
    assert sorted(r["seq"] for r in landed_rows(tmp_path / "lake")) == list(range(1000, 1010))
