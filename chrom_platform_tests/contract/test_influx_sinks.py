"""Both InfluxDB sinks receive the same line protocol from the one bridge code path: the
v1 sink against the real local InfluxDB 1.6.7, the v2 sink (influxdb-client, for InfluxDB
2.x/3.x/Cloud) against a recording HTTP stand-in for the v2 write API, since no 2.x server
installs here."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from chrom_platform.lib.io.influx import Credentials, InfluxV1Sink, InfluxV2Sink
from chrom_platform.lib.io.transport import OutMessage, ensure_readings_topology
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import HEALTH_MEASUREMENT, LiveBridge
from chrom_platform_tests.e2e.streaming_helpers import fresh_database
from chrom_platform_tests.unit.test_readings_decoder import msg

S = 1_000_000_000


class Recorder(BaseHTTPRequestHandler):
    writes: ClassVar[list[tuple[str, dict[str, list[str]], dict[str, str], bytes]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/ping"):
            self._reply(204)
        else:
            self._reply(404)

    def do_POST(self) -> None:
        url = urllib.parse.urlparse(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if url.path == "/api/v2/write":
            Recorder.writes.append(
                (url.path, urllib.parse.parse_qs(url.query), dict(self.headers), body)
            )
            self._reply(204)
        elif url.path == "/query":  # v1-compatible InfluxQL: an empty database
            self._reply(200, json.dumps({"results": [{"statement_id": 0}]}).encode())
        else:
            self._reply(404)


@pytest.fixture
def v2_server():
    Recorder.writes = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


class RecordingV1Sink(InfluxV1Sink):
    def __init__(self, url: str, database: str, credentials: Credentials) -> None:
        super().__init__(url, database, credentials=credentials)
        self.bodies: list[bytes] = []

    def write(self, lines: bytes) -> None:
        super().write(lines)
        self.bodies.append(lines)


def _queue(tmp_path, name: str) -> SqliteQueue:
    q = SqliteQueue(tmp_path / f"{name}.db")
    ensure_readings_topology(q)
    q.publish(
        "chrom-readings",
        [
            OutMessage(
                msg(seq=100 + i, ts=1_772_431_200 * S + i * S, phase="Wash 1"), {}, "SKID-01"
            )
            for i in range(120)
        ],
    )
    return q


def test_v1_and_v2_sinks_get_identical_line_protocol(md, influx_server, v2_server, tmp_path):
    v1 = RecordingV1Sink(
        influx_server.url, fresh_database(influx_server).database, influx_server.admin
    )
    LiveBridge(_queue(tmp_path, "a"), v1, md).drain(1000, 30)
    v2 = InfluxV2Sink(v2_server, token="test-token", org="acme", bucket="chrom")
    rep = LiveBridge(_queue(tmp_path, "b"), v2, md).drain(1000, 30)
    assert rep.written == 120
    # the data writes; each drain also reports the bridge's health in a write of its own
    data = [w for w in Recorder.writes if not w[3].startswith(HEALTH_MEASUREMENT.encode())]
    ((_path, params, headers, body),) = data
    assert body == b"".join(b for b in v1.bodies if not b.startswith(HEALTH_MEASUREMENT.encode()))
    assert len(Recorder.writes) == 2
    assert params["bucket"] == ["chrom"]
    assert params["org"] == ["acme"]
    assert params["precision"] == ["ns"]
    assert headers["Authorization"] == "Token test-token"
    # and what v1 accepted reads back: escaped tag values survive the round trip
    (series,) = v1.query('SELECT count("seq") FROM "chromatography" GROUP BY "phase"')
    assert series["tags"]["phase"] == "Wash 1"
    assert series["values"][0][1] == 120
