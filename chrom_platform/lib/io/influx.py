"""Minimal InfluxDB 1.x HTTP client: create a database, write line protocol, run InfluxQL.

The streaming bridge's sinks build on this (v1 `/write` locally; influxdb-client's v2 API in
production); tests use `query` to read back what was written.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger("chrom.bridge")


def ping(url: str, timeout: float = 1.0) -> bool:
    """InfluxDB answers `/ping` with 204 (1.x, 2.x and 3.x alike)."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as r:
            return bool(r.status == 204)
    except OSError:  # URLError included: refused, reset, timeout
        return False


class InfluxError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body
        super().__init__(f"InfluxDB answered {status}: {body[:500]}")


@dataclass(frozen=True)
class Credentials:
    """A user of InfluxDB 1.x (HTTP basic auth); repr hides the password."""

    username: str
    password: str = field(repr=False)

    def header(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


class InfluxV1Client:
    def __init__(
        self,
        url: str,
        database: str,
        timeout_s: float = 30.0,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = credentials.header() if credentials else {}

    def _request(self, path: str, params: dict[str, str], body: bytes | None = None) -> bytes:
        req = urllib.request.Request(
            f"{self.url}{path}?{urllib.parse.urlencode(params)}",
            data=body,
            method="POST",
            headers=self.headers,
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


# -- line protocol -------------------------------------------------------------------------


def escape_tag(value: str) -> str:
    """Tag value escaping of line protocol (commas, spaces and equals signs)."""
    return value.replace(",", r"\,").replace(" ", r"\ ").replace("=", r"\=")


def line_protocol(
    measurement: str,
    tags: dict[str, Sequence[str]],
    fields: dict[str, npt.NDArray[Any]],
    ts_ns: npt.NDArray[np.int64],
) -> bytes:
    """Points as line protocol, one line per row, nanosecond timestamps.

    Vectorized: numbers are formatted by orjson (shortest round-trip text, so a value read
    back from InfluxDB is the same double that was computed; the bridge relies on that to
    continue CV after a restart) and lines are joined by pyarrow, ~1 us per point instead of
    ~6 us for per-point f-strings. Integer fields get the `i` suffix.
    """
    n = int(ts_ns.size)
    if n == 0:
        return b""
    tag_names = list(tags)
    # each distinct tag set numbered in order of appearance, iterating in C (no per-row
    # Python statement): a batch holds a handful of series
    keys = list(zip(*(tags[k] for k in tag_names), strict=True))
    codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    row_code = np.fromiter(map(codes.__getitem__, keys), dtype=np.int64, count=n)
    prefixes = pa.array(
        [
            (
                measurement
                + "".join(f",{k}={escape_tag(v)}" for k, v in zip(tag_names, key, strict=True) if v)
            ).encode()
            for key in codes
        ]
    ).take(pa.array(row_code))
    parts: list[Any] = [prefixes]
    for j, (name, values) in enumerate(fields.items()):
        parts.append(f"{',' if j else ' '}{name}=".encode())
        parts.append(_texts(values))
        if values.dtype.kind in "iu":
            parts.append(b"i")
    parts += [b" ", _texts(ts_ns), b"\n"]
    joined = pc.binary_join_element_wise(*parts, b"")
    return bytes(pa.concat_arrays([joined]).buffers()[2].to_pybytes())


def _texts(values: npt.NDArray[Any]) -> pa.Array:
    """Each number as its shortest JSON text (finite values only; validation ensures it).

    orjson writes "[v0,v1,...]"; the array is cut at the commas without a Python object
    per value: value i is the text from the i-th delimiter ('[' or ',') to the next, less
    that leading delimiter."""
    raw = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)
    commas = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord(","))
    offsets = np.concatenate([[0], commas, [len(raw) - 1]]).astype(np.int32)
    cut = pa.BinaryArray.from_buffers(
        pa.binary(), int(values.size), [None, pa.py_buffer(offsets), pa.py_buffer(raw)]
    )
    # an explicit stop: pyarrow 26's binary_slice without one fails on 1-byte values; the
    # longest number orjson writes is 24 bytes ("-1.7976931348623157e+308")
    return pc.binary_slice(cut, 1, 32)


#: Lines per /write request: InfluxDB's guidance is 5,000-10,000 points per batch.
WRITE_CHUNK = 5000


# -- sinks: where the live bridge writes ------------------------------------------------------


class SinkUnavailable(RuntimeError):
    """The sink cannot be reached or answered 5xx: retry later, nothing was accepted."""


class SinkUnauthorized(SinkUnavailable):
    """The sink refused our credentials or grant (401, 403): a password rotated, a token
    revoked, a grant taken away. Not the data's fault, so never dead-lettered: held and
    retried like any outage, with the reason logged, until someone fixes the settings."""


class SinkRejected(RuntimeError):
    """The sink refused the data itself (other 4xx): retrying the same lines will not help."""


#: Statuses that refuse who we are, not what we sent.
AUTH_STATUSES = (401, 403)


def _auth_problem(status: int, body: str, what: str) -> SinkUnauthorized:
    return SinkUnauthorized(
        f"InfluxDB refused the bridge's credentials ({status}: {body[:200].strip()}): check {what}"
    )


class InfluxSink(Protocol):
    name: str

    def ping(self) -> bool: ...

    def write(self, lines: bytes) -> None:
        """Write line protocol (ns precision); returns once the sink accepted all of it."""

    def query(self, influxql: str) -> list[dict[str, Any]]: ...


class InfluxV1Sink(InfluxV1Client):
    """InfluxDB 1.x (`/write`, InfluxQL): the local profile's Debian InfluxDB 1.6.7. The
    client itself, with the sink's error contract: unreachable or 5xx is SinkUnavailable
    (retry later), 4xx is SinkRejected (the data itself was refused)."""

    name = "influxdb-v1"

    def ensure_database(self) -> None:
        try:
            self.create_database()
        except InfluxError as e:
            if e.status in AUTH_STATUSES or _denied(e.body):
                raise _auth_problem(e.status, e.body, self._check) from e
            raise

    def ping(self) -> bool:
        return ping(self.url, timeout=2.0)

    @property
    def _check(self) -> str:
        return (
            "CHROM_INFLUX_USER / CHROM_INFLUX_PASSWORD and the user's WRITE grant on "
            f"database {self.database!r}"
        )

    def write(self, lines: bytes) -> None:
        try:
            self.write_lines(lines)
        except InfluxError as e:
            if e.status in AUTH_STATUSES:
                raise _auth_problem(e.status, e.body, self._check) from e
            if e.status >= 500:
                raise SinkUnavailable(str(e)) from e
            raise SinkRejected(str(e)) from e
        except OSError as e:  # refused, reset, timeout
            raise SinkUnavailable(f"InfluxDB at {self.url} unreachable: {e}") from e

    def query(self, influxql: str) -> list[dict[str, Any]]:
        return _sink_query(super().query, influxql, self.url, self._check)


def _sink_query(
    run: Callable[[str], list[dict[str, Any]]], influxql: str, url: str, check: str
) -> list[dict[str, Any]]:
    """InfluxQL with the sink's error contract: an outage or refused credentials are
    SinkUnavailable (the bridge holds and retries), never a crash; `check` says what to fix
    when the credentials are refused."""
    try:
        return run(influxql)
    except InfluxError as e:
        if e.status in AUTH_STATUSES or _denied(e.body):
            raise _auth_problem(e.status, e.body, check) from e
        if e.status >= 500:
            raise SinkUnavailable(str(e)) from e
        raise
    except OSError as e:
        raise SinkUnavailable(f"InfluxDB at {url} unreachable: {e}") from e


def _denied(body: str) -> bool:
    """InfluxDB 1.x answers a query the user may not run with 200 and an error in the
    result ("... not authorized to execute statement ..."), which the client raises as 400."""
    return "not authorized" in body


class InfluxV2Sink:
    """InfluxDB 2.x, 3.x and InfluxDB Cloud through influxdb-client's write API (token
    auth, bucket, org); InfluxQL queries through the v1-compatible `/query` endpoint that
    2.x, 3.x and Cloud all serve. The bytes written are the same line protocol as v1's."""

    name = "influxdb-v2"

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_s: float = 30.0):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket = url.rstrip("/"), org, bucket
        self._check = f"CHROM_INFLUX_TOKEN and its write permission on bucket {bucket!r}"
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._v1 = InfluxV1Client(url, bucket, timeout_s)
        self._v1.headers = {"Authorization": f"Token {token}"}

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def write(self, lines: bytes) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write.write(
                bucket=self.bucket,
                org=self.org,
                record=lines,
                # the library's stubs type this as the class, its values are plain strings
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]
            )
        except ApiException as e:
            if e.status in AUTH_STATUSES:
                raise _auth_problem(e.status, str(e.body), self._check) from e
            if e.status is None or e.status >= 500 or e.status == 429:
                raise SinkUnavailable(f"InfluxDB answered {e.status}: {e.body}") from e
            raise SinkRejected(f"InfluxDB answered {e.status}: {e.body}") from e
        except OSError as e:
            raise SinkUnavailable(f"InfluxDB at {self.url} unreachable: {e}") from e

    def query(self, influxql: str) -> list[dict[str, Any]]:
        return _sink_query(self._v1.query, influxql, self.url, self._check)

    def close(self) -> None:
        self._client.close()


# -- writing durably: retry while down, isolate what InfluxDB refuses -----------------------


class SinkStillDown(RuntimeError):
    """The sink stayed unavailable past the caller's deadline; nothing more was written."""


def write_isolating(sink: InfluxSink, chunk: bytes) -> list[tuple[int, str]]:
    """Write; if InfluxDB refuses the request (4xx), split it to find the lines it refuses,
    so one bad point never costs the good ones next to it. Returns (line, error) of those."""
    try:
        sink.write(chunk)
        return []
    except SinkRejected as e:
        lines = chunk.splitlines(keepends=True)
        if len(lines) == 1:
            return [(0, str(e)[:300])]
        half = len(lines) // 2
        left = write_isolating(sink, b"".join(lines[:half]))
        right = write_isolating(sink, b"".join(lines[half:]))
        return left + [(half + i, err) for i, err in right]


def write_retrying(
    sink: InfluxSink,
    chunks: Sequence[bytes],
    *,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    waiting: Callable[[float], None] | None = None,
    holding: str = "",
) -> list[tuple[int, str]]:
    """Write every chunk in order, retrying each with backoff (0.2 s doubling to 10 s) while
    the sink is unavailable, until `deadline` (time.monotonic; None: forever), then
    `SinkStillDown`. `waiting(seconds)` is called before each pause (the live bridge extends
    its leases there); `holding` says in the outage's log lines what else waits on the write.
    Returns (line number across all chunks, error) for refused lines."""
    refused: list[tuple[int, str]] = []
    offset = 0
    for chunk in chunks:
        refused.extend(
            (offset + i, e) for i, e in _retrying(sink, chunk, deadline, sleep, waiting, holding)
        )
        offset += chunk.count(b"\n")
    return refused


def _retrying(
    sink: InfluxSink,
    chunk: bytes,
    deadline: float | None,
    sleep: Callable[[float], None],
    waiting: Callable[[float], None] | None,
    holding: str,
) -> list[tuple[int, str]]:
    backoff = 0.2
    failures = 0
    t0 = time.monotonic()
    while True:
        try:
            refused = write_isolating(sink, chunk)
            if failures:
                log.info(
                    "InfluxDB took the write after %d failed attempts in %.1f s (%d lines)",
                    failures,
                    time.monotonic() - t0,
                    chunk.count(b"\n"),
                )
            return refused
        except SinkUnavailable as e:
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "InfluxDB unavailable (%s): %d lines held%s; retry %d in %.1f s",
                    str(e)[:200],
                    chunk.count(b"\n"),
                    f", {holding}" if holding else "",
                    failures,
                    backoff,
                )
            if deadline is not None and time.monotonic() + backoff > deadline:
                raise SinkStillDown(str(e)[:300]) from None
            if waiting is not None:
                waiting(backoff)
            sleep(backoff)
            backoff = min(backoff * 2, 10.0)
