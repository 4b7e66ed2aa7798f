"""How long `make demo` takes a newcomer: a fresh clone, an empty package cache, and (with
`--remove-system-packages`, as root) no uv, InfluxDB or Chromium, to the moment the demo
prints that the Dagster UI is ready; then Ctrl-C, and a check that nothing is left running.

`make bench-demo` runs it and writes the `demo` section of docs/benchmarks.md. It is not
part of `make bench` because the full form uninstalls system packages (bootstrap puts them
back). Every wheel comes from PyPI and every Debian package from the mirror, so the figure
includes this machine's download speed from those registries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from chrom_platform.local import procfs
from chrom_platform_tests.bench.report import machine, write_section

REPO = Path(__file__).resolve().parents[1]
#: what the demo prints at each milestone, in order
MILESTONES = {
    "setup done (uv, Python packages, InfluxDB, Chromium, dbt parse)": "[demo] backfilling",
    "history landed": "[demo] landed",
    "first build through Dagster done": "[demo] built in",
    "UI ready": "[demo] ready.",
}


def _remove_system_packages() -> None:
    if os.geteuid() != 0:
        raise SystemExit("--remove-system-packages needs root (apt-get remove)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "remove", "-y", "-qq", "influxdb", "chromium"],
        env=env,
        check=True,
        capture_output=True,
    )
    # bootstrap installs uv with pip (into the Python it is given) when it is not there
    python = os.environ.get("PYTHON") or shutil.which("python3") or "python3"
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "uv"], check=False)


def _left_running(clone: Path) -> list[str]:
    """Live processes whose command line mentions the clone (the demo's and its children)."""
    return [
        f"{pid}: {cmd[:120]}"
        for pid in procfs.pids()
        if (cmd := procfs.cmdline(pid)) is not None and str(clone) in cmd and procfs.alive(pid)
    ]


@dataclass
class DemoRun:
    #: seconds from `make demo` to each milestone seen
    milestones: dict[str, float]
    #: seconds from Ctrl-C until `make demo` exited
    stop_s: float
    said_stopped: bool
    left_running: list[str]


def run(remove_system_packages: bool, linger_s: float) -> DemoRun:
    if remove_system_packages:
        _remove_system_packages()
    work = Path(tempfile.mkdtemp(prefix="chrom-fresh-demo-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "CHROM_"))}
    env["UV_CACHE_DIR"] = str(work / "uv-cache")  # empty: every wheel from PyPI
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # one process group, as a terminal would have
    )
    assert proc.stdout is not None
    seen: dict[str, float] = {}
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            for name, marker in MILESTONES.items():
                if name not in seen and line.startswith(marker):
                    seen[name] = time.monotonic() - t0
                    print(f"  {seen[name]:6.1f} s  {name}", flush=True)
                    if name == "UI ready":
                        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(timeout=900):
        os.killpg(proc.pid, signal.SIGINT)
        raise SystemExit("demo did not get ready in 15 minutes:\n" + "".join(log[-40:]))
    time.sleep(linger_s)  # the live batch starts streaming; then the user presses Ctrl-C
    t_stop = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    stop_s = time.monotonic() - t_stop
    reader.join(timeout=5)
    left = _left_running(clone)
    return DemoRun(
        milestones=seen,
        stop_s=stop_s,
        said_stopped=any(line.startswith("[demo] stopped:") for line in log),
        left_running=left,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--remove-system-packages",
        action="store_true",
        help="uninstall uv, influxdb and chromium first (root), as on a fresh machine",
    )
    ap.add_argument("--linger", type=float, default=20.0, help="seconds before Ctrl-C")
    args = ap.parse_args()
    print("fresh-clone demo: make demo until the UI is ready ...", flush=True)
    r = run(args.remove_system_packages, args.linger)
    ms = r.milestones
    rows = "\n".join(f"| {name} | {ms[name]:.0f} s |" for name in MILESTONES if name in ms)
    ready_s = ms["UI ready"]
    fresh = (
        "no uv, InfluxDB or Chromium installed (uninstalled first), an empty uv cache"
        if args.remove_system_packages
        else "an empty uv cache (uv, InfluxDB and Chromium already installed)"
    )
    body = f"""
## Demo: a fresh clone to a ready UI

Measured {dt.date.today().isoformat()} on: {machine()}. `make bench-demo`
(chrom_platform_tests/bench/fresh_demo.py): a fresh `git clone`, {fresh}; wheels from PyPI
and Debian packages from the mirror, so download speed is part of the figure. Time from
`make demo` to each line the demo prints:

| milestone | since `make demo` |
|---|---:|
{rows}

- Ready UI in **{ready_s:.0f} s** (target under 5 minutes:
  {"meets" if ready_s < 300 else "**MISSES**"}).
- Ctrl-C after {args.linger:.0f} s of the live batch: everything stopped in
  {r.stop_s:.1f} s ({"the demo said so" if r.said_stopped else "**the demo did not say so**"}),
  and a scan of /proc found {len(r.left_running)} processes of it left running.
"""
    write_section("demo", body)
    print(f"ready in {ready_s:.1f} s; left running: {r.left_running}")
    return 0 if not r.left_running and r.said_stopped else 1


if __name__ == "__main__":
    raise SystemExit(main())
