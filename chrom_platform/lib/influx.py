"""Minimal InfluxDB 1.x HTTP client: create a database, write line protocol, run InfluxQL.

The streaming bridge's sinks build on this (v1 `/write` locally; influxdb-client's v2 API in
production); tests use `query` to read back what was written.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class InfluxError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body
        super().__init__(f"InfluxDB answered {status}: {body[:500]}")


class InfluxV1Client:
    def __init__(self, url: str, database: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> bytes:
        req = urllib.request.Request(
            f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=body, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as e:
            raise InfluxError(e.code, e.read().decode(errors="replace")) from e

    def create_database(self) -> None:
        self._request("/query", {"q": f'CREATE DATABASE "{self.database}"'})

    def write_lines(self, lines: bytes, precision: str = "ns") -> None:
        self._request("/write", {"db": self.database, "precision": precision}, lines)

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns series as dicts {name, tags, columns, values}."""
        raw = json.loads(
            self._request("/query", {"db": self.database, "q": influxql, "epoch": "ns"})
        )
        out: list[dict[str, Any]] = []
        for res in raw.get("results", []):
            if "error" in res:
                raise InfluxError(400, res["error"])
            out.extend(res.get("series", []))
        return out
