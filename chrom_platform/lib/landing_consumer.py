"""The landing consumer: `landing` subscription -> Parquet objects in the landing zone.

Micro-batches readings per unit into Parquet under the landing key layout. Object names are
the seq range they hold, and a unit's landed watermark (the highest seq already landed) is
read back from the object names in the store, so after a crash between writing an object
and acknowledging its messages the redelivered readings are recognised as landed: nothing
is landed twice and nothing is lost. Acks happen only after `put` returned (durable:
fsync + atomic rename locally; a completed upload on GCS).

A reading whose seq is at or below the watermark is a duplicate and is dead-lettered with
that reason, like every message that fails validation.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from chrom_platform.lib.consumer import ConsumerReport, SubscriptionConsumer
from chrom_platform.lib.landing_io import land_readings, landed_watermark
from chrom_platform.lib.master_data import MasterData
from chrom_platform.lib.objectstore import ObjectStore
from chrom_platform.lib.readings import Rejection
from chrom_platform.lib.transport import (
    DEAD_LETTER_TOPIC,
    LANDING_SUBSCRIPTION,
    MessageBatch,
    Transport,
)


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
    def __init__(
        self,
        transport: Transport,
        store: ObjectStore,
        master_data: MasterData,
        *,
        subscription: str = LANDING_SUBSCRIPTION,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        batch_size: int = 20_000,
    ) -> None:
        super().__init__(transport, master_data, subscription, dead_letter_topic)
        self.store = store
        self.batch_size = batch_size
        self.watermarks: dict[str, int] = {}

    def _watermark(self, unit_id: str) -> int:
        if unit_id not in self.watermarks:
            self.watermarks[unit_id] = landed_watermark(self.store, unit_id)
        return self.watermarks[unit_id]

    def land(self, msgs: MessageBatch) -> LandingReport:
        """Land a batch of messages and settle every one of them (landed or dead-lettered)."""
        rep = LandingReport(pulled=len(msgs))
        if not msgs:
            return rep
        readings, rejected = self.decoder.decode(msgs.data)
        r = readings.sorted_by_unit_seq()
        keep = np.ones(len(r), dtype=bool)
        new_marks: dict[str, int] = {}
        for a, b in r.runs("unit_id"):
            unit_id = r.unit_id[a]
            wm = self._watermark(unit_id)
            seq = r.seq[a:b]
            dup = np.r_[False, seq[1:] == seq[:-1]] | (seq <= wm)
            for i in np.flatnonzero(dup):
                keep[a + i] = False
                rejected.append(
                    Rejection(
                        int(r.index[a + i]),
                        "duplicate",
                        f"seq {int(seq[i])} of {unit_id} already landed (landed up to {wm})",
                    )
                )
            if not dup.all():
                new_marks[unit_id] = int(seq[~dup].max())
        r = r.take(np.flatnonzero(keep))
        table = r.to_arrow()
        for a, b in r.runs("unit_id"):
            rep.objects.extend(land_readings(self.store, table.slice(a, b - a)))
            rep.rows_by_unit[r.unit_id[a]] += b - a
        self._dead_letter(msgs, rejected)
        self.transport.ack(self.subscription, msgs.ack_ids)
        self.watermarks.update(new_marks)
        rep.landed = len(r)
        rep.dead_lettered.update(x.reason for x in rejected)
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
            msgs = self.transport.pull_batch(self.subscription, self.batch_size)
            if msgs:
                rep = self.land(msgs)
                total.merge(rep)
                if on_flush is not None:
                    on_flush(rep)
            if len(msgs) < self.batch_size:
                t_wait = time.monotonic() + flush_every_s
                while time.monotonic() < t_wait and not stop():
                    time.sleep(0.1)
        return total
