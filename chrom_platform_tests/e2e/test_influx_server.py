"""The local InfluxDB helper against the real server."""

from __future__ import annotations

import os

import pytest

from chrom_platform.lib.io.influx import InfluxError, InfluxV1Client
from chrom_platform.local.influx_server import LocalInfluxServer, ping


def test_write_and_query_back(influx_server):
    c = influx_server.client("t_write")
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
    c = influx_server.client("t_bad")
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


def test_authentication_admits_its_users_and_nothing_else(influx_server):
    """Loopback is no boundary: the server refuses anonymous queries and writes, and
    Grafana's user may read what it was granted and nothing more (issue 18: an injected
    `DROP MEASUREMENT` reached an unauthenticated server through a dashboard query)."""
    admin = influx_server.client("t_auth")
    admin.create_database()
    admin.write_lines(b"chromatography,unit_id=U1 ph=7.0 1700000000000000000")
    anonymous = InfluxV1Client(influx_server.url, "t_auth")
    for attempt in (
        lambda: anonymous.query('SELECT * FROM "chromatography"'),
        lambda: anonymous.write_lines(b"chromatography,unit_id=U1 ph=1.0 1700000000000000001"),
        lambda: anonymous.query('DROP MEASUREMENT "chromatography"'),
    ):
        with pytest.raises(InfluxError) as e:
            attempt()
        assert e.value.status == 401
    reader = InfluxV1Client(influx_server.url, "t_auth", credentials=influx_server.reader)
    with pytest.raises(InfluxError):  # not granted yet
        reader.query('SELECT count("ph") FROM "chromatography"')
    influx_server.grant_read("t_auth")
    assert reader.query('SELECT count("ph") FROM "chromatography"')[0]["values"][0][1] == 1
    with pytest.raises(InfluxError) as e:
        reader.query('DROP MEASUREMENT "chromatography"')
    assert "not authorized" in str(e.value) or e.value.status == 403
    with pytest.raises(InfluxError):
        reader.write_lines(b"chromatography,unit_id=U1 ph=1.0 1700000000000000002")
    assert admin.query('SELECT count("ph") FROM "chromatography"')[0]["values"][0][1] == 1
    # the passwords were generated here and are readable by their owner only
    assert oct(influx_server.credentials_file.stat().st_mode & 0o777) == "0o600"


def test_the_server_listens_on_loopback_only_and_its_files_are_private(tmp_path):
    """What reaches the local InfluxDB: HTTP (authenticated) and the 1.x backup/restore RPC
    port (no authentication, cannot be turned off: README "Security notes"), both on
    127.0.0.1 and nothing else. Its files, the user store (meta.db) included, are its
    owner's only: another local user cannot copy the password hashes or the shards."""
    srv = LocalInfluxServer(data_dir=tmp_path / "influx").start()
    try:
        c = srv.client("t_private")
        c.create_database()
        c.write_lines(b"chromatography,unit_id=U1 ph=7.0 1700000000000000000")
        assert srv.listening() == {("127.0.0.1", srv.http_port), ("127.0.0.1", srv.rpc_port)}
        assert oct(srv.data_dir.stat().st_mode & 0o777) == "0o700"
        leaky = [
            (str(p), oct(p.stat().st_mode & 0o777))
            for p in srv.data_dir.rglob("*")
            if p.stat().st_mode & 0o077
        ]
        assert not leaky, leaky
        assert (srv.data_dir / "meta" / "meta.db").exists()
    finally:
        srv.stop()
