"""The local transport: a durable queue in one SQLite file, shared by processes.

Why our own table rather than a library: the maintained SQLite queues on PyPI
(persist-queue, litequeue, huey's storage) are single-consumer work queues. None has
topics with fan-out to several subscriptions, per-key ordering, or forwarding to a
dead-letter topic after N deliveries, which are the Pub/Sub semantics the code above the
transport relies on. Those semantics take three tables and a handful of statements, tested
by the same contract suite as the Pub/Sub adapter (chrom_platform_tests/contract/).

Concurrency and durability: WAL journal. `publish` commits with `synchronous=FULL`, so a
message is on disk before publish returns. Consumer bookkeeping (leases, acks) commits with
`synchronous=NORMAL`: it survives a crash of any process (kill -9 included) and only a
power loss can roll back the newest of it, which redelivers messages (at-least-once) and
never loses one; the WAL keeps commits in order, so an ack never survives without what
came before it. Every state change runs in `BEGIN IMMEDIATE`, so processes
take the write lock up front and never dead-lock on a read-to-write upgrade; a busy
timeout makes them wait for each other instead of failing.

Layout:
  messages(id, topic, data, attributes, ordering_key, publish_ns): one row per message,
      ids increase in publish order (AUTOINCREMENT: never reused, even after deletes);
  deliveries(sub_id, msg_id, okey, attempts, lease_until): one row per (subscription,
      message) not yet acknowledged. A lease is `lease_until` in the future. Acking
      deletes the row; a message is deleted once no subscription still holds it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.transport.base import (
    ATTR_DELIVERY_ATTEMPTS,
    ATTR_SOURCE_MESSAGE_ID,
    ATTR_SOURCE_SUBSCRIPTION,
    OutMessage,
    ReceivedMessage,
    SubscriptionConfig,
    TransportError,
)

_SCHEMA = """
create table if not exists topics (name text primary key);
create table if not exists subscriptions (
    id integer primary key,
    name text not null unique,
    topic text not null references topics(name),
    ack_deadline_s real not null,
    max_attempts integer not null,
    dead_letter_topic text,
    ordered integer not null
);
create table if not exists messages (
    id integer primary key autoincrement,
    topic text not null,
    data blob not null,
    attributes text,
    ordering_key text not null,
    publish_ns integer not null
);
create table if not exists deliveries (
    sub_id integer not null,
    msg_id integer not null,
    okey text not null,
    attempts integer not null default 0,
    lease_until real not null default 0,
    holder text not null default '',
    primary key (sub_id, msg_id)
) without rowid;
create index if not exists deliveries_leased on deliveries (sub_id, lease_until, holder, okey);
"""

_Row = tuple[int, int, str, bytes, str | None, int]
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})


def _runs(parsed: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(msg_id, attempt) rows as runs of consecutive ids with one attempt number, so a
    batch ack of thousands is a few range statements. A run holds exactly the ids listed."""
    if parsed.size == 0:
        return []
    p = parsed
    if p.shape[0] > 1 and not bool(np.all(np.diff(p[:, 0]) > 0)):
        p = np.unique(p, axis=0)  # sorted by msg_id, duplicates dropped
    m, a = p[:, 0], p[:, 1]
    brk = np.flatnonzero((np.diff(m) != 1) | (np.diff(a) != 0)) + 1
    starts = np.r_[0, brk]
    ends = np.r_[brk - 1, m.size - 1]
    return list(zip(m[starts].tolist(), m[ends].tolist(), a[starts].tolist(), strict=True))


class SqliteQueue:
    """Topics and subscriptions in a SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, *, clock: object = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._now = clock if callable(clock) else time.time
        # One connection per instance, guarded by a lock: Dagster may call a resource from
        # several threads, and sqlite3 connections must not be used concurrently.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.executescript(_SCHEMA)
        self._subs: dict[str, tuple[int, SubscriptionConfig]] = {}

    # -- administration -------------------------------------------------------------------

    def create_topic(self, name: str) -> None:
        with self._tx() as db:
            db.execute("insert or ignore into topics(name) values (?)", (name,))

    def create_subscription(self, config: SubscriptionConfig) -> None:
        if config.max_delivery_attempts < 1:
            raise ValueError("max_delivery_attempts must be >= 1")
        with self._tx() as db:
            if not db.execute("select 1 from topics where name=?", (config.topic,)).fetchone():
                raise TransportError(f"topic {config.topic!r} does not exist")
            if (
                config.dead_letter_topic is not None
                and not db.execute(
                    "select 1 from topics where name=?", (config.dead_letter_topic,)
                ).fetchone()
            ):
                raise TransportError(f"dead-letter topic {config.dead_letter_topic!r} missing")
            db.execute(
                "insert or ignore into subscriptions"
                "(name, topic, ack_deadline_s, max_attempts, dead_letter_topic, ordered)"
                " values (?, ?, ?, ?, ?, ?)",
                (
                    config.name,
                    config.topic,
                    config.ack_deadline_s,
                    config.max_delivery_attempts,
                    config.dead_letter_topic,
                    int(config.ordered),
                ),
            )

    def _sub(self, name: str) -> tuple[int, SubscriptionConfig]:
        if name not in self._subs:
            row = self._db.execute(
                "select id, topic, ack_deadline_s, max_attempts, dead_letter_topic, ordered"
                " from subscriptions where name=?",
                (name,),
            ).fetchone()
            if row is None:
                raise TransportError(f"subscription {name!r} does not exist")
            self._subs[name] = (
                row[0],
                SubscriptionConfig(name, row[1], row[2], row[3], row[4], bool(row[5])),
            )
        return self._subs[name]

    # -- publish ----------------------------------------------------------------------------

    def publish(self, topic: str, messages: Sequence[OutMessage]) -> list[str]:
        if not messages:
            return []
        with self._tx(durable=True) as db:
            first, last = self._insert(db, topic, messages)
        return [str(i) for i in range(first, last + 1)]

    def _insert(
        self, db: sqlite3.Connection, topic: str, messages: Sequence[OutMessage]
    ) -> tuple[int, int]:
        if not db.execute("select 1 from topics where name=?", (topic,)).fetchone():
            raise TransportError(f"topic {topic!r} does not exist")
        now_ns = time.time_ns()
        db.executemany(
            "insert into messages(topic, data, attributes, ordering_key, publish_ns)"
            " values (?, ?, ?, ?, ?)",
            [
                (
                    topic,
                    m.data,
                    json.dumps(dict(m.attributes)) if m.attributes else None,
                    m.ordering_key,
                    now_ns,
                )
                for m in messages
            ],
        )
        # Inside BEGIN IMMEDIATE nobody else inserts, so the new ids are one contiguous run.
        last = int(db.execute("select last_insert_rowid()").fetchone()[0])
        first = last - len(messages) + 1
        db.execute(
            "insert into deliveries(sub_id, msg_id, okey)"
            " select s.id, m.id, m.ordering_key from messages m join subscriptions s"
            " on s.topic = m.topic where m.id between ? and ?",
            (first, last),
        )
        return first, last

    # -- consume ----------------------------------------------------------------------------

    def pull(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> list[ReceivedMessage]:
        """See Transport.pull. A named `consumer` may keep pulling the next messages of keys
        it already holds leases on (Pub/Sub's streaming pull binds a key to one client the
        same way); this is what lets a consumer write one batch while it pulls the next."""
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        with self._tx() as db:
            sub_id, cfg = self._sub(subscription)
            now = self._now()
            blocked: set[str] = set()
            if cfg.ordered:
                blocked = {
                    r[0]
                    for r in db.execute(
                        "select distinct okey from deliveries"
                        " where sub_id=? and lease_until>? and okey<>''"
                        " and (holder='' or holder<>?)",
                        (sub_id, now, consumer),
                    )
                }
            take: list[_Row] = []
            dead: list[_Row] = []
            skipped_inside = False  # a row inside the taken id range was passed over
            after = -1
            while len(take) < max_messages:
                want = max_messages - len(take)
                rows: list[_Row] = db.execute(
                    "select d.msg_id, d.attempts, d.okey, m.data, m.attributes, m.publish_ns"
                    " from deliveries d join messages m on m.id = d.msg_id"
                    " where d.sub_id=? and d.msg_id>? and d.lease_until<=?"
                    " order by d.msg_id limit ?",
                    (sub_id, after, now, want),
                ).fetchall()
                for r in rows:
                    if r[2] in blocked:
                        skipped_inside = skipped_inside or bool(take)
                        continue
                    if r[1] >= cfg.max_delivery_attempts and cfg.dead_letter_topic is not None:
                        dead.append(r)
                        # forwarded and gone from this subscription; the key's next message
                        # is next in order, so it may be taken in this same pull
                        skipped_inside = skipped_inside or bool(take)
                        continue
                    take.append(r)
                if len(rows) < want:
                    break
                after = rows[-1][0]
            if dead:
                self._forward_dead(db, sub_id, cfg, dead)
            lease_until = now + cfg.ack_deadline_s
            if take and not skipped_inside:
                # the common case: one contiguous run of available rows, one statement
                db.execute(
                    "update deliveries set attempts=attempts+1, lease_until=?, holder=?"
                    " where sub_id=? and msg_id between ? and ? and lease_until<=?",
                    (lease_until, consumer, sub_id, take[0][0], take[-1][0], now),
                )
            else:
                db.executemany(
                    "update deliveries set attempts=attempts+1, lease_until=?, holder=?"
                    " where sub_id=? and msg_id=?",
                    [(lease_until, consumer, sub_id, r[0]) for r in take],
                )
        # Positional tuple construction: a pull builds thousands of these.
        new = tuple.__new__
        return [
            new(
                ReceivedMessage,
                (
                    f"{r[0]}.{r[1] + 1}",
                    str(r[0]),
                    r[3],
                    json.loads(r[4]) if r[4] else _NO_ATTRIBUTES,
                    r[2],
                    r[5],
                    r[1] + 1,
                ),
            )
            for r in take
        ]

    def _forward_dead(
        self,
        db: sqlite3.Connection,
        sub_id: int,
        cfg: SubscriptionConfig,
        rows: list[_Row],
    ) -> None:
        assert cfg.dead_letter_topic is not None
        out = []
        for msg_id, attempts, okey, data, attrs, _ in rows:
            a = json.loads(attrs) if attrs else {}
            a[ATTR_SOURCE_SUBSCRIPTION] = cfg.name
            a[ATTR_SOURCE_MESSAGE_ID] = str(msg_id)
            a[ATTR_DELIVERY_ATTEMPTS] = str(attempts)
            out.append(OutMessage(data, a, okey))
        self._insert(db, cfg.dead_letter_topic, out)
        db.executemany(
            "delete from deliveries where sub_id=? and msg_id=?",
            [(sub_id, r[0]) for r in rows],
        )
        self._collect(db)

    @staticmethod
    def _parse_ack_ids(ack_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """ "<msg_id>.<attempt>" strings as an (n, 2) array, parsed in one pass."""
        if any(x.count(".") != 1 for x in ack_ids):
            raise TransportError(f"malformed ack id in {list(ack_ids)[:3]}...")
        try:
            flat = np.array(" ".join(ack_ids).replace(".", " ").split(), dtype=np.int64)
        except ValueError as e:
            raise TransportError(f"malformed ack id in {list(ack_ids)[:3]}...") from e
        if flat.size != 2 * len(ack_ids):
            raise TransportError(f"malformed ack id in {list(ack_ids)[:3]}...")
        return flat.reshape(-1, 2)

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Acknowledge. An ack for a lease that expired and was handed out again is ignored
        (the current holder will ack), as Pub/Sub does with exactly-once delivery."""
        if not ack_ids:
            return
        runs = _runs(self._parse_ack_ids(ack_ids))
        with self._tx() as db:
            sub_id, _ = self._sub(subscription)
            db.executemany(
                "delete from deliveries where sub_id=? and msg_id between ? and ? and attempts=?",
                [(sub_id, first, last, a) for first, last, a in runs],
            )
            self._collect(db)

    def nack(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """Make messages available again now. With ordering, later messages of the same key
        that are leased in the same lease are released too, so the key is redelivered in
        order (Pub/Sub does the same)."""
        if not ack_ids:
            return
        runs = _runs(self._parse_ack_ids(ack_ids))
        with self._tx() as db:
            sub_id, cfg = self._sub(subscription)
            now = self._now()
            db.executemany(
                "update deliveries set lease_until=0"
                " where sub_id=? and msg_id between ? and ? and attempts=?",
                [(sub_id, first, last, a) for first, last, a in runs],
            )
            if cfg.ordered:
                first_by_key: dict[str, int] = {}
                for first, last, _ in runs:
                    for key, m in db.execute(
                        "select okey, min(msg_id) from deliveries where sub_id=?"
                        " and msg_id between ? and ? and okey<>'' group by okey",
                        (sub_id, first, last),
                    ):
                        first_by_key[key] = min(first_by_key.get(key, m), m)
                for key, m in first_by_key.items():
                    db.execute(
                        "update deliveries set lease_until=0"
                        " where sub_id=? and lease_until>? and okey=? and msg_id>?",
                        (sub_id, now, key, m),
                    )

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: float) -> None:
        if not ack_ids:
            return
        runs = _runs(self._parse_ack_ids(ack_ids))
        until = self._now() + seconds
        with self._tx() as db:
            sub_id, _ = self._sub(subscription)
            db.executemany(
                "update deliveries set lease_until=?"
                " where sub_id=? and msg_id between ? and ? and attempts=?",
                [(until, sub_id, first, last, a) for first, last, a in runs],
            )

    def _collect(self, db: sqlite3.Connection) -> None:
        """Delete the messages below the oldest one any subscription still holds: a range
        delete, no per-message check. (A message acked everywhere but above a laggard
        subscription's oldest waits for it, as retention does in Pub/Sub.)"""
        subs = [r[0] for r in db.execute("select id from subscriptions")]
        oldest = [
            row[0]
            for sub_id in subs
            if (
                row := db.execute(
                    "select min(msg_id) from deliveries where sub_id=?", (sub_id,)
                ).fetchone()
            )[0]
            is not None
        ]
        if not subs:
            return
        if oldest:
            db.execute("delete from messages where id < ?", (min(oldest),))
        else:
            db.execute("delete from messages")

    # -- inspection (tests, metrics) -------------------------------------------------------

    def backlog(self, subscription: str) -> int:
        """Messages not yet acknowledged on the subscription (leased or not)."""
        sub_id, _ = self._sub(subscription)
        with self._lock:
            return int(
                self._db.execute(
                    "select count(*) from deliveries where sub_id=?", (sub_id,)
                ).fetchone()[0]
            )

    def oldest_unacked_publish_ns(self, subscription: str) -> int | None:
        sub_id, _ = self._sub(subscription)
        with self._lock:
            row = self._db.execute(
                "select m.publish_ns from deliveries d join messages m on m.id=d.msg_id"
                " where d.sub_id=? order by d.msg_id limit 1",
                (sub_id,),
            ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _tx(self, durable: bool = False) -> _Tx:
        return _Tx(self, durable)


class _Tx:
    """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on error) under the instance lock."""

    def __init__(self, q: SqliteQueue, durable: bool) -> None:
        self.q = q
        self.durable = durable

    def __enter__(self) -> sqlite3.Connection:
        self.q._lock.acquire()
        try:
            if self.durable:
                self.q._db.execute("pragma synchronous=full")
            self.q._db.execute("begin immediate")
        except BaseException:
            self.q._lock.release()
            raise
        return self.q._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.q._db.execute("rollback" if exc_type else "commit")
            if self.durable:
                self.q._db.execute("pragma synchronous=normal")
        finally:
            self.q._lock.release()
