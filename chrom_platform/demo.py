"""`make demo`: the platform on one laptop, local profile.

1. backfills a history of batches (some with faults) into the local landing zone,
2. starts a local InfluxDB (the live store),
3. starts `dagster dev` with its daemon, which runs the sensors,
4. prints where to look, and on Ctrl-C stops every process it started (by process group).

`--headless` runs the same steps without the UI, evaluates the sensors once in-process and
prints a summary (used by the tests). `--stop` stops a demo started elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from chrom_platform.lib.contracts import SEQ_EPOCH
from chrom_platform.lib.influx import InfluxV1Client
from chrom_platform.lib.influx_server import LocalInfluxServer, free_port, port_is_free
from chrom_platform.lib.instance import write_instance_config
from chrom_platform.lib.objectstore import open_store
from chrom_platform.settings import PROJECT_ROOT, Settings

DAY_NS = 86_400 * 1_000_000_000


def log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def ensure_history(settings: Settings, units: int, batches: int, seed: int) -> dict[str, Any]:
    """Backfill a history ending about now, unless the landing zone already has one."""
    from simulator.landing import backfill

    store = open_store(settings.landing_uri)
    if any(True for _ in store.list("landing/readings")):
        log(f"landing zone already has history: {settings.landing_uri}")
        return {"backfilled": False}
    now_ns = time.time_ns()
    start_ns = max(
        int(SEQ_EPOCH.timestamp()) * 10**9, (now_ns - (batches + 2) * DAY_NS) // DAY_NS * DAY_NS
    )
    log(f"backfilling {units} units x {batches} batches into {settings.landing_uri} ...")
    res = backfill(
        landing=settings.landing_uri,
        truth_dir=settings.truth_dir,
        units=units,
        batches_per_unit=batches,
        seed=seed,
        fault_rate=0.15,
        start_ns=start_ns,
        workers=min(units, os.cpu_count() or 1),
        progress=True,
    )
    faults = sum(1 for t in res.truth if t["fault"])
    log(
        f"landed {res.readings:,} readings from {res.batches} batches ({faults} with faults) "
        f"in {res.seconds:.1f} s; ground truth in {settings.truth_dir}"
    )
    return {
        "backfilled": True,
        "batches": res.batches,
        "readings": res.readings,
        "faulty_batches": faults,
    }


def start_influx(settings: Settings) -> LocalInfluxServer:
    data = settings.data_dir / "influxdb"
    srv = LocalInfluxServer.attach(data)
    if srv is None:
        port = 8086 if port_is_free(8086) else free_port()
        srv = LocalInfluxServer(data_dir=data, http_port=port).start()
        log(f"InfluxDB 1.x started on {srv.url} (data in {data})")
    else:
        log(f"InfluxDB already running on {srv.url}")
    InfluxV1Client(srv.url, settings.influx_database).create_database()
    return srv


def dagster_env(settings: Settings, influx_url: str) -> dict[str, str]:
    home = settings.data_dir / "dagster_home"
    write_instance_config(home)
    return {
        **os.environ,
        # the venv's tools (dbt: `dagster dev` re-parses the dbt project on load) whether or
        # not the venv is activated
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "CHROM_PROFILE": settings.profile,
        "CHROM_DATA_DIR": str(settings.data_dir),
        "CHROM_LANDING_URI": settings.landing_uri,
        "CHROM_INFLUX_URL": influx_url,
        "CHROM_INFLUX_DATABASE": settings.influx_database,
    }


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


def state_file(settings: Settings) -> Path:
    return settings.data_dir / "demo.json"


def kill_group(pgid: int, timeout_s: float = 20.0) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop(settings: Settings) -> None:
    sf = state_file(settings)
    if sf.exists():
        st = json.loads(sf.read_text())
        if st.get("dagster_pgid"):
            log(f"stopping dagster dev (process group {st['dagster_pgid']})")
            kill_group(int(st["dagster_pgid"]))
        sf.unlink(missing_ok=True)
    srv = LocalInfluxServer.attach(settings.data_dir / "influxdb")
    if srv is not None:
        log(f"stopping InfluxDB (pid {srv.pid})")
        srv.stop()


def headless(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The story without the UI: evaluate the sensors once in-process and summarize."""
    import dagster as dg

    from chrom_platform.definitions import defs as lazy_defs

    summary: dict[str, Any] = ensure_history(settings, args.units, args.batches_per_unit, args.seed)
    srv = start_influx(settings)
    try:
        os.environ.update(dagster_env(settings, srv.url))
        defs = lazy_defs()
        with dg.instance_for_test() as instance:
            sensor = defs.resolve_sensor_def("landing_sensor")
            with dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx:
                result = sensor(ctx)
            assert isinstance(result, dg.SensorResult)
            for ev in result.asset_events or []:
                instance.report_runless_asset_event(ev)
            reported = {
                "/".join(ev.asset_key.path): ev.metadata["objects"].value
                for ev in (result.asset_events or [])
            }
        summary.update(
            influx_url=srv.url,
            influx_ping=True,
            assets=sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()),
            landing_objects=reported,
        )
    finally:
        if not args.keep_influx:
            srv.stop()
    return summary


def run(settings: Settings, args: argparse.Namespace) -> int:
    ensure_history(settings, args.units, args.batches_per_unit, args.seed)
    srv = start_influx(settings)
    port = args.port if args.port and port_is_free(args.port) else free_port()
    if args.port and port != args.port:
        log(f"port {args.port} is taken; the Dagster UI uses {port}")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "dagster.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=dagster_env(settings, srv.url),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out.close()
    state_file(settings).write_text(
        json.dumps({"dagster_pgid": proc.pid, "influx_pid": srv.pid, "port": port})
    )

    def shutdown(*_: Any) -> None:
        log("stopping ...")
        kill_group(proc.pid)
        srv.stop()
        state_file(settings).unlink(missing_ok=True)
        log("stopped: no demo process left running")
        sys.exit(0)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    log(f"starting dagster dev (log: {logs / 'dagster.log'}) ...")
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", 180, proc)
    except RuntimeError as e:
        log(f"Dagster did not start: {e}; see {logs / 'dagster.log'}")
        shutdown()
    log(f"""ready.
  Dagster UI     http://127.0.0.1:{port}/asset-groups  (group 'landing': readings, batch events,
                 sample results, master data; the landing_sensor reports new objects every 30 s)
  InfluxDB 1.x   {srv.url}  database '{settings.influx_database}'
  Landing zone   {settings.landing_uri}
  Ground truth   {settings.truth_dir}  (what the simulator injected; detection never reads it)
  Grafana        provision infra/grafana/provisioning/local/ in your Grafana, or import
                 infra/grafana/dashboards/local/*.json (README: Dashboards and alerts)
Ctrl-C (or `make demo-stop`) stops everything this demo started.""")
    while True:
        if proc.poll() is not None:
            log(f"dagster dev exited with {proc.returncode}; see {logs / 'dagster.log'}")
            srv.stop()
            return 1
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m chrom_platform.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--headless", action="store_true", help="run the story without the UI and print a summary"
    )
    ap.add_argument("--stop", action="store_true", help="stop a running demo")
    ap.add_argument("--units", type=int, default=3)
    ap.add_argument("--batches-per-unit", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--keep-influx", action="store_true", help="headless: leave InfluxDB running")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.stop:
        stop(settings)
        return 0
    if args.headless:
        print(json.dumps(headless(settings, args), indent=2))
        return 0
    return run(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
