"""The local InfluxDB helper against the real server."""

from __future__ import annotations

import os

import pytest

from chrom_platform.lib.influx import InfluxError, InfluxV1Client
from chrom_platform.lib.influx_server import LocalInfluxServer, ping

pytestmark = pytest.mark.e2e


def test_write_and_query_back(influx_server):
    c = InfluxV1Client(influx_server.url, "t_write")
    c.create_database()
    lines = b"\n".join(
        f"chromatography,unit_id=U1,batch_id=B1,recipe=R,phase=Load flow_lpm={i}.5,ph=7.0 {1_700_000_000_000_000_000 + i * 10**9}".encode()
        for i in range(5000)
    )
    c.write_lines(lines)
    c.write_lines(lines)  # identical re-write: same series + timestamps, no duplicates
    series = c.query(
        "SELECT count(flow_lpm), sum(flow_lpm) FROM chromatography WHERE unit_id = 'U1'"
    )
    count, total = series[0]["values"][0][1:]
    assert count == 5000
    assert total == pytest.approx(sum(i + 0.5 for i in range(5000)))


def test_bad_line_protocol_is_a_clear_error(influx_server):
    c = InfluxV1Client(influx_server.url, "t_bad")
    c.create_database()
    with pytest.raises(InfluxError) as e:
        c.write_lines(b"chromatography flow_lpm=notanumber 1")
    assert e.value.status == 400


def test_start_stop_leaves_nothing_running(tmp_path):
    srv = LocalInfluxServer(data_dir=tmp_path / "influx").start()
    pid, url = srv.pid, srv.url
    assert ping(url)
    assert LocalInfluxServer.attach(tmp_path / "influx").pid == pid
    srv.stop()
    assert not ping(url)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert LocalInfluxServer.attach(tmp_path / "influx") is None


def test_port_taken_is_reported(influx_server, tmp_path):
    with pytest.raises(RuntimeError, match="already taken"):
        LocalInfluxServer(data_dir=tmp_path / "x", http_port=influx_server.http_port).start()
