"""What the live bridge and the landing consumer share: a subscription read with the one
reading decoder, bad messages settled on the dead-letter topic with their reason, and the
part of their reports that counts pulls and dead letters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from chrom_platform.lib.master_data import MasterData
from chrom_platform.lib.readings import ReadingDecoder, Rejection
from chrom_platform.lib.transport import ReceivedMessage, Transport
from chrom_platform.lib.transport.base import dead_letter


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


class SubscriptionConsumer:
    def __init__(
        self,
        transport: Transport,
        master_data: MasterData,
        subscription: str,
        dead_letter_topic: str,
    ) -> None:
        self.transport = transport
        self.decoder = ReadingDecoder(master_data)
        self.subscription = subscription
        self.dead_letter_topic = dead_letter_topic

    def _dead_letter(self, msgs: Sequence[ReceivedMessage], rejected: list[Rejection]) -> None:
        dead_letter(
            self.transport,
            self.dead_letter_topic,
            self.subscription,
            msgs,
            [(r.index, str(r)) for r in rejected],
        )
