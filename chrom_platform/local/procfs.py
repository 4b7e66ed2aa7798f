"""Reading /proc: whether a process or process group still runs (a zombie does not: signal 0
still reaches it, but only its parent can reap it, and `make demo-stop` is not that parent),
its command line and CPU time. For the demo's stop, the local InfluxDB, and the tests and
benchmarks that watch other processes. Where there is no /proc, signal 0 is all there is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3, the state, first); None if gone.
    Split after the last ')' because the command name may hold spaces and parentheses."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


HAS_PROC = Path("/proc/self/stat").exists()


def alive(pid: int) -> bool:
    """Running or sleeping: present and not a zombie waiting to be reaped. A child of ours
    that exited is reaped here (also when it exits between the two looks). A child whose
    main thread has exited while its other threads still wind down (a Go server such as
    influxd stopping) shows as a zombie but cannot be reaped yet: it is still alive."""
    if _reap(pid):
        return False
    if not HAS_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    fields = stat_fields(pid)
    if fields is None:
        return False
    if fields[0] == "Z":
        # ours and not yet reapable: exiting; reaped now, or another's zombie: gone
        return _reap(pid) is False
    return True


def _reap(pid: int) -> bool | None:
    """Reap `pid` if it is an exited child of ours: True when reaped now, False when it is
    our child and not (yet) reapable, None when it is not our child."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return None


def group_running(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not count)."""
    if not HAS_PROC:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for pid in pids():
        fields = stat_fields(pid)
        # after "(comm)": state, ppid, pgrp, ...
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def cmdline(pid: int) -> str | None:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids() -> Iterator[int]:
    return (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP sockets a process listens on, as (address, port): its socket inodes matched
    against /proc/net/tcp and tcp6 (state 0A = LISTEN). What reaches a local server is what
    it listens on; a test asserts it instead of trusting the config file."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    out = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            addr_hex, port_hex = f[1].split(":")
            out.add((_address(addr_hex, width), int(port_hex, 16)))
    return out


def _address(hex_addr: str, width: int) -> str:
    """/proc/net/tcp's little-endian hex address as text (IPv4, or IPv6 in 4-byte words)."""
    import ipaddress

    raw = bytes.fromhex(hex_addr)
    if width == 8:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))
