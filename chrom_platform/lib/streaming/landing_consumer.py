"""The landing consumer: `landing` subscription -> Parquet objects in the landing zone.

Micro-batches readings per unit into Parquet under the landing key layout. Object names are
the seq range they hold, and a unit's landed state (the seq and time of its newest landed
reading) is read back from the store, so after a crash between writing an object and
acknowledging its messages the redelivered readings are recognised as landed: nothing is
landed twice and nothing is lost. Acks happen only after `put` returned (durable: fsync +
atomic rename locally; a completed upload on GCS).

A reading is judged against that state by the live bridge's own rule (`split_stale`): at or
below the landed seq it is a `duplicate`, not after the landed time `out_of_order`, with a
seq its clock cannot explain `implausible_seq`; each is dead-lettered with its reason, like
every message that fails validation. So a unit's landed readings advance in seq and time
together, which is what lets the state be read from the newest date partition alone.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, Unpack

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.contracts import READINGS_PREFIX, readings_key
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.landing import land_readings, seq_range_of
from chrom_platform.lib.io.objectstore import ObjectStore
from chrom_platform.lib.io.transport import (
    LANDING_SUBSCRIPTION,
    MessageBatch,
    Transport,
)
from chrom_platform.lib.streaming.consumer import (
    ConsumerOptions,
    ConsumerReport,
    SubscriptionConsumer,
)
from chrom_platform.lib.streaming.readings import Rejection, split_stale

log = logging.getLogger("chrom.landing")


def _last_reading(store: ObjectStore, key: str) -> tuple[int, int]:
    """(seq, ts in ns) of the last reading of a landed object."""
    # read from a file, not a BytesIO: pyarrow can abort at exit on the latter (DESIGN.md)
    with tempfile.NamedTemporaryFile(suffix=".parquet") as f:
        f.write(store.get(key))
        f.flush()
        t = pq.read_table(f.name, columns=["seq", "ts"], use_threads=False)
    seq = t.column("seq").to_numpy()
    i = int(np.argmax(seq))
    return int(seq[i]), int(t.column("ts").cast(pa.int64()).to_numpy()[i])


def landed_state(store: ObjectStore, unit_id: str, latest_ns: int) -> tuple[int, int]:
    """(seq, ts in ns) of the newest reading landed for a unit; (-1, -1) if none.

    Landed readings of a unit advance in seq and time together (the landing consumer
    refuses the rest, by the live bridge's rule, `split_stale`), so the newest date
    partition holds the highest seq. Partitions dated after `latest_ns` (the receiving
    clock plus its tolerance; written before readings ahead of the clock were refused) are
    passed over, and so is a newest object whose seq its predecessor cannot explain. Cost:
    one day of object names and a couple of objects' seq column, not the unit's history."""
    base = f"{READINGS_PREFIX}/unit_id={unit_id}"
    newest_date = "date=" + readings_key(unit_id, latest_ns, 0, 0).split("/date=")[1][:10]
    for date_dir in sorted(store.children(base), reverse=True):
        if date_dir > newest_date:
            continue
        keys = sorted(
            ((r[1], o.key) for o in store.list(f"{base}/{date_dir}") if (r := seq_range_of(o.key))),
            reverse=True,
        )
        if not keys:
            continue
        newest = _last_reading(store, keys[0][1])
        for _, key in keys[1:3]:
            before = _last_reading(store, key)
            if not split_stale(np.array([newest[0]]), np.array([newest[1]]), *before):
                return newest
            newest = before
        return newest
    return -1, -1


@dataclass
class LandingReport(ConsumerReport):
    landed: int = 0
    objects: list[str] = field(default_factory=list)
    rows_by_unit: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Self) -> None:
        super().merge(other)
        self.landed += other.landed
        self.objects.extend(other.objects)
        self.rows_by_unit.update(other.rows_by_unit)

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),
            "readings_landed": self.landed,
            "objects_written": len(self.objects),
            "readings_by_unit": dict(sorted(self.rows_by_unit.items())),
        }


class LandingConsumer(SubscriptionConsumer):
    SUBSCRIPTION = LANDING_SUBSCRIPTION
    BATCH_SIZE = 20_000

    def __init__(
        self,
        transport: Transport,
        store: ObjectStore,
        master_data: MasterData,
        **options: Unpack[ConsumerOptions],
    ) -> None:
        super().__init__(transport, master_data, **options)
        self.store = store
        #: per unit: (seq, ts in ns) of the newest landed reading
        self.landed: dict[str, tuple[int, int]] = {}

    def _state(self, unit_id: str) -> tuple[int, int]:
        if unit_id not in self.landed:
            self.landed[unit_id] = landed_state(
                self.store, unit_id, time.time_ns() + self.max_ahead_ns
            )
        return self.landed[unit_id]

    def land(self, msgs: MessageBatch) -> LandingReport:
        """Land a batch of messages and settle every one of them (landed or dead-lettered)."""
        rep = LandingReport(pulled=len(msgs))
        if not msgs:
            return rep
        readings, rejected = self.decoder.decode(msgs.data)
        r = readings.sorted_by_unit_seq()
        keep = np.ones(len(r), dtype=bool)
        new_state: dict[str, tuple[int, int]] = {}
        for a, b in r.runs("unit_id"):
            unit_id = r.unit_id[a]
            for row, reason, detail in split_stale(r.seq[a:b], r.ts_ns[a:b], *self._state(unit_id)):
                keep[a + row] = False
                rejected.append(Rejection(int(r.index[a + row]), reason, f"{unit_id}: {detail}"))
            kept = np.flatnonzero(keep[a:b])
            if kept.size:
                last = a + int(kept[-1])
                new_state[unit_id] = (int(r.seq[last]), int(r.ts_ns[last]))
        r = r.take(np.flatnonzero(keep))
        table = r.to_arrow()
        for a, b in r.runs("unit_id"):
            rep.objects.extend(land_readings(self.store, table.slice(a, b - a)))
            rep.rows_by_unit[r.unit_id[a]] += b - a
        self._dead_letter(msgs, rejected)
        self.transport.ack(self.subscription, msgs.ack_ids)
        self.landed.update(new_state)
        rep.landed = len(r)
        rep.dead_lettered.update(x.reason for x in rejected)
        return rep

    def _land_retrying(self, msgs: MessageBatch, stop: Callable[[], bool]) -> LandingReport | None:
        """`land`, retried with backoff while the store refuses writes (a read-only or full
        disk, a bucket outage), the batch's leases extended meanwhile, so the process keeps
        its place and resumes by itself when the store is back; None if `stop()` came
        first (the batch is then handed back, nothing lost)."""
        backoff, failures, t0 = 0.5, 0, time.monotonic()
        while True:
            try:
                with self.handing_back_on_error(msgs, keep=OSError):
                    rep = self.land(msgs)
            except OSError as e:
                failures += 1
                log.warning(
                    "landing store refused a write (%s): %d messages held, retry %d in %.1f s",
                    e,
                    len(msgs),
                    failures,
                    backoff,
                )
                t_retry = time.monotonic() + backoff
                while time.monotonic() < t_retry:
                    if stop():
                        self.transport.nack(self.subscription, msgs.ack_ids)
                        return None
                    time.sleep(0.1)
                self.transport.extend(self.subscription, msgs.ack_ids, 60.0)
                backoff = min(backoff * 2, 30.0)
                continue
            if failures:
                log.info(
                    "landing store took the write after %d failed attempts in %.1f s",
                    failures,
                    time.monotonic() - t0,
                )
            return rep

    def drain(self, max_messages: int, max_seconds: float) -> LandingReport:
        """Bounded work (a sensor tick): land pull after pull until max_messages or
        max_seconds. Each pull is one micro-batch: with ordering on, a unit's next messages
        are not handed out while earlier ones are leased, so batching happens in the queue
        (the caller lets it fill), not by holding leases."""
        total = LandingReport()
        t_end = time.monotonic() + max_seconds
        while total.pulled < max_messages and time.monotonic() < t_end:
            msgs = self.transport.pull_batch(
                self.subscription, min(self.batch_size, max_messages - total.pulled)
            )
            if not msgs:
                break
            with self.handing_back_on_error(msgs):
                total.merge(self.land(msgs))
        return total

    def serve(
        self,
        stop: Callable[[], bool],
        flush_every_s: float = 10.0,
        on_flush: Callable[[LandingReport], None] | None = None,
    ) -> LandingReport:
        """Long-running form. After a short pull it waits `flush_every_s` and lets the queue
        (durable) collect the next micro-batch, so objects stay a useful size at the live
        rate of a few readings per second, and a backlog drains in full-size batches."""
        total = LandingReport()
        while not stop():
            self.follow_master_data()
            msgs = self.transport.pull_batch(self.subscription, self.batch_size)
            if msgs:
                rep = self._land_retrying(msgs, stop)
                if rep is None:
                    break  # stopped while the store was failing: the batch was handed back
                total.merge(rep)
                if on_flush is not None:
                    on_flush(rep)
                if rep.dead_lettered:
                    log.info(
                        "landing dead-lettered %d messages: %s",
                        sum(rep.dead_lettered.values()),
                        dict(rep.dead_lettered),
                    )
            if len(msgs) < self.batch_size:
                t_wait = time.monotonic() + flush_every_s
                while time.monotonic() < t_wait and not stop():
                    time.sleep(0.1)
        return total
