"""Whether a process still runs, as the local InfluxDB's stop and the demo's stop ask it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from chrom_platform.local import procfs

# A child whose main thread exits while another thread still works: what influxd (Go) looks
# like while it stops. Its /proc state is already "Z"; signal 0 still reaches it.
_LEADER_EXITS_FIRST = r"""
import ctypes, threading, time
threading.Thread(target=lambda: time.sleep(1.0)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


@pytest.mark.skipif(not procfs.HAS_PROC, reason="reads /proc")
def test_a_child_whose_main_thread_exited_is_alive_until_it_can_be_reaped() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _LEADER_EXITS_FIRST], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 5
    while (procfs.stat_fields(proc.pid) or ["?"])[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (procfs.stat_fields(proc.pid) or ["?"])[0] == "Z", "the main thread never exited"
    assert procfs.alive(proc.pid), "a zombie leader with a live thread is still running"
    while procfs.alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procfs.alive(proc.pid)
    with pytest.raises(ProcessLookupError):  # reaped: gone, as the InfluxDB stop test expects
        os.kill(proc.pid, 0)
