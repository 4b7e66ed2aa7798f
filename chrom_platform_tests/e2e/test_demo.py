"""`make demo` as a user runs it: headless story, and the real UI with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from chrom_platform.local import procfs
from chrom_platform.settings import PROJECT_ROOT


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROM_", "DAGSTER_"))}
    env["CHROM_DATA_DIR"] = str(data_dir)
    return env


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True
    ).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    found, frontier = set(), {pid}
    while frontier:
        nxt = {p for p, pp, _ in rows if pp in frontier} - found
        found |= nxt
        frontier = nxt
    return found


def test_headless_demo_tells_the_whole_story(tmp_path):
    """History, first build, a live batch that drifts mid-run, live drift in InfluxDB, gold
    catching up, and the drift check failing on exactly the live batch."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "chrom_platform.local.demo",
            "--headless",
            "--units",
            "2",
            "--batches-per-unit",
            "12",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert r.returncode == 0, r.stderr[-4000:] + r.stdout[-4000:]
    progress, _, summary_text = r.stdout.partition("\n{")
    summary = json.loads("{" + summary_text)
    # the terminal is the demo's own progress and summary; Dagster's and dbt's logs (and
    # any library's warnings) go to the build log it names
    assert [x for x in progress.splitlines() if not x.startswith("[demo] ")] == []
    noise = re.compile(r"dagster - |DEBUG|STEP_|RUN_|Running with dbt|Warning")
    assert [x for x in r.stderr.splitlines() if noise.search(x)] == []
    assert "Running with dbt=" in (tmp_path / "logs" / "build.log").read_text()
    assert summary["backfilled"]
    assert summary["batches"] == 24
    # progress is visible, not silence
    assert "building landing -> bronze -> silver -> gold -> analytics" in r.stdout
    assert summary["first_build"]["checks"]["passed"]
    # the live batch: next on the first unit, in InfluxDB with its drift alarm
    live = summary["live"]
    assert live["batch_id"] == "SKID-01-B00013"
    assert live["points"] > 10_000
    assert "cond_ms_cm" in live["signals"]
    assert live["first_alarm_batch_cv"] > 0
    # gold caught up (the live batch is in it) and the drift check names the live batch
    assert summary["batches_in_gold"] == 25
    assert summary["second_build"]["success"]
    assert summary["drift_check"] == {"passed": False, "batches": [live["batch_id"]]}
    assert "gold/gold_batch_drift" in summary["assets"]
    assert "dashboards/live_run" in summary["assets"]
    # InfluxDB was stopped at the end of the headless run
    assert not (tmp_path / "influxdb" / "server.json").exists()


def test_demo_serves_the_dagster_ui_and_ctrl_c_stops_everything(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chrom_platform.local.demo",
            "--units",
            "2",
            "--batches-per-unit",
            "2",
            "--port",
            "0",
        ],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT_ROOT,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if "ready." in line:
                break
        assert any("ready." in x for x in lines), "".join(lines)
        state = json.loads((tmp_path / "demo.json").read_text())
        q = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{state['port']}/graphql",
            data=q,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            nodes = json.loads(resp.read())["data"]["assetNodes"]
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} >= {
            "landing/readings",
            "landing/batch_events",
            "landing/sample_results",
            "landing/master_data",
        }
        children = _descendants(proc.pid)
        assert len(children) >= 3  # dagster dev, its webserver/daemon, influxd
    finally:
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - t0
        lines.append(out)
    assert proc.returncode == 0, "".join(lines)
    assert stopped_in < 5, f"Ctrl-C took {stopped_in:.1f} s"
    assert "no demo process left running" in "".join(lines)
    time.sleep(0.5)
    left = {p: (procfs.cmdline(p) or "?")[:200] for p in children if procfs.alive(p)}
    assert not left, f"left running: {left}"


def test_make_demo_stop_ends_everything_within_5_s(tmp_path):
    """`make demo-stop` from another shell took 42 s: it waited 20 s for each process group,
    for `dagster dev` (which ignores SIGTERM when started without job control) and for
    group leaders that had exited but stayed zombies of the demo's own process, which only
    it can reap. Here: a group that ignores SIGTERM and SIGINT (as that dagster dev), a group
    whose leader is a zombie (another process's exited child, as the live stream), and the
    demo's real InfluxDB, a child of this process (a zombie once stopped from elsewhere)."""
    from chrom_platform.local.influx_server import LocalInfluxServer

    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "time.sleep(600)",
        ],
        start_new_session=True,
    )
    # a parent that never reaps its child: the child, a group leader, exits at once
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'pass'], start_new_session=True)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    zombie_leader = int(parent.stdout.readline())
    srv = LocalInfluxServer(data_dir=tmp_path / "influxdb").start()
    (tmp_path / "demo.json").write_text(
        json.dumps({"dagster_pgid": stubborn.pid, "stream_pgid": zombie_leader, "port": 1})
    )
    try:
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "chrom_platform.local.demo", "--stop"],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=PROJECT_ROOT,
        )
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert took < 5, f"make demo-stop took {took:.1f} s"
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert not procfs.alive(srv.pid)  # stopped (a zombie of this process until reaped)
        assert not (tmp_path / "influxdb" / "server.json").exists()
        assert not (tmp_path / "demo.json").exists()
    finally:
        for p in (stubborn, parent):
            p.kill()
            p.wait()
        srv.stop()
