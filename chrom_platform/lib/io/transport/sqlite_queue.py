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
  deliveries(sub_id, msg_id, okey, attempts, lease_until, holder): one row per
      (subscription, message) not yet acknowledged. A lease is `lease_until` in the
      future. Acking deletes the row; a message is deleted once no subscription holds it;
      `size` is the payload's length, so a pull can stop at a byte budget without loading
      what it leaves; `last_error` is what a consumer said when it handed the message back,
      carried as the reason when the message is forwarded after its last attempt;
  leases(sub_id, holder, lease_until, first_id, last_id): one row per pull, covering the
      id range it leased. It answers "which keys are in flight for someone else?" for
      ordered delivery. A row-level index on `lease_until` answered it before, but every
      pull then moved thousands of index entries (one per leased row, ~1.3 us each, the
      largest cost of the bridge's pull); a row per pull costs nothing per message.
      Invariant: every leased delivery row lies in the range of a lease row with its
      holder and a `lease_until` at least its own, so the keys in flight for a consumer
      are those of the leased rows inside the live ranges of other holders (none to read
      when one consumer works alone, as the bridge does).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import overload

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.io.transport.base import (
    ATTR_DELIVERY_ATTEMPTS,
    ATTR_REASON,
    ATTR_SOURCE_MESSAGE_ID,
    ATTR_SOURCE_SUBSCRIPTION,
    JoinedPayloads,
    MessageBatch,
    OutMessage,
    ReceivedMessage,
    SubscriptionConfig,
    TransportError,
    attempts_exceeded_reason,
)

_SCHEMA = """
create table if not exists topics (
    name text primary key,
    last_id integer,
    collected_to integer not null default 0
);
create table if not exists subscriptions (
    id integer primary key,
    name text not null unique,
    topic text not null references topics(name),
    ack_deadline_s real not null,
    max_attempts integer not null,
    dead_letter_topic text,
    ordered integer not null,
    retention_s real,
    retention_bytes integer
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
    size integer not null default 0,
    last_error text,
    primary key (sub_id, msg_id)
) without rowid;
create table if not exists leases (
    sub_id integer not null,
    holder text not null,
    lease_until real not null,
    first_id integer not null,
    last_id integer not null
);
create index if not exists leases_by_sub on leases (sub_id, lease_until);
"""

#: Keys with a message leased to someone else (or to an anonymous consumer) right now.
_IN_FLIGHT_KEYS = (
    "select distinct d.okey from leases l join deliveries d"
    " on d.sub_id=l.sub_id and d.msg_id between l.first_id and l.last_id"
    " where l.sub_id=:sub and l.lease_until>:now and (l.holder='' or l.holder<>:consumer)"
    " and d.holder=l.holder and d.lease_until>:now and d.okey<>''"
)

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


_MAX_ID = (1 << 63) - 1

#: One aggregate row for up to N available rows, in id order: ids and attempts as
#: comma-separated integers, payloads joined by newlines in one blob (the decoder's JSON
#: reader reads that buffer as it is) with their byte lengths. Every aggregate reads the
#: rows in the same pass, so the columns line up row for row; ids are checked ascending on
#: arrival. Keys, attributes and publish times are not read here (they cost ~0.4 us per
#: message and the hot path needs them only for a dead letter): see `_details`. `where`
#: names deliveries' columns only (no name is shared with messages').
_PULL_COLUMNS = (
    "select count(*), group_concat(msg_id), group_concat(attempts),"
    " group_concat(length(data_b)), cast(group_concat(data_b, x'0a') as blob)"
    " from (select d.msg_id, d.attempts, cast(m.data as blob) as data_b"
    " from deliveries d join messages m on m.id = d.msg_id"
    " where {where} order by d.msg_id limit ?)"
)
#: The rows a pull would take, in bytes (sizes are kept per delivery: no payload is read).
_PULL_BYTES = (
    "select coalesce(sum(size), 0) from"
    " (select size from deliveries where {where} order by msg_id limit ?)"
)
#: `_PULL_COLUMNS` stopping at a byte budget (a running sum of the sizes, computed before
#: any payload is read), the first row always taken: a blob larger than the budget comes
#: alone, and no pull can exceed SQLite's string limit (a pull of 105 messages of 10 MB
#: failed every time, wedging the queue). Used only when `_PULL_BYTES` says the budget
#: would be exceeded: the window costs ~0.7 us a row, the byte count ~0.1.
_PULL_COLUMNS_CAPPED = (
    "select count(*), group_concat(msg_id), group_concat(attempts),"
    " group_concat(length(data_b)), cast(group_concat(data_b, x'0a') as blob)"
    " from (select p.msg_id, p.attempts, cast(m.data as blob) as data_b"
    " from (select msg_id, attempts, size,"
    " sum(size) over (order by msg_id rows unbounded preceding) as upto"
    " from deliveries where {where} order by msg_id limit ?) p"
    " join messages m on m.id = p.msg_id where p.upto <= ? or p.upto = p.size)"
)
#: The byte budget of one pull (a reading is ~250 bytes: 5,000 of them are ~1.3 MB).
MAX_PULL_BYTES = 16 * 1024 * 1024

#: msg_id -> (ordering key, attributes as JSON or None, publish time in ns)
_Details = dict[int, tuple[str, str | None, int]]


def _ints(text: str) -> npt.NDArray[np.int64]:
    return np.array(text.split(","), dtype=np.int64)


def _details(db: sqlite3.Connection, ids: Sequence[int]) -> _Details:
    out: _Details = {}
    for i in range(0, len(ids), 10_000):
        chunk = ids[i : i + 10_000]
        for mid, okey, attrs, pub in db.execute(
            "select id, ordering_key, attributes, publish_ns from messages"
            f" where id in ({','.join('?' * len(chunk))})",
            tuple(chunk),
        ):
            out[mid] = (okey, attrs, pub)
    return out


class _Columns:
    """Rows of one pull as columns (see `_PULL_COLUMNS`)."""

    def __init__(
        self,
        ids: npt.NDArray[np.int64],
        attempts: npt.NDArray[np.int64],
        data: Sequence[bytes],
        fetched: int,
        last_id: int,
    ) -> None:
        self.ids, self.attempts, self.data = ids, attempts, data
        self.fetched = fetched  # rows the query returned, dead-lettered ones included
        self.last_id = last_id
        self.nbytes = 0  # payload bytes the query returned (set by `fetch`)

    @classmethod
    def fetch(
        cls,
        db: sqlite3.Connection,
        where: str,
        params: tuple[object, ...],
        limit: int,
        max_bytes: int,
    ) -> _Columns | None:
        size = db.execute(_PULL_BYTES.format(where=where), (*params, limit)).fetchone()[0]
        if size <= max_bytes:
            row = db.execute(_PULL_COLUMNS.format(where=where), (*params, limit)).fetchone()
        else:
            row = db.execute(
                _PULL_COLUMNS_CAPPED.format(where=where), (*params, limit, max_bytes)
            ).fetchone()
        n = int(row[0])
        if n == 0:
            return None
        ids = _ints(row[1])
        if n > 1 and not bool(np.all(np.diff(ids) > 0)):  # pragma: no cover - SQLite's order
            raise TransportError("queue rows came back out of id order")
        cols = cls(ids, _ints(row[2]), JoinedPayloads(row[4], _ints(row[3])), n, int(ids[-1]))
        cols.nbytes = len(row[4])
        return cols

    def __len__(self) -> int:
        return int(self.ids.size)

    def rows(self, db: sqlite3.Connection, which: npt.NDArray[np.intp]) -> list[_Row]:
        ids = self.ids[which].tolist()
        det = _details(db, ids)
        return [
            (m, int(self.attempts[i]), det[m][0], self.data[int(i)], det[m][1], det[m][2])
            for m, i in zip(ids, which, strict=True)
        ]

    def without(self, rows: npt.NDArray[np.intp]) -> _Columns:
        keep = np.setdiff1d(np.arange(len(self)), rows)
        data = [self.data[i] for i in keep.tolist()]
        return _Columns(self.ids[keep], self.attempts[keep], data, self.fetched, self.last_id)

    @staticmethod
    def concat(parts: list[_Columns]) -> _Columns:
        if len(parts) == 1:
            return parts[0]
        return _Columns(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.attempts for p in parts]),
            [d for p in parts for d in p.data],
            sum(p.fetched for p in parts),
            parts[-1].last_id,
        )

    def batch(self, details: Callable[[], _Details]) -> MessageBatch:
        """As delivered (the attempt count includes this delivery). Keys, attributes and
        publish times come from `details`, called once, when a message is first indexed."""
        attempt = self.attempts + 1
        ack = _AckIds(np.column_stack([self.ids, attempt]))
        loaded: list[_Details] = []

        def message(i: int) -> ReceivedMessage:
            if not loaded:
                loaded.append(details())
            m = int(self.ids[i])
            okey, attrs, pub = loaded[0][m]
            return ReceivedMessage(
                ack_id=ack[i],
                message_id=str(m),
                data=self.data[i],
                attributes=json.loads(attrs) if attrs else _NO_ATTRIBUTES,
                ordering_key=okey,
                publish_time_ns=pub,
                delivery_attempt=int(attempt[i]),
            )

        return MessageBatch(self.data, ack, message)


class _AckIds(Sequence[str]):
    """Ack ids ("<msg_id>.<attempt>") of one local pull, kept as an (n, 2) array: `ack` of
    thousands reads the array instead of parsing strings; a string is made when asked."""

    def __init__(self, parsed: npt.NDArray[np.int64]) -> None:
        self.parsed = parsed

    def __len__(self) -> int:
        return int(self.parsed.shape[0])

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> _AckIds: ...
    def __getitem__(self, i: int | slice) -> str | _AckIds:
        if isinstance(i, slice):
            return _AckIds(self.parsed[i])
        m, a = self.parsed[i]
        return f"{m}.{a}"


def _refuse_empty_file(path: Path) -> None:
    """A queue file of 0 bytes is not an empty queue: SQLite writes a header before anything
    else, so it was truncated (a full disk, a copy gone wrong) and its messages are lost.
    Opening it would silently start a new queue; say so instead. (A process creating the
    file right now leaves it empty for a moment: wait for that first.)"""
    for _ in range(20):
        if not path.exists() or path.stat().st_size > 0:
            return
        time.sleep(0.1)
    raise TransportError(
        f"queue file {path} is empty (0 bytes): it was truncated or never written, and"
        " whatever it held is gone. Move it aside to start a new queue."
    )


def _no_message(i: int) -> ReceivedMessage:
    raise IndexError(i)


class SqliteQueue:
    """Topics and subscriptions in a SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, *, clock: object = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_empty_file(self.path)
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
        self._migrate()
        self._subs: dict[str, tuple[int, SubscriptionConfig]] = {}

    def _migrate(self) -> None:
        """Files written before the `leases` table: describe their leases in flight as
        lease rows (so ordering holds across the upgrade), then drop the row-level index.
        Files written before sizes, errors and retention: add the columns (old rows count
        0 bytes against a pull's budget)."""
        for table, column, decl in (
            ("topics", "last_id", "integer"),
            ("topics", "collected_to", "integer not null default 0"),
            ("deliveries", "size", "integer not null default 0"),
            ("deliveries", "last_error", "text"),
            ("subscriptions", "retention_s", "real"),
            ("subscriptions", "retention_bytes", "integer"),
        ):
            have = {r[1] for r in self._db.execute(f"pragma table_info({table})")}
            if column not in have:
                with contextlib.suppress(sqlite3.OperationalError):  # another process did it
                    self._db.execute(f"alter table {table} add column {column} {decl}")
        if not self._db.execute(
            "select 1 from sqlite_master where type='index' and name='deliveries_leased'"
        ).fetchone():
            return
        with self._tx() as db:
            db.execute(
                "insert into leases(sub_id, holder, lease_until, first_id, last_id)"
                " select sub_id, holder, max(lease_until), min(msg_id), max(msg_id)"
                " from deliveries where lease_until>0 group by sub_id, holder"
            )
            db.execute("drop index deliveries_leased")

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
            # retention is a setting that may change after creation (as Pub/Sub's may)
            db.execute(
                "update subscriptions set retention_s=?, retention_bytes=? where name=?",
                (config.retention_s, config.retention_bytes, config.name),
            )
            self._subs.pop(config.name, None)

    def _sub(self, name: str) -> tuple[int, SubscriptionConfig]:
        if name not in self._subs:
            row = self._db.execute(
                "select id, topic, ack_deadline_s, max_attempts, dead_letter_topic, ordered,"
                " retention_s, retention_bytes from subscriptions where name=?",
                (name,),
            ).fetchone()
            if row is None:
                raise TransportError(f"subscription {name!r} does not exist")
            self._subs[name] = (
                row[0],
                SubscriptionConfig(
                    name, row[1], row[2], row[3], row[4], bool(row[5]), row[6], row[7]
                ),
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
        db.execute("update topics set last_id=? where name=?", (last, topic))
        db.execute(
            "insert into deliveries(sub_id, msg_id, okey, size)"
            " select s.id, m.id, m.ordering_key, length(m.data) from messages m"
            " join subscriptions s on s.topic = m.topic where m.id between ? and ?",
            (first, last),
        )
        return first, last

    # -- consume ----------------------------------------------------------------------------

    def pull(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> list[ReceivedMessage]:
        """See Transport.pull."""
        return list(self._pull(subscription, max_messages, consumer, eager=True))

    def pull_batch(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> MessageBatch:
        """See Transport.pull_batch. A named `consumer` may keep pulling the next messages of
        keys it already holds leases on (Pub/Sub's streaming pull binds a key to one client
        the same way); this is what lets a consumer write one batch while it pulls the next.

        The rows come back as one aggregate row (see `_PULL_COLUMNS`): fetched row by row
        they cost ~2.5 us per message in the bridge, most of it the GIL changing hands at
        every row while the bridge's writer thread wanted it. A message's key, attributes
        and publish time are read when the batch is first indexed, so index it (to
        dead-letter, say) before acknowledging it."""
        return self._pull(subscription, max_messages, consumer, eager=False)

    def _pull(
        self, subscription: str, max_messages: int, consumer: str, eager: bool
    ) -> MessageBatch:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        with self._tx() as db:
            sub_id, cfg = self._sub(subscription)
            now = self._now()
            blocked: list[str] = []
            if cfg.ordered:
                db.execute("delete from leases where sub_id=? and lease_until<=?", (sub_id, now))
                blocked = [
                    r[0]
                    for r in db.execute(
                        _IN_FLIGHT_KEYS, {"sub": sub_id, "now": now, "consumer": consumer}
                    )
                ]
            # Available rows in id order, keys in flight left out. Taken in id order, so the
            # rows taken are exactly those of [first, last] this predicate selects, minus
            # the dead-lettered ones (deleted): the lease update below reuses it.
            where = "sub_id=? and msg_id between ? and ? and lease_until<=?"
            if blocked:
                where += f" and okey not in ({','.join('?' * len(blocked))})"
            parts: list[_Columns] = []
            taken = 0
            budget = MAX_PULL_BYTES
            after = -1
            while taken < max_messages and budget > 0:
                want = max_messages - taken
                cols = _Columns.fetch(
                    db, where, (sub_id, after + 1, _MAX_ID, now, *blocked), want, budget
                )
                if cols is None:
                    break
                budget -= cols.nbytes
                if cfg.dead_letter_topic is not None:
                    dead = np.flatnonzero(cols.attempts >= cfg.max_delivery_attempts)
                    if dead.size:
                        # forwarded and gone from this subscription; the key's next message
                        # is next in order, so it may be taken in this same pull
                        self._forward_dead(db, sub_id, cfg, cols.rows(db, dead))
                        cols = cols.without(dead)
                if len(cols):
                    parts.append(cols)
                    taken += len(cols)
                after = cols.last_id
                if cols.fetched < want:
                    break
            if not parts:
                return MessageBatch([], [], _no_message)
            got = _Columns.concat(parts)
            lease_until = now + cfg.ack_deadline_s
            first, last = int(got.ids[0]), int(got.ids[-1])
            db.execute(
                f"update deliveries set attempts=attempts+1, lease_until=?, holder=? where {where}",
                (lease_until, consumer, sub_id, first, last, now, *blocked),
            )
            if cfg.ordered:
                db.execute(
                    "insert into leases(sub_id, holder, lease_until, first_id, last_id)"
                    " values (?, ?, ?, ?, ?)",
                    (sub_id, consumer, lease_until, first, last),
                )
            ids = got.ids.tolist()
            if eager:
                det = _details(db, ids)
                return got.batch(lambda: det)
        return got.batch(lambda: self._stored_details(ids))

    def _stored_details(self, ids: list[int]) -> _Details:
        with self._lock:
            det = _details(self._db, ids)
        if len(det) < len(ids):
            raise TransportError(
                "message no longer stored (acknowledged everywhere): index a pulled batch"
                " before acknowledging it"
            )
        return det

    def _forward_dead(
        self,
        db: sqlite3.Connection,
        sub_id: int,
        cfg: SubscriptionConfig,
        rows: list[_Row],
    ) -> None:
        assert cfg.dead_letter_topic is not None
        errors = dict(
            db.execute(
                f"select msg_id, last_error from deliveries where sub_id=? and msg_id in"
                f" ({','.join('?' * len(rows))})",
                (sub_id, *(r[0] for r in rows)),
            ).fetchall()
        )
        out = []
        for msg_id, attempts, okey, data, attrs, _ in rows:
            a = json.loads(attrs) if attrs else {}
            a[ATTR_SOURCE_SUBSCRIPTION] = cfg.name
            a[ATTR_SOURCE_MESSAGE_ID] = str(msg_id)
            a[ATTR_DELIVERY_ATTEMPTS] = str(attempts)
            a[ATTR_REASON] = attempts_exceeded_reason(attempts, errors.get(msg_id))
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
        if isinstance(ack_ids, _AckIds):
            return ack_ids.parsed
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

    def nack(self, subscription: str, ack_ids: Sequence[str], *, error: str = "") -> None:
        """Make messages available again now. With ordering, later messages of the same key
        that are leased in the same lease are released too, so the key is redelivered in
        order (Pub/Sub does the same). `error` is kept as the reason the messages carry if
        they are forwarded to the dead-letter topic after their last attempt."""
        if not ack_ids:
            return
        runs = _runs(self._parse_ack_ids(ack_ids))
        with self._tx() as db:
            sub_id, cfg = self._sub(subscription)
            now = self._now()
            db.executemany(
                "update deliveries set lease_until=0, last_error=coalesce(?, last_error)"
                " where sub_id=? and msg_id between ? and ? and attempts=?",
                [(error[:500] or None, sub_id, first, last, a) for first, last, a in runs],
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
                    # leased rows lie inside the lease rows' ranges: bound the scan by
                    # them instead of reading the key's whole backlog
                    db.execute(
                        "update deliveries set lease_until=0"
                        " where sub_id=:sub and lease_until>:now and okey=:key and msg_id>:m"
                        " and msg_id<=(select coalesce(max(last_id), -1) from leases"
                        " where sub_id=:sub)",
                        {"sub": sub_id, "now": now, "key": key, "m": m},
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
            # lease rows for what is now leased until `until` (keeps the invariant)
            db.executemany(
                "insert into leases(sub_id, holder, lease_until, first_id, last_id)"
                " select sub_id, holder, lease_until, min(msg_id), max(msg_id)"
                " from deliveries where sub_id=? and msg_id between ? and ? and attempts=?"
                " group by holder",
                [(sub_id, first, last, a) for first, last, a in runs],
            )

    def _collect(self, db: sqlite3.Connection) -> None:
        """Delete the messages no subscription of their topic still holds, with range
        deletes and no per-message check. (A message acked everywhere but above a laggard
        subscription's oldest waits for it, as retention does in Pub/Sub.) Lease rows
        wholly below their subscription's oldest message go too: nothing is left in them.

        Below the lowest message held anywhere (`low`), everything goes. Above it, each
        topic loses its messages below its own oldest held one (or all it published, if it
        holds none): so one dead letter nobody acknowledged keeps only itself, not every
        reading published after it (the file grew to 100,001 messages). Each topic
        remembers how far it was collected (`collected_to`), so an id range is scanned once
        per topic, not at every ack (a scan of the readings' backlog at every ack, to find
        the dead-letter topic's few messages among them, tripled the cost of an ack); an
        index on topic would do it too, at ~1 us per message on the hot path."""
        low_by_topic: dict[str, int] = {}
        for sub_id, topic in db.execute("select id, topic from subscriptions").fetchall():
            low = db.execute(
                "select min(msg_id) from deliveries where sub_id=?", (sub_id,)
            ).fetchone()[0]
            if low is None:
                db.execute("delete from leases where sub_id=?", (sub_id,))
                continue
            db.execute("delete from leases where sub_id=? and last_id<?", (sub_id, low))
            low_by_topic[topic] = min(low_by_topic.get(topic, _MAX_ID), int(low))
        if not low_by_topic:
            db.execute("delete from messages")
            return
        low = min(low_by_topic.values())
        db.execute("delete from messages where id < ?", (low,))
        topics = db.execute("select name, last_id, collected_to from topics").fetchall()
        for topic, last_id, collected_to in topics:
            if last_id is None:  # a file from before `last_id`: find it once
                last_id = db.execute(
                    "select coalesce(max(id), 0) from messages where topic=?", (topic,)
                ).fetchone()[0]
                db.execute("update topics set last_id=? where name=?", (last_id, topic))
            # below `upto`, none of the topic's messages is held any more
            upto = min(low_by_topic.get(topic, _MAX_ID), int(last_id) + 1)
            start = max(low, int(collected_to) + 1)
            if upto > start:
                db.execute(
                    "delete from messages where id >= ? and id < ? and topic = ?",
                    (start, upto, topic),
                )
            if upto - 1 > collected_to:
                db.execute("update topics set collected_to=? where name=?", (upto - 1, topic))

    def expire(self) -> int:
        """Drop what subscriptions with a retention hold beyond it (older than
        `retention_s`, or the oldest beyond `retention_bytes`): the dead-letter audit keeps
        a bounded history instead of growing for ever. Returns the messages dropped."""
        dropped = 0
        with self._tx() as db:
            now_ns = int(self._now() * 1e9)
            for sub_id, keep_s, keep_bytes in db.execute(
                "select id, retention_s, retention_bytes from subscriptions"
                " where retention_s is not null or retention_bytes is not null"
            ).fetchall():
                if keep_s is not None:
                    dropped += db.execute(
                        "delete from deliveries where sub_id=? and msg_id in (select d.msg_id"
                        " from deliveries d join messages m on m.id=d.msg_id"
                        " where d.sub_id=? and m.publish_ns < ?)",
                        (sub_id, sub_id, now_ns - int(keep_s * 1e9)),
                    ).rowcount
                if keep_bytes is not None:
                    dropped += db.execute(
                        "delete from deliveries where sub_id=? and msg_id in (select msg_id from"
                        " (select msg_id, sum(size) over (order by msg_id desc) as newer"
                        " from deliveries where sub_id=?) where newer > ?)",
                        (sub_id, sub_id, keep_bytes),
                    ).rowcount
            if dropped:
                self._collect(db)
        return dropped

    def held(self, subscription: str) -> tuple[int, int]:
        """(messages, bytes) the subscription holds unacknowledged: for the dead-letter
        audit, the metric of what is kept."""
        sub_id, _ = self._sub(subscription)
        with self._lock:
            n, b = self._db.execute(
                "select count(*), coalesce(sum(size), 0) from deliveries where sub_id=?",
                (sub_id,),
            ).fetchone()
        return int(n), int(b)

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
