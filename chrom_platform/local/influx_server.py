"""A local InfluxDB 1.x server for the demo and the tests.

Starts Debian's `influxd` with a generated config: data in a folder we own, HTTP and RPC
bound to 127.0.0.1 on free ports, no usage reporting, authentication on. Waits for `/ping`;
stops by PID (SIGTERM, then SIGKILL). The server runs in its own process group so that an
interrupt aimed at the caller's group does not kill it mid-write.

Exposure: HTTP (authenticated) and InfluxDB 1.x's backup/restore RPC port, both on
127.0.0.1 only. The RPC port has no authentication and no switch to turn it off in 1.x
(influxdata/influxdb#7639, #9974: wontfix): any local user can back up the data and the
user store through it. README "Security notes" says so; `listening()` shows what is open.
The data folder is 0700 and influxd runs with umask 077, so its files are private.

Authentication: loopback is no boundary (any process of any user on the machine reaches
it), and an unauthenticated InfluxDB executes whatever InfluxQL it is sent, DROP included.
On its first start the server gets two users with passwords generated here, kept in
`credentials.json` beside its data (mode 0600, never committed): `chrom_admin` (all
privileges: the live bridge, the demo, the tests) and `chrom_reader` (READ on the databases
granted to it: Grafana). A dashboard query can then read, and nothing more.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chrom_platform.lib.io.influx import Credentials, InfluxV1Client, ping
from chrom_platform.local import procfs

ADMIN_USER, READER_USER = "chrom_admin", "chrom_reader"

CONFIG_TEMPLATE = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data}/meta"
  logging-enabled = false

[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  log-enabled = false
  max-body-size = 0

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""


def _private(path: Path) -> Path:
    """`path`, created if need be, readable and writable by its owner only (before anything
    is written to it)."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    return path


class InfluxNotInstalled(RuntimeError):
    pass


def find_influxd() -> str:
    path = shutil.which("influxd") or (
        "/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None
    )
    if not path:
        raise InfluxNotInstalled(
            "influxd not found. Install InfluxDB 1.x with: sudo apt-get install influxdb "
            "(make setup does this when run as root)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nobody listens on the port. SO_REUSEADDR as servers use it, so connections of a
    stopped server lingering in TIME_WAIT do not count as taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalInfluxServer:
    data_dir: Path
    http_port: int = 0
    rpc_port: int = 0
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    def _credentials(self) -> dict[str, Credentials]:
        raw = json.loads(self.credentials_file.read_text())
        return {role: Credentials(**raw[role]) for role in ("admin", "reader")}

    @property
    def admin(self) -> Credentials:
        """The user with all privileges (the live bridge, the demo, the tests)."""
        return self._credentials()["admin"]

    @property
    def reader(self) -> Credentials:
        """The read-only user (Grafana); see `grant_read`."""
        return self._credentials()["reader"]

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) the running server listens on (from /proc)."""
        if self.pid is None:
            return set()
        return procfs.listening(self.pid)

    def client(self, database: str) -> InfluxV1Client:
        return InfluxV1Client(self.url, database, credentials=self.admin)

    def grant_read(self, database: str) -> None:
        """Create `database` if needed and let the reader read it."""
        c = self.client(database)
        c.create_database()
        c.query(f'GRANT READ ON "{database}" TO "{READER_USER}"')

    def _ensure_users(self) -> None:
        """First start of a data folder: generate the passwords and create the users.
        InfluxDB 1.x lets the first admin be created without credentials, and only then."""
        if self.credentials_file.exists():
            return
        creds = {
            "admin": {"username": ADMIN_USER, "password": secrets.token_urlsafe(24)},
            "reader": {"username": READER_USER, "password": secrets.token_urlsafe(24)},
        }
        tmp = self.credentials_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(creds))
        tmp.chmod(0o600)
        anonymous = InfluxV1Client(self.url, "")
        anonymous.query(
            f"CREATE USER \"{ADMIN_USER}\" WITH PASSWORD '{creds['admin']['password']}'"
            " WITH ALL PRIVILEGES"
        )
        admin = InfluxV1Client(self.url, "", credentials=Credentials(**creds["admin"]))
        admin.query(f"CREATE USER \"{READER_USER}\" WITH PASSWORD '{creds['reader']['password']}'")
        tmp.replace(self.credentials_file)

    def start(self, timeout_s: float = 30.0) -> LocalInfluxServer:
        binary = find_influxd()
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Private to its owner: InfluxDB writes meta.db (users and password hashes) and the
        # shards 0644; in a 0700 folder no other local user can read or copy them.
        self.data_dir.chmod(0o700)
        self.http_port = self.http_port or free_port()
        self.rpc_port = self.rpc_port or free_port()
        for label, port in (("HTTP", self.http_port), ("RPC", self.rpc_port)):
            if not port_is_free(port):
                raise RuntimeError(f"InfluxDB {label} port {port} on 127.0.0.1 is already taken")
        conf = self.data_dir / "influxdb.conf"
        _private(conf).write_text(
            CONFIG_TEMPLATE.format(
                data=self.data_dir, http_port=self.http_port, rpc_port=self.rpc_port
            )
        )
        log = _private(self.data_dir / "influxd.log").open("ab")  # closed once the child has it
        proc = subprocess.Popen(
            [binary, "-config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=0o077,  # what influxd creates is its owner's only
        )
        log.close()
        self.pid = proc.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.data_dir / "influxd.log").read_text()[-2000:]
                raise RuntimeError(f"influxd exited with {proc.returncode}:\n{tail}")
            if ping(self.url):
                self._ensure_users()
                _private(self.state_file).write_text(
                    json.dumps(
                        {"pid": self.pid, "http_port": self.http_port, "rpc_port": self.rpc_port}
                    )
                )
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"influxd did not answer /ping on {self.url} within {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if not _alive(self.pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = None
        self.state_file.unlink(missing_ok=True)

    @classmethod
    def attach(cls, data_dir: Path) -> LocalInfluxServer | None:
        """The server a previous start left running in `data_dir`, if it still answers."""
        state = data_dir / "server.json"
        if not state.exists():
            return None
        info = json.loads(state.read_text())
        srv = cls(
            data_dir=data_dir,
            http_port=info["http_port"],
            rpc_port=info["rpc_port"],
            pid=info["pid"],
        )
        if _alive(srv.pid) and ping(srv.url):
            return srv
        state.unlink(missing_ok=True)
        return None


def _alive(pid: int | None) -> bool:
    return pid is not None and procfs.alive(pid)
