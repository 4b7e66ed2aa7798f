"""The transport interface: topics and subscriptions with at-least-once delivery.

Semantics are Google Pub/Sub's, so the local queue and Pub/Sub are interchangeable:

* `publish` returns once the messages are durable (a crash after it returns loses nothing);
* `pull` leases up to `max_messages` messages for the subscription's ack deadline;
  a message not acknowledged before its lease expires is delivered again;
* `ack` removes a message from the subscription; `nack` makes it available again now;
* a message delivered `max_delivery_attempts` times without an ack is forwarded to the
  subscription's dead-letter topic (attribute `delivery_attempts`) instead of again;
* every subscription of a topic gets every message (fan-out);
* with ordering on, messages with the same ordering key (our `unit_id`) are delivered in
  publish order, and a key with a message in flight gives nothing more until it is settled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar, overload

import numpy as np
import numpy.typing as npt

T = TypeVar("T")

# Topology (names shared with infra/ and the docs).
READINGS_TOPIC = "chrom-readings"
DEAD_LETTER_TOPIC = "chrom-readings-dead-letter"
LIVE_BRIDGE_SUBSCRIPTION = "live-bridge"
LANDING_SUBSCRIPTION = "landing"
#: Pub/Sub drops messages published to a topic with no subscription: this one keeps the
#: dead letters for people (and `chrom-bridge dead-letters`) to inspect and replay.
DEAD_LETTER_SUBSCRIPTION = "dead-letter-audit"

#: Attributes set on dead-lettered messages.
ATTR_REASON = "reason"
ATTR_SOURCE_SUBSCRIPTION = "source_subscription"
ATTR_SOURCE_MESSAGE_ID = "source_message_id"
ATTR_DELIVERY_ATTEMPTS = "delivery_attempts"


class TransportError(RuntimeError):
    pass


@dataclass(frozen=True)
class OutMessage:
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordering_key: str = ""


class ReceivedMessage(NamedTuple):
    """A leased message (a NamedTuple: consumers build thousands per pull)."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str
    publish_time_ns: int
    delivery_attempt: int


class _Indexed(Sequence[T]):
    """A sequence made from `__len__` and `_item(i)` for 0 <= i < len: indexing counts
    from the end for negative i and raises IndexError out of range; a slice is a list."""

    def _item(self, i: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._item(i)


class JoinedPayloads(_Indexed[bytes]):
    """Payloads stored as one buffer, joined by newlines as a line-oriented JSON reader
    takes them, with each payload's start and length: a decoder reads `joined` whole and
    slices out a payload only when it needs one alone (a payload may itself hold a
    newline; the lengths, not the newlines, delimit them)."""

    def __init__(self, joined: bytes, lengths: npt.NDArray[np.int64]) -> None:
        self.joined = joined
        self.lengths = lengths
        # payload i starts after the i payloads and i separators before it
        self.starts = np.concatenate([[0], np.cumsum(lengths[:-1] + 1)]).astype(np.int64)
        self.max_len = int(lengths.max()) if lengths.size else 0

    def __len__(self) -> int:
        return int(self.lengths.size)

    def _item(self, i: int) -> bytes:
        a = int(self.starts[i])
        return self.joined[a : a + int(self.lengths[i])]


class MessageBatch(_Indexed[ReceivedMessage]):
    """The messages of one pull, for consumers that take thousands at a time: `data` and
    `ack_ids` are whole columns, so the hot path needs no Python object per message
    (the local queue keeps its ack ids as an array); indexing builds a ReceivedMessage for
    the few that need one (a dead letter, a listing)."""

    def __init__(
        self,
        data: Sequence[bytes],
        ack_ids: Sequence[str],
        message: Callable[[int], ReceivedMessage],
    ) -> None:
        self.data = data
        self.ack_ids = ack_ids
        self._message = message

    @classmethod
    def of(cls, messages: Sequence[ReceivedMessage]) -> MessageBatch:
        return cls([m.data for m in messages], [m.ack_id for m in messages], messages.__getitem__)

    def __len__(self) -> int:
        return len(self.data)

    def _item(self, i: int) -> ReceivedMessage:
        return self._message(i)


@dataclass(frozen=True)
class SubscriptionConfig:
    name: str
    topic: str
    ack_deadline_s: float = 30.0
    max_delivery_attempts: int = 10
    dead_letter_topic: str | None = None
    ordered: bool = True
    #: unacknowledged messages older than this are dropped (Pub/Sub: message retention)
    retention_s: float | None = None
    #: ... and the oldest beyond this many bytes (the local queue only)
    retention_bytes: int | None = None


def attempts_exceeded_reason(attempts: int, last_error: str | None) -> str:
    """The reason a message forwarded after its last delivery attempt carries."""
    why = last_error or "none recorded (the consumer stopped, or its lease expired)"
    return f"delivery_attempts_exceeded: {attempts} deliveries without an ack; last error: {why}"


class Transport(Protocol):
    def create_topic(self, name: str) -> None:
        """Create the topic if it does not exist."""

    def create_subscription(self, config: SubscriptionConfig) -> None:
        """Create the subscription if it does not exist (it sees messages published after)."""

    def publish(self, topic: str, messages: Sequence[OutMessage]) -> list[str]:
        """Publish; returns message ids once every message is durable."""

    def pull(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> list[ReceivedMessage]:
        """Lease up to max_messages available messages (possibly none; never blocks long).
        A named consumer may receive the next messages of ordering keys it already holds."""

    def pull_batch(
        self, subscription: str, max_messages: int, *, consumer: str = ""
    ) -> MessageBatch:
        """`pull`, as a MessageBatch (what the bridge and the landing consumer use)."""

    def ack(self, subscription: str, ack_ids: Sequence[str]) -> None: ...

    def nack(self, subscription: str, ack_ids: Sequence[str], *, error: str = "") -> None:
        """Hand messages back now; `error` (why) becomes their reason if they are forwarded
        after their last attempt (the local queue; Pub/Sub's dead-lettering cannot carry
        one, and `chrom-bridge dead-letters` names its delivery count instead)."""

    def extend(self, subscription: str, ack_ids: Sequence[str], seconds: float) -> None:
        """Extend leases to `seconds` from now (a consumer still working on them)."""

    def close(self) -> None: ...


def dead_letter(
    transport: Transport,
    topic: str,
    source_subscription: str,
    msgs: Sequence[ReceivedMessage],
    reasons: Sequence[tuple[int, str]],
) -> None:
    """Publish msgs[i] to the dead-letter topic with its reason, for each (i, reason): the
    consumer has settled the message (it acks it next) without applying it."""
    if not reasons:
        return
    transport.publish(
        topic,
        [
            OutMessage(
                msgs[i].data,
                {
                    **msgs[i].attributes,
                    ATTR_REASON: reason,
                    ATTR_SOURCE_SUBSCRIPTION: source_subscription,
                    ATTR_SOURCE_MESSAGE_ID: msgs[i].message_id,
                },
                msgs[i].ordering_key,
            )
            for i, reason in reasons
        ],
    )


#: How long and how much the dead-letter audit keeps (31 days: Pub/Sub's longest retention,
#: what infra/gcp gives the audit subscription; the byte bound is the local queue's alone).
DEAD_LETTER_RETENTION_S = 31 * 86_400.0
DEAD_LETTER_RETENTION_BYTES = 1 << 30


def readings_topology(
    ack_deadline_s: float = 30.0,
    max_delivery_attempts: int = 100,
    dead_letter_retention_s: float = DEAD_LETTER_RETENTION_S,
    dead_letter_retention_bytes: int = DEAD_LETTER_RETENTION_BYTES,
) -> tuple[list[str], list[SubscriptionConfig]]:
    """Topics and subscriptions of the streaming path (the same set Terraform creates).

    Our consumers settle every bad message themselves (dead-lettered with a reason), so the
    transport's own dead-lettering is only a last resort against a consumer crash loop:
    hence Pub/Sub's maximum of 100 attempts, so restarts never push good readings aside."""
    topics = [READINGS_TOPIC, DEAD_LETTER_TOPIC]
    subs = [
        SubscriptionConfig(
            name,
            READINGS_TOPIC,
            ack_deadline_s=ack_deadline_s,
            max_delivery_attempts=max_delivery_attempts,
            dead_letter_topic=DEAD_LETTER_TOPIC,
        )
        for name in (LIVE_BRIDGE_SUBSCRIPTION, LANDING_SUBSCRIPTION)
    ]
    subs.append(
        SubscriptionConfig(
            DEAD_LETTER_SUBSCRIPTION,
            DEAD_LETTER_TOPIC,
            ordered=False,
            retention_s=dead_letter_retention_s,
            retention_bytes=dead_letter_retention_bytes,
        )
    )
    return topics, subs


def ensure_readings_topology(transport: Transport, **kwargs: float) -> None:
    topics, subs = readings_topology(**kwargs)  # type: ignore[arg-type]
    for t in topics:
        transport.create_topic(t)
    for s in subs:
        transport.create_subscription(s)
