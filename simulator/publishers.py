"""Where `chrom-sim stream` sends readings. One interface: the queue publisher publishes to
the `chrom-readings` topic (local queue or Pub/Sub); the JSONL publisher writes one
chrom.reading.v1 message per line (to stdout or a file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import IO, Any, Protocol

import orjson

from chrom_platform.lib.core.contracts import READING_SCHEMA


class Publisher(Protocol):
    def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        """Publish messages; returns once they are accepted by the transport."""

    def close(self) -> None: ...


class JsonlPublisher:
    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        self.out.write("".join(json.dumps(m, separators=(",", ":")) + "\n" for m in messages))
        self.out.flush()

    def close(self) -> None:
        if self.out is not sys.stdout:
            self.out.close()


class QueuePublisher:
    """Publishes to the `chrom-readings` topic of a transport (the local SQLite queue or
    Pub/Sub), ordering key = unit_id, so a unit's readings arrive in order."""

    def __init__(self, uri: str) -> None:
        from chrom_platform.lib.io.transport import (
            ensure_readings_topology,
            open_transport,
            owns_topology,
        )

        self.transport = open_transport(uri)
        if owns_topology(uri):  # Pub/Sub's topology is the deployment's (Terraform)
            ensure_readings_topology(self.transport)

    def publish(self, messages: Sequence[dict[str, Any]]) -> None:
        from chrom_platform.lib.io.transport import READINGS_TOPIC, OutMessage

        self.transport.publish(
            READINGS_TOPIC,
            [
                OutMessage(orjson.dumps(m), {"schema": READING_SCHEMA}, m["unit_id"])
                for m in messages
            ],
        )

    def close(self) -> None:
        self.transport.close()


def make_publisher(name: str, target: str | None = None) -> Publisher:
    if name == "jsonl":
        return JsonlPublisher(open(target, "w") if target and target != "-" else None)
    if name == "queue":
        if not target or target == "-":
            raise ValueError("the queue publisher needs --publish-to <queue file or pubsub://>")
        return QueuePublisher(target)
    raise ValueError(f"unknown publisher {name!r}; available: jsonl, queue")
