"""`make demo`: the platform on one laptop, local profile.

1. backfills a history of batches (some with faults) into the local landing zone,
2. starts a local InfluxDB (the live store),
3. starts `dagster dev` with its daemon, which runs the sensors,
4. prints where to look, and on Ctrl-C stops every process it started (by process group).

`--headless` runs the whole story without the UI: the first build through Dagster, a live
batch from the real `chrom-sim stream` that drifts mid-run, the live bridge and landing
sensors evaluated as the daemon would, live drift read back from InfluxDB, gold catching up
and the drift check failing on the live batch; it prints a JSON summary (`make test` runs it
on a small history). `--stop` stops a demo started elsewhere.
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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chrom_platform.lib.core.contracts import SEQ_EPOCH
from chrom_platform.lib.core.tables import GOLD_BATCH_RESULTS
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.local import procfs
from chrom_platform.local.influx_server import LocalInfluxServer, free_port, port_is_free
from chrom_platform.local.instance import write_instance_config
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
    srv.grant_read(settings.streaming.influx_database)  # creates it; Grafana's user may read it
    return srv


def dagster_env(settings: Settings, srv: LocalInfluxServer) -> dict[str, str]:
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
        "CHROM_INFLUX_URL": srv.url,
        # the server runs with authentication (local/influx_server.py): the consumers and the
        # checks write and read as its admin; Grafana reads as its reader
        "CHROM_INFLUX_USER": srv.admin.username,
        "CHROM_INFLUX_PASSWORD": srv.admin.password,
        "CHROM_INFLUX_DATABASE": settings.streaming.influx_database,
        # The demo plays a batch of simulated time 60x (headless: 10^6 x) faster than the
        # wall clock, so its readings are stamped up to hours ahead of it; a plant's clock
        # is not, and the consumers refuse readings more than 5 minutes ahead by default.
        "CHROM_MAX_CLOCK_AHEAD_S": os.environ.get("CHROM_MAX_CLOCK_AHEAD_S", str(2 * 86_400)),
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


def kill_groups(pgids: list[int], timeout_s: float = 2.0, *, deaf: Sequence[int] = ()) -> None:
    """Stop the process groups together: SIGTERM, then SIGKILL what still runs after
    `timeout_s`. Groups in `deaf` get SIGKILL at once: `dagster dev` started without job
    control ignores SIGTERM and SIGINT (shared/DESIGN.md), so waiting for it only made the
    stop slow (42 s once, one group after another; then a fixed 2 s that a loaded machine
    stretched past 5), and its runs are in the instance, which marks an interrupted one
    failed at its next start. InfluxDB and the stream do stop on SIGTERM, within the grace."""
    for pgid in deaf:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    pgids = [*pgids, *deaf]
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 2.0)):
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for pgid in pgids:
                # a group's leader is often our own child: reap it if so
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pgid, os.WNOHANG)
            pgids = [g for g in pgids if procfs.group_running(g)]
            if not pgids:
                return
            time.sleep(0.05)


def kill_group(pgid: int) -> None:
    kill_groups([pgid])


def stop(settings: Settings) -> None:
    sf = state_file(settings)
    if sf.exists():
        st = json.loads(sf.read_text())
        sf.unlink(missing_ok=True)  # first: the demo's own process sees a stop, not a crash
    else:
        st = {}
    srv = LocalInfluxServer.attach(settings.data_dir / "influxdb")
    # all at once (influxd leads its own group): the stop takes the longest wait, not the sum
    groups = [int(st["stream_pgid"])] if st.get("stream_pgid") else []
    if srv is not None and srv.pid is not None:
        groups.append(srv.pid)
    dagster = [int(st["dagster_pgid"])] if st.get("dagster_pgid") else []
    if groups or dagster:
        log(
            "stopping dagster dev, the live stream and InfluxDB "
            f"(process groups {[*dagster, *groups]})"
        )
        kill_groups(groups, deaf=dagster)
    if srv is not None:
        srv.stop()  # gone by now: forgets its state file


#: the fault the live batch develops mid-run (conductivity of the wrong buffer in a wash)
LIVE_FAULT = "wrong_buffer"


def first_build(settings: Settings, instance: Any) -> dict[str, Any]:
    """landing -> bronze -> silver -> gold -> analytics through Dagster, with progress."""
    from chrom_platform.build import build_everything, build_log, check_outcomes, failed_steps

    log(
        "building landing -> bronze -> silver -> gold -> analytics through Dagster "
        f"(its log: {build_log(settings)}) ..."
    )
    t0 = time.monotonic()
    result = build_everything(settings, instance, log_file=build_log(settings))
    if not result.success:
        raise RuntimeError(f"the build failed in steps {failed_steps(result)}")
    checks = check_outcomes(result)
    log(
        f"built in {time.monotonic() - t0:.0f} s: {len(result.get_asset_materialization_events())} "
        f"materializations, {len(checks['passed'])} checks passed, {len(checks['failed'])} failed"
    )
    return {"seconds": round(time.monotonic() - t0, 1), "checks": checks}


def stream_live_batch(
    settings: Settings, batch_index: int, seed: int, speed: float
) -> subprocess.Popen[bytes]:
    """The next batch of the first unit, developing a fault mid-run, published by the real
    `chrom-sim stream` (its own process, as a plant gateway would be) to the local queue."""
    argv = [
        sys.executable,
        "-m",
        "simulator.cli",
        "stream",
        "--units=1",
        "--batches-per-unit=1",
        f"--first-batch={batch_index}",
        f"--seed={seed}",
        "--fault-rate=1",
        f"--fault-kinds={LIVE_FAULT}",
        "--start=now",
        f"--speed={speed}",
        f"--landing={settings.landing_uri}",
        f"--truth={settings.truth_dir / 'live'}",
        "--publisher=queue",
        f"--publish-to={settings.streaming.transport_uri}",
    ]
    return subprocess.Popen(
        argv, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, start_new_session=True
    )


def _tick(defs: Any, instance: Any, name: str, log_file: Path) -> None:
    """One evaluation of a sensor, its asset events reported, as the daemon does (its log
    goes to `log_file`)."""
    import dagster as dg

    from chrom_platform.build import output_to

    sensor = defs.resolve_sensor_def(name)
    with (
        output_to(log_file),
        dg.build_sensor_context(instance=instance, resources=defs.resources) as ctx,
    ):
        result = sensor(ctx)
    for ev in (result.asset_events if isinstance(result, dg.SensorResult) else None) or []:
        instance.report_runless_asset_event(ev)


def headless(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The whole story without the UI, to the end: history, first build, a live batch that
    drifts, live drift in InfluxDB, gold catching up and the drift check failing on it."""
    import dagster as dg

    from chrom_platform.build import build_everything, build_log, check_outcomes
    from chrom_platform.definitions import defs as lazy_defs

    summary: dict[str, Any] = ensure_history(settings, args.units, args.batches_per_unit, args.seed)
    srv = start_influx(settings)
    try:
        env = dagster_env(settings, srv)
        os.environ.update(env)
        settings = Settings.from_env()
        defs = lazy_defs()
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            summary["first_build"] = first_build(settings, instance)
            log(f"streaming a live batch on {_first_unit(settings)} that develops a fault ...")
            stream = stream_live_batch(settings, args.batches_per_unit, args.seed, speed=1e6)
            if stream.wait(timeout=300) != 0:
                raise RuntimeError("chrom-sim stream failed")
            # what the daemon's sensors do: the live bridge, then the landing consumer
            _tick(defs, instance, "live_bridge_sensor", build_log(settings))
            _tick(defs, instance, "landing_sensor", build_log(settings))
            live = live_story(settings)
            log(
                f"live: {live['points']:,} points in InfluxDB; drift alarm on {live['batch_id']} "
                f"at batch CV {live['first_alarm_batch_cv']} ({', '.join(live['signals'])})"
            )
            log("gold catches up (incremental build) ...")
            second = build_everything(settings, instance, log_file=build_log(settings))
            drift = next(
                e
                for e in second.get_asset_check_evaluations()
                if e.check_name == "latest_batches_in_envelope"
            )
            drifting: list[dict[str, Any]] = drift.metadata["drifting"].value  # type: ignore[assignment]
            flagged = sorted({str(d["batch_id"]) for d in drifting})
        summary.update(
            influx_url=srv.url,
            assets=sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()),
            batches_in_gold=_batches_in_gold(settings),
            live=live,
            second_build={"success": second.success, "checks": check_outcomes(second)},
            drift_check={"passed": drift.passed, "batches": flagged},
        )
        log(
            f"done: {summary['batches_in_gold']} batches in gold; the drift check "
            f"{'passed' if drift.passed else 'FAILED'} on {', '.join(flagged) or 'no batch'}"
        )
    finally:
        if not args.keep_influx:
            srv.stop()
    return summary


def _first_unit(settings: Settings) -> str:
    return next(iter(settings.streaming.master_data().units))


def live_story(settings: Settings) -> dict[str, Any]:
    """What the live dashboards show of the live batch: points, and the first drift alarm."""
    sink = settings.streaming.sink()
    (n,) = sink.query('SELECT count("seq") FROM "chromatography"')[0]["values"][0][1:]
    alarms = sink.query(
        'SELECT "batch_cv", "out_ph", "out_uv_mau", "out_cond_ms_cm", "out_pressure_bar", '
        '"out_flow_lpm" FROM "drift" WHERE "alarm" = 1 GROUP BY "batch_id" LIMIT 1'
    )
    if not alarms:
        return {"points": int(n), "batch_id": None, "first_alarm_batch_cv": None, "signals": []}
    row = dict(zip(alarms[0]["columns"], alarms[0]["values"][0], strict=True))
    return {
        "points": int(n),
        "batch_id": alarms[0]["tags"]["batch_id"],
        "first_alarm_batch_cv": round(float(row["batch_cv"]), 2),
        "signals": [k.removeprefix("out_") for k, v in row.items() if k.startswith("out_") and v],
    }


def _batches_in_gold(settings: Settings) -> int:
    with settings.warehouse.connect(read_only=True) as wh:
        return int(wh.query(f"select count(*) as n from {GOLD_BATCH_RESULTS}")[0]["n"])


def run(settings: Settings, args: argparse.Namespace) -> int:
    import dagster as dg

    ensure_history(settings, args.units, args.batches_per_unit, args.seed)
    srv = start_influx(settings)
    env = dagster_env(settings, srv)
    # the first build runs here, before the UI, on the instance the UI then shows: it opens
    # on a built graph (a second demo on the same data builds only what changed)
    built = Settings.from_env(env)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        first_build(built, instance)
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
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out.close()
    state: dict[str, Any] = {"dagster_pgid": proc.pid, "influx_pid": srv.pid, "port": port}
    state_file(settings).write_text(json.dumps(state))
    stream: subprocess.Popen[bytes] | None = None

    def shutdown(*_: Any) -> None:
        log("stopping ...")
        # all at once, InfluxDB too (it leads its own group): the longest wait, not the sum
        groups = [*([stream.pid] if stream is not None else []), *([srv.pid] if srv.pid else [])]
        kill_groups(groups, deaf=[proc.pid])
        srv.stop()  # gone by now: forgets its state file
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
    unit = _first_unit(built)
    stream = stream_live_batch(built, args.batches_per_unit, args.seed, speed=args.speed)
    state["stream_pgid"] = stream.pid
    state_file(settings).write_text(json.dumps(state))
    log(f"""ready.
  Dagster UI     http://127.0.0.1:{port}/asset-groups
                 landing -> bronze -> silver -> gold -> analytics are built; open the asset
                 `analytics/batch_overlay` for the latest batch over its golden envelope,
                 and the checks of `gold/gold_batch_drift` and `gold/gold_column_performance`
  Live batch     a new batch on {unit} streams now at {args.speed:g}x real time and develops a
                 `{LIVE_FAULT}` fault mid-run. Watch:
                 - `live/influx_drift`: live_bridge_sensor writes it every 5 s; the drift
                   alarm (measurement `drift`, alarm = 1) comes a few minutes in;
                 - when the batch ends and lands, gold and the analytics rebuild by
                   automation, and the check `latest_batches_in_envelope` fails naming it
  InfluxDB 1.x   {srv.url}  database '{settings.streaming.influx_database}', with authentication:
                 users and passwords in {srv.credentials_file}
                 ({srv.reader.username} reads: give it to Grafana)
  Landing zone   {settings.landing_uri}
  Ground truth   {settings.truth_dir}  (what the simulator injected; detection never reads it)
  Grafana        provision infra/grafana/provisioning/local/ in your Grafana, or import
                 infra/grafana/dashboards/local/*.json (README: Dashboards and alerts)
Ctrl-C (or `make demo-stop`) stops everything this demo started.""")
    while True:
        if not state_file(settings).exists():  # `make demo-stop` stopped the rest
            if stream is not None:
                kill_group(stream.pid)
            proc.wait()
            log("stopped by `make demo-stop`: no demo process left running")
            return 0
        if proc.poll() is not None:
            log(f"dagster dev exited with {proc.returncode}; see {logs / 'dagster.log'}")
            srv.stop()
            return 1
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m chrom_platform.local.demo",
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
    ap.add_argument(
        "--speed", type=float, default=60.0, help="pace of the live batch (x real time)"
    )
    ap.add_argument("--keep-influx", action="store_true", help="headless: leave InfluxDB running")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.stop:
        stop(settings)
        return 0
    # The terminal is the demo's own progress: the Snowflake connector's vendored requests
    # warns about urllib3's version when first imported (here, and in every dbt process the
    # builds start), so import it here quietly and tell the children to ignore it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import snowflake.connector.vendored.requests  # noqa: F401
    os.environ.setdefault("PYTHONWARNINGS", "ignore:urllib3")
    if args.headless:
        print(json.dumps(headless(settings, args), indent=2))
        return 0
    return run(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
