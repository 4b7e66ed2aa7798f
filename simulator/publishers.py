"""Where `chrom-sim stream` sends readings. One interface; the JSONL publisher writes one
chrom.reading.v1 message per line (to stdout or a file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import IO, Any, Protocol


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


def make_publisher(name: str, target: str | None = None) -> Publisher:
    if name == "jsonl":
        return JsonlPublisher(open(target, "w") if target and target != "-" else None)
    raise ValueError(f"unknown publisher {name!r}; available: jsonl")
