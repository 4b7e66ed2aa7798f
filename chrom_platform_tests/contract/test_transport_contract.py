"""The transport contract: every adapter (local SQLite queue; Pub/Sub adapter through the
real client library) passes the same tests."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from chrom_platform.lib.io.transport import OutMessage
from chrom_platform.lib.io.transport.base import (
    ATTR_DELIVERY_ATTEMPTS,
    ATTR_SOURCE_MESSAGE_ID,
    ATTR_SOURCE_SUBSCRIPTION,
)
from chrom_platform_tests.contract.conftest import (
    DEADLINE_S,
    DLQ,
    MAX_ATTEMPTS,
    SUB_A,
    SUB_B,
    SUB_DLQ,
    TOPIC,
    Clock,
    Harness,
)


def _msgs(n: int, keys: tuple[str, ...] = ("U1", "U2", "U3")) -> list[OutMessage]:
    return [
        OutMessage(f"m{i}".encode(), {"i": str(i), "k": keys[i % len(keys)]}, keys[i % len(keys)])
        for i in range(n)
    ]


def _drain(h: Harness, sub: str, batch: int = 100) -> list:
    out = []
    while got := h.transport.pull(sub, batch):
        out.extend(got)
        h.transport.ack(sub, [m.ack_id for m in got])
    return out


def test_publish_pull_ack_round_trip(harness: Harness) -> None:
    ids = harness.transport.publish(TOPIC, _msgs(30))
    assert len(set(ids)) == 30
    got = _drain(harness, SUB_A, batch=7)
    assert sorted(m.data for m in got) == sorted(f"m{i}".encode() for i in range(30))
    m0 = next(m for m in got if m.data == b"m0")
    assert m0.attributes == {"i": "0", "k": "U1"}
    assert m0.ordering_key == "U1"
    assert m0.delivery_attempt == 1
    assert m0.publish_time_ns > 0
    assert harness.transport.pull(SUB_A, 10) == []


def test_pull_batch_is_pull_by_column(harness: Harness) -> None:
    """What the bridge and the landing consumer use: the same messages as `pull`, with
    payloads and ack ids as columns; any byte string survives (the local queue returns
    payloads joined in one buffer and must still delimit them exactly)."""
    payloads = [
        b'{"a": 1}',
        b"line\nbreak",
        b"",
        b"\x00\xff\xfe not utf-8",
        "\u00fcn\u00ef".encode(),
    ]
    harness.transport.publish(
        TOPIC,
        [OutMessage(p, {"i": str(i)}, ("U1", "U2")[i % 2]) for i, p in enumerate(payloads)],
    )
    batch = harness.transport.pull_batch(SUB_A, 10)
    msgs = list(batch)
    assert len(batch) == len(msgs) == len(payloads)
    assert [m.data for m in msgs] == list(batch.data)
    assert [m.ack_id for m in msgs] == list(batch.ack_ids)
    assert {m.data: int(m.attributes["i"]) for m in msgs} == {p: i for i, p in enumerate(payloads)}
    assert all(m.delivery_attempt == 1 and m.ordering_key in ("U1", "U2") for m in msgs)
    assert batch[-1] == msgs[-1]
    assert batch[1:3] == msgs[1:3]
    with pytest.raises(IndexError):
        batch[len(batch)]
    harness.transport.nack(SUB_A, batch.ack_ids)
    again = harness.transport.pull_batch(SUB_A, 10)
    assert sorted(again.data) == sorted(payloads)
    assert {m.delivery_attempt for m in again} == {2}
    harness.transport.ack(SUB_A, again.ack_ids)
    harness.clock.advance(DEADLINE_S + 1)
    assert len(harness.transport.pull_batch(SUB_A, 10)) == 0
    assert sorted(m.data for m in _drain(harness, SUB_B)) == sorted(payloads)


def test_fan_out_every_subscription_gets_every_message(harness: Harness) -> None:
    harness.transport.publish(TOPIC, _msgs(50))
    a = _drain(harness, SUB_A)
    b = _drain(harness, SUB_B)
    assert sorted(m.data for m in a) == sorted(m.data for m in b)
    assert len(a) == 50


def test_unacked_message_is_redelivered_after_lease_expiry(harness: Harness) -> None:
    harness.transport.publish(TOPIC, _msgs(3, keys=("U1", "U2", "U3")))
    first = harness.transport.pull(SUB_A, 10)
    assert len(first) == 3
    # leased: nothing to hand out until the deadline passes
    assert harness.transport.pull(SUB_A, 10) == []
    harness.transport.ack(SUB_A, [first[0].ack_id])
    harness.clock.advance(DEADLINE_S + 1)
    again = harness.transport.pull(SUB_A, 10)
    assert sorted(m.message_id for m in again) == sorted(m.message_id for m in first[1:])
    assert all(m.delivery_attempt == 2 for m in again)
    # an ack with the expired lease's id does not settle the new delivery
    harness.transport.ack(SUB_A, [first[1].ack_id])
    harness.transport.ack(SUB_A, [m.ack_id for m in again])
    harness.clock.advance(DEADLINE_S + 1)
    assert harness.transport.pull(SUB_A, 10) == []


def test_nack_makes_message_available_at_once(harness: Harness) -> None:
    harness.transport.publish(TOPIC, _msgs(1))
    (m,) = harness.transport.pull(SUB_A, 10)
    harness.transport.nack(SUB_A, [m.ack_id])
    (again,) = harness.transport.pull(SUB_A, 10)
    assert again.message_id == m.message_id
    assert again.delivery_attempt == 2


def test_dead_letter_after_max_attempts_keeps_other_messages_flowing(harness: Harness) -> None:
    harness.transport.publish(
        TOPIC, [OutMessage(b"poison", {"x": "1"}, "U1"), OutMessage(b"good", {}, "U2")]
    )
    for attempt in range(1, MAX_ATTEMPTS + 1):
        got = {m.data: m for m in harness.transport.pull(SUB_A, 10)}
        assert got[b"poison"].delivery_attempt == attempt
        harness.transport.nack(SUB_A, [got[b"poison"].ack_id])
        if b"good" in got:
            harness.transport.ack(SUB_A, [got[b"good"].ack_id])
    # the next pull forwards it instead of delivering it a sixth time
    assert harness.transport.pull(SUB_A, 10) == []
    (dead,) = _drain(harness, SUB_DLQ)
    assert dead.data == b"poison"
    assert dead.attributes["x"] == "1"
    if harness.name == "sqlite":  # Pub/Sub sets its own CloudPubSubDeadLetter* attributes
        assert dead.attributes[ATTR_SOURCE_SUBSCRIPTION] == SUB_A
        assert dead.attributes[ATTR_DELIVERY_ATTEMPTS] == str(MAX_ATTEMPTS)
        assert dead.attributes[ATTR_SOURCE_MESSAGE_ID]
    # the other subscription still has its own copy
    assert {m.data for m in _drain(harness, SUB_B)} == {b"poison", b"good"}


def test_order_per_key_holds_through_nacks_and_expiry(harness: Harness) -> None:
    rng = random.Random(7)
    n = 300
    harness.transport.publish(TOPIC, _msgs(n, keys=("U1", "U2", "U3", "U4")))
    delivered: dict[str, list[int]] = defaultdict(list)
    acked: set[bytes] = set()
    idle = 0
    while idle < 2:
        got = harness.transport.pull(SUB_A, rng.randint(1, 25))
        if not got:
            idle += 1
            harness.clock.advance(DEADLINE_S + 1)  # let abandoned leases expire
            continue
        idle = 0
        by_key: dict[str, list] = defaultdict(list)
        for m in got:
            by_key[m.ordering_key].append(m)
        for key, ms in by_key.items():
            # a key's messages in one pull are consecutive in publish order
            idx = [int(m.attributes["i"]) for m in ms]
            assert idx == sorted(idx), (key, idx)
            delivered[key].extend(idx)
            action = rng.random()
            if action < 0.6:
                harness.transport.ack(SUB_A, [m.ack_id for m in ms])
                acked.update(m.data for m in ms)
            elif action < 0.8:
                harness.transport.nack(SUB_A, [m.ack_id for m in ms])
            # else: abandon the lease; it expires later
    # every message was acked or, after MAX_ATTEMPTS deliveries, dead-lettered: none lost
    dead = {m.data for m in _drain(harness, SUB_DLQ)}
    assert not acked & dead
    assert acked | dead == {f"m{i}".encode() for i in range(n)}
    for key, seq in delivered.items():
        # redeliveries restart at the first unsettled message, never skip ahead
        first_seen: list[int] = []
        for i in seq:
            if i not in first_seen:
                first_seen.append(i)
        assert first_seen == sorted(first_seen), key


def test_key_in_flight_blocks_only_that_key(harness: Harness) -> None:
    harness.transport.publish(TOPIC, _msgs(6, keys=("U1", "U2")))
    # Which key arrives first is not promised across keys (the Pub/Sub client publishes
    # each key's messages on their own), so the test follows whichever is held.
    first = harness.transport.pull(SUB_A, 1)
    assert len(first) == 1
    held = first[0].ordering_key
    (other,) = {"U1", "U2"} - {held}
    rest = harness.transport.pull(SUB_A, 10)
    assert {m.ordering_key for m in rest} == {other}
    harness.transport.ack(SUB_A, [first[0].ack_id])
    assert {m.ordering_key for m in harness.transport.pull(SUB_A, 10)} == {held}


def test_no_loss_between_two_processes(tmp_path: Path) -> None:
    """A publisher process and a consumer process on one queue file (the local profile's
    shape: the simulator publishes, Dagster's daemon consumes)."""
    db = tmp_path / "q.db"
    code = textwrap.dedent(
        f"""
        import sys, time
        from chrom_platform.lib.io.transport import OutMessage, SubscriptionConfig
        from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
        q = SqliteQueue({str(db)!r})
        q.create_topic("t"); q.create_topic("dl")
        q.create_subscription(SubscriptionConfig("s", "t", 5.0, 5, "dl"))
        role = sys.argv[1]
        if role == "pub":
            for b in range(40):
                q.publish("t", [OutMessage(f"{{b}}-{{i}}".encode(), {{}}, f"U{{i % 3}}")
                                for i in range(250)])
        else:
            seen, idle = [], 0
            while idle < 40:
                got = q.pull("s", 300)
                if not got:
                    idle += 1; time.sleep(0.05); continue
                idle = 0
                seen.extend(m.data.decode() for m in got)
                q.ack("s", [m.ack_id for m in got])
            print("\\n".join(seen))
        """
    )
    setup = subprocess.run([sys.executable, "-c", code, "setup"], capture_output=True, check=True)
    assert setup.returncode == 0
    consumer = subprocess.Popen(
        [sys.executable, "-c", code, "consume"], stdout=subprocess.PIPE, text=True
    )
    publisher = subprocess.run([sys.executable, "-c", code, "pub"], capture_output=True, text=True)
    assert publisher.returncode == 0, publisher.stderr
    out, _ = consumer.communicate(timeout=120)
    assert consumer.returncode == 0
    seen = out.split()
    assert len(seen) == 10_000
    assert set(seen) == {f"{b}-{i}" for b in range(40) for i in range(250)}


def test_queue_survives_reopen(tmp_path: Path) -> None:
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(TOPIC, _msgs(10))
    q.close()
    q2 = SqliteQueue(tmp_path / "q.db")
    assert len(_drain(Harness(q2, None, "sqlite"), SUB_A)) == 10  # type: ignore[arg-type]
    assert q2.backlog(SUB_B) == 10
    q2.close()


def test_extend_keeps_a_lease_past_its_deadline(harness: Harness) -> None:
    harness.transport.publish(TOPIC, _msgs(2, keys=("U1", "U2")))
    got = harness.transport.pull(SUB_A, 10)
    harness.clock.advance(DEADLINE_S - 2)
    harness.transport.extend(SUB_A, [got[0].ack_id], 30)
    harness.clock.advance(5)  # past the original deadline
    again = harness.transport.pull(SUB_A, 10)
    assert [m.message_id for m in again] == [got[1].message_id]
    harness.transport.ack(SUB_A, [got[0].ack_id])  # the extended lease is still ours
    harness.clock.advance(60)
    assert [m.message_id for m in harness.transport.pull(SUB_A, 10)] == [got[1].message_id]


def test_a_named_consumer_continues_its_own_keys_in_order(tmp_path):
    """Local queue: the consumer holding a key's lease may pull that key's next messages
    (so it can write one batch while pulling the next); any other consumer may not."""
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(TOPIC, _msgs(6, keys=("U1",)))
    first = q.pull(SUB_A, 2, consumer="a")
    assert q.pull(SUB_A, 2, consumer="b") == []
    assert q.pull(SUB_A, 2) == []  # anonymous pulls respect every lease
    second = q.pull(SUB_A, 2, consumer="a")
    assert [m.data for m in first + second] == [b"m0", b"m1", b"m2", b"m3"]
    q.ack(SUB_A, [m.ack_id for m in first + second])
    assert [m.data for m in q.pull(SUB_A, 10, consumer="b")] == [b"m4", b"m5"]


def test_local_queue_deletes_messages_every_subscription_acked(tmp_path):
    """The queue file does not grow with history: a message is deleted once no
    subscription holds it, and kept while one still does."""
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(TOPIC, _msgs(100))

    def stored() -> int:
        return int(q._db.execute("select count(*) from messages").fetchone()[0])

    _drain(Harness(q, None, "sqlite"), SUB_A)  # type: ignore[arg-type]
    assert stored() == 100  # SUB_B still holds them all
    b = q.pull(SUB_B, 60)
    q.ack(SUB_B, [m.ack_id for m in b])
    assert stored() == 40
    _drain(Harness(q, None, "sqlite"), SUB_B)  # type: ignore[arg-type]
    assert stored() == 0


def test_local_queue_keeps_leases_across_the_upgrade_to_lease_rows(tmp_path):
    """A queue file from before the `leases` table (a row-level lease index) keeps its
    leases in flight when opened: the key stays blocked for others, its holder continues,
    and the old index is gone (it cost an index update per leased row)."""
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(TOPIC, _msgs(4, keys=("U1",)))
    first = q.pull(SUB_A, 1, consumer="a")
    q._db.execute("delete from leases")  # the old layout: leases only on the rows
    q._db.execute(
        "create index deliveries_leased on deliveries (sub_id, lease_until, holder, okey)"
    )
    q.close()
    q = SqliteQueue(tmp_path / "q.db")
    assert q.pull(SUB_A, 10, consumer="b") == []
    assert [m.data for m in q.pull(SUB_A, 1, consumer="a")] == [b"m1"]
    assert not q._db.execute(
        "select 1 from sqlite_master where name='deliveries_leased'"
    ).fetchone()
    q.ack(SUB_A, [first[0].ack_id])
    q.close()


# -- hostile input and failing parts (issue 18) ---------------------------------------------


def test_a_message_forwarded_after_its_last_attempt_carries_the_last_error(tmp_path):
    """A poison message that made its consumer fail every time reaches the dead-letter
    topic with a reason that says so, never bare."""
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(TOPIC, [OutMessage(b"poison", {}, "U1"), OutMessage(b"quiet", {}, "U2")])
    for _ in range(MAX_ATTEMPTS):
        got = {m.data: m for m in q.pull(SUB_A, 10)}
        q.nack(SUB_A, [got[b"poison"].ack_id], error="RecursionError: maximum depth")
        q.nack(SUB_A, [got[b"quiet"].ack_id])  # handed back without a word
    assert q.pull(SUB_A, 10) == []
    dead = {m.data: m.attributes["reason"] for m in _drain(Harness(q, None, "sqlite"), SUB_DLQ)}  # type: ignore[arg-type]
    assert dead[b"poison"] == (
        f"delivery_attempts_exceeded: {MAX_ATTEMPTS} deliveries without an ack;"
        " last error: RecursionError: maximum depth"
    )
    assert dead[b"quiet"].startswith("delivery_attempts_exceeded:")
    assert "none recorded" in dead[b"quiet"]


def test_pulls_stop_at_a_byte_budget_so_huge_messages_cannot_wedge_the_queue(tmp_path, monkeypatch):
    """Before: a pull of 105 messages of 10 MB exceeded SQLite's string limit and failed
    every time, so no good reading behind them was ever delivered. Each pull now stays
    within its byte budget (a message larger than it comes alone), and every message,
    large and small, is delivered in order."""
    from chrom_platform.lib.io.transport import sqlite_queue
    from chrom_platform_tests.contract.conftest import _topology

    monkeypatch.setattr(sqlite_queue, "MAX_PULL_BYTES", 3_000_000)
    q = sqlite_queue.SqliteQueue(tmp_path / "q.db")
    _topology(q)
    big = [OutMessage(bytes([65 + i]) * 2_000_000, {}, "U1") for i in range(8)]
    small = [OutMessage(f"good {i}".encode(), {}, "U1") for i in range(50)]
    q.publish(TOPIC, [*big, *small])
    seen: list[bytes] = []
    while got := q.pull_batch(SUB_A, 1000):
        size = sum(len(d) for d in got.data)
        assert size <= 3_000_000 or len(got) == 1
        seen.extend(got.data)
        q.ack(SUB_A, got.ack_ids)
    assert seen == [m.data for m in (*big, *small)]


def test_one_unacknowledged_dead_letter_does_not_keep_every_reading(tmp_path):
    """Collection is per topic: a dead letter nobody acknowledged keeps its own topic's
    messages only (before: all 100,001 readings published after it stayed in the file)."""
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform_tests.contract.conftest import _topology

    q = SqliteQueue(tmp_path / "q.db")
    _topology(q)
    q.publish(DLQ, [OutMessage(b"dead", {}, "")])
    q.publish(TOPIC, _msgs(500))
    for sub in (SUB_A, SUB_B):
        _drain(Harness(q, None, "sqlite"), sub)  # type: ignore[arg-type]
    stored = q._db.execute("select topic, count(*) from messages group by topic").fetchall()
    assert stored == [(DLQ, 1)]


def test_dead_letters_are_kept_for_their_retention_time_and_size(tmp_path):
    from chrom_platform.lib.io.transport import SubscriptionConfig
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue

    clock = Clock()
    q = SqliteQueue(tmp_path / "q.db", clock=clock)
    q.create_topic(DLQ)
    q.create_subscription(
        SubscriptionConfig(SUB_DLQ, DLQ, ordered=False, retention_s=3600, retention_bytes=5000)
    )
    q.publish(DLQ, [OutMessage(b"x" * 1000, {}, "") for _ in range(8)])
    assert q.held(SUB_DLQ) == (8, 8000)
    assert q.expire() == 3  # the oldest beyond 5,000 bytes
    assert q.held(SUB_DLQ) == (5, 5000)
    clock.advance(3601)
    assert q.expire() == 5  # older than an hour
    assert q.held(SUB_DLQ) == (0, 0)
    assert q._db.execute("select count(*) from messages").fetchone()[0] == 0


def test_a_truncated_queue_file_is_an_error_not_an_empty_queue(tmp_path):
    from chrom_platform.lib.io.transport import TransportError
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue

    path = tmp_path / "q.db"
    path.write_bytes(b"")
    with pytest.raises(TransportError, match=r"is empty \(0 bytes\)"):
        SqliteQueue(path)


def test_pubsub_consumers_start_without_creating_topology(tmp_path, monkeypatch):
    """With only the subscriber and publisher roles Terraform grants, Pub/Sub refuses
    creates (PermissionDenied): the consumers and the publisher must not try at start, and
    `--create-topology` is the explicit way to ask for it."""
    from google.api_core.exceptions import PermissionDenied

    from chrom_platform.lib.io.transport import ensure_readings_topology
    from chrom_platform.lib.io.transport.pubsub import PubSubTransport
    from chrom_platform.lib.streaming.config import StreamingConfig
    from chrom_platform_tests.contract.fake_pubsub import FakePubSubServer
    from simulator.publishers import QueuePublisher

    server = FakePubSubServer(tmp_path / "fake.db", Clock())
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.start())
    try:
        admin = PubSubTransport("chrom-test")
        ensure_readings_topology(admin)  # the deployment's job (Terraform), done first
        admin.close()
        server.deny_admin = True
        cfg = StreamingConfig(
            transport_uri="pubsub://chrom-test",
            influx_url="http://127.0.0.1:1",
            influx_database="x",
            equipment_path="",
            recipes_path="",
        )
        tr = cfg.transport()  # no create, so no PermissionDenied
        publisher = QueuePublisher("pubsub://chrom-test")
        publisher.publish([{"unit_id": "U1", "seq": 1}])
        (got,) = tr.pull("live-bridge", 10)
        assert json.loads(got.data)["seq"] == 1
        tr.ack("live-bridge", [got.ack_id])
        publisher.close()
        tr.close()
        with pytest.raises(PermissionDenied):
            StreamingConfig(**{**cfg.__dict__, "create_topology": True}).transport()
    finally:
        server.stop()
