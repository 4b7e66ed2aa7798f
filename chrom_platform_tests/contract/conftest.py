"""Every transport adapter that can run here, behind one fixture, for one contract suite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chrom_platform.lib.io.transport import SubscriptionConfig, Transport
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue

TOPIC, DLQ = "readings", "readings-dead-letter"
SUB_A, SUB_B, SUB_DLQ = "sub-a", "sub-b", "sub-dead"
#: Pub/Sub's minimum ack deadline and dead-letter attempts, so both adapters run the same
#: numbers (the clock is ours, so waiting 10 s costs nothing).
DEADLINE_S, MAX_ATTEMPTS = 10.0, 5


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Harness:
    transport: Transport
    clock: Clock
    name: str


def _topology(tr: Transport) -> None:
    tr.create_topic(TOPIC)
    tr.create_topic(DLQ)
    for s in (SUB_A, SUB_B):
        tr.create_subscription(
            SubscriptionConfig(s, TOPIC, DEADLINE_S, MAX_ATTEMPTS, dead_letter_topic=DLQ)
        )
    tr.create_subscription(SubscriptionConfig(SUB_DLQ, DLQ, DEADLINE_S, ordered=False))


@pytest.fixture(params=["sqlite", "pubsub"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    clock = Clock()
    if request.param == "sqlite":
        tr: Transport = SqliteQueue(tmp_path / "queue.db", clock=clock)
        _topology(tr)
        yield Harness(tr, clock, "sqlite")
        tr.close()
        return
    from chrom_platform.lib.io.transport.pubsub import PubSubTransport
    from chrom_platform_tests.contract.fake_pubsub import FakePubSubServer

    server = FakePubSubServer(tmp_path / "fake-pubsub.db", clock)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.start())
    tr = PubSubTransport("chrom-test", pull_timeout_s=5.0)
    _topology(tr)
    _topology(tr)  # second time: the adapter treats ALREADY_EXISTS as done
    h = Harness(tr, clock, "pubsub")
    h.server = server  # type: ignore[attr-defined]
    yield h
    tr.close()
    server.stop()
