"""What the live bridge and the landing consumer share: a subscription read with the one
reading decoder, bad messages settled on the dead-letter topic with their reason, and the
part of their reports that counts pulls and dead letters."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypedDict, Unpack

from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.transport import (
    DEAD_LETTER_TOPIC,
    MessageBatch,
    ReceivedMessage,
    Transport,
)
from chrom_platform.lib.io.transport.base import dead_letter
from chrom_platform.lib.streaming.readings import MAX_AHEAD_S, ReadingDecoder, Rejection

log = logging.getLogger(__name__)


@dataclass
class ConsumerReport:
    pulled: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Self) -> None:
        self.pulled += other.pulled
        self.dead_lettered.update(other.dead_lettered)

    def summary(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled,
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_lettered_by_reason": dict(sorted(self.dead_lettered.items())),
        }


class ConsumerOptions(TypedDict, total=False):
    """What every consumer can be told besides its own parts (each has its defaults)."""

    subscription: str
    dead_letter_topic: str
    #: messages pulled at a time
    batch_size: int
    #: a reading stamped further ahead of the receiving clock is dead-lettered
    max_ahead_s: float
    #: asked between rounds of a long-running consumer: newer master data to judge with
    #: (StreamingConfig.master_data_source); without it the master data given stays
    master_data_source: Callable[[], MasterData]


class SubscriptionConsumer:
    #: the subscription a consumer reads and how many messages it pulls at a time, unless told
    SUBSCRIPTION: ClassVar[str]
    BATCH_SIZE: ClassVar[int]

    def __init__(
        self, transport: Transport, master_data: MasterData, **options: Unpack[ConsumerOptions]
    ) -> None:
        max_ahead_s = options.get("max_ahead_s", MAX_AHEAD_S)
        self.transport = transport
        self.md = master_data
        self.decoder = ReadingDecoder(master_data, max_ahead_s=max_ahead_s)
        self.max_ahead_ns = int(max_ahead_s * 1e9)
        self.subscription = options.get("subscription", self.SUBSCRIPTION)
        self.dead_letter_topic = options.get("dead_letter_topic", DEAD_LETTER_TOPIC)
        self.batch_size = options.get("batch_size", self.BATCH_SIZE)
        self.master_data_source = options.get("master_data_source")

    def use_master_data(self, master_data: MasterData) -> None:
        """Judge from now on with `master_data` (a newer landed snapshot)."""
        self.md = master_data
        self.decoder = ReadingDecoder(master_data, max_ahead_s=self.max_ahead_ns / 1e9)

    def follow_master_data(self) -> None:
        """Take up the master data source's current snapshot if it is another one: what a
        long-running consumer does between rounds, so a change landed once reaches it as it
        reaches the warehouse."""
        if self.master_data_source is None:
            return
        md = self.master_data_source()
        if md is not self.md:
            log.info("%s: judging with newer master data from now on", self.subscription)
            self.use_master_data(md)

    @contextlib.contextmanager
    def handing_back_on_error(
        self, msgs: MessageBatch, keep: type[Exception] | None = None
    ) -> Iterator[None]:
        """Around the work on a pulled batch: if it raises (a bug, not a bad message: those
        are dead-lettered one by one), hand the batch back with the error, which becomes the
        messages' reason should they reach their last delivery attempt; then re-raise. An
        exception of type `keep` leaves the batch leased: the caller retries it."""
        try:
            yield
        except Exception as e:
            if keep is not None and isinstance(e, keep):
                raise
            with contextlib.suppress(Exception):
                self.transport.nack(
                    self.subscription, msgs.ack_ids, error=f"{type(e).__name__}: {e}"
                )
            raise

    def _dead_letter(self, msgs: Sequence[ReceivedMessage], rejected: list[Rejection]) -> None:
        dead_letter(
            self.transport,
            self.dead_letter_topic,
            self.subscription,
            msgs,
            [(r.index, str(r)) for r in rejected],
        )
