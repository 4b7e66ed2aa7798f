"""Streaming benchmarks (part of `make bench`): the live bridge from the local queue to a
real local InfluxDB, against a one-point-per-request writer in the same run, and the
end-to-end latency from a reading's timestamp to queryable in InfluxDB."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from chrom_platform.lib.core.contracts import READING_SCHEMA
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.influx import InfluxV1Sink, line_protocol
from chrom_platform.lib.io.transport import (
    LIVE_BRIDGE_SUBSCRIPTION,
    READINGS_TOPIC,
    OutMessage,
    ensure_readings_topology,
)
from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
from chrom_platform.lib.streaming.bridge import LiveBridge
from chrom_platform.lib.streaming.readings import ReadingDecoder
from chrom_platform.local import procfs
from chrom_platform.local.influx_server import LocalInfluxServer
from simulator.batch import plan_batch, simulate
from simulator.landing import DEFAULT_START_NS

S = 1_000_000_000


def _messages(md: MasterData, units: int, batches: int) -> list[OutMessage]:
    out: list[OutMessage] = []
    for ui, unit_id in enumerate(list(md.units)[:units]):
        unit = md.units[unit_id]
        start = DEFAULT_START_NS
        for b in range(batches):
            plan = plan_batch(
                unit=unit,
                resin=md.resins[unit.resin],
                recipe=next(iter(md.recipes.values())),
                unit_index=ui,
                batch_index=b,
                earliest_start_ns=start,
                seed=3,
                fault_rate=0.0,
            )
            sim = simulate(plan)
            start = int(sim.ts_ns[-1]) + 60 * S
            out.extend(OutMessage(orjson.dumps(m), {}, unit_id) for m in sim.messages())
    return out


def _queue(tmp: Path, msgs: list[OutMessage]) -> SqliteQueue:
    q = SqliteQueue(tmp / "queue.db")
    ensure_readings_topology(q)
    for i in range(0, len(msgs), 20_000):
        q.publish(READINGS_TOPIC, msgs[i : i + 20_000])
    return q


def per_point_writer(q: SqliteQueue, sink: InfluxV1Sink, md: MasterData, limit: int) -> float:
    """The original Cloud Run consumer's pattern: one HTTP write per reading (and its ack),
    same decoding; no CV (which only makes the baseline faster). Returns readings/s."""
    dec = ReadingDecoder(md)
    done = 0
    t0 = time.perf_counter()
    while done < limit:
        msgs = q.pull(LIVE_BRIDGE_SUBSCRIPTION, 100)
        if not msgs:
            break
        for m in msgs:
            r, _ = dec.decode([m.data])
            if len(r):
                sink.write(
                    line_protocol(
                        "chromatography_per_point",
                        {"unit_id": r.unit_id, "batch_id": r.batch_id, "phase": r.phase},
                        dict(r.signals),
                        r.ts_ns,
                    )
                )
            q.ack(LIVE_BRIDGE_SUBSCRIPTION, [m.ack_id])
            done += 1
    return done / (time.perf_counter() - t0)


def latency(
    md: MasterData, srv: LocalInfluxServer, tmp: Path, seconds: float, units: int, rate_hz: float
) -> dict[str, Any]:
    """Continuous mode: a publisher sends readings stamped `now` for `units` units at
    `rate_hz` each; `LiveBridge.serve` runs as `chrom-bridge` does. Latency = the moment
    InfluxDB acknowledged the write (after which 1.x answers queries with the point) minus
    the reading's timestamp; a poller confirms points are queryable at that moment."""
    q = SqliteQueue(tmp / "latency.db")
    ensure_readings_topology(q)
    sink = InfluxV1Sink(srv.url, "latency", credentials=srv.admin)
    sink.ensure_database()
    bridge = LiveBridge(SqliteQueue(tmp / "latency.db"), sink, md, batch_size=5000)
    stop = threading.Event()
    lags: list[float] = []
    bridge_thread = threading.Thread(
        target=lambda: bridge.serve(
            stop.is_set, idle_sleep_s=0.01, on_report=lambda r: lags.extend(r.lag_s)
        )
    )
    bridge_thread.start()
    unit_ids = list(md.units)[:units]
    recipe = next(iter(md.recipes.values()))
    phase = recipe.phase_names()[1]
    seq0 = 10**9
    t_end = time.monotonic() + seconds
    n = 0
    period = 1.0 / rate_hz
    probes: list[float] = []
    while time.monotonic() < t_end:
        now = time.time_ns()
        q.publish(
            READINGS_TOPIC,
            [
                OutMessage(
                    orjson.dumps(
                        {
                            "schema": READING_SCHEMA,
                            "unit_id": u,
                            "batch_id": f"{u}-LAT",
                            "recipe": recipe.recipe,
                            "phase": phase,
                            "ts": now,
                            "seq": seq0 + n,
                            "flow_lpm": 40.0,
                            "pressure_bar": 1.0,
                            "uv_mau": 100.0,
                            "cond_ms_cm": 15.0,
                            "ph": 7.0,
                        }
                    ),
                    {},
                    u,
                )
                for u in unit_ids
            ],
        )
        if n % 10 == 0:  # probe: how long until this very point answers a query
            while True:
                got = sink.query(
                    f'SELECT count("seq") FROM chromatography WHERE "seq" = {seq0 + n}'
                )
                if got and got[0]["values"][0][1] == units:
                    probes.append((time.time_ns() - now) / 1e9)
                    break
                if time.time_ns() - now > 10 * S:
                    break
                time.sleep(0.002)
        n += 1
        time.sleep(max(0.0, period - (time.time_ns() - now) / 1e9))
    time.sleep(0.5)
    stop.set()
    bridge_thread.join()
    arr = np.asarray(lags)
    return {
        "readings": int(arr.size),
        "p50_s": float(np.percentile(arr, 50)),
        "p95_s": float(np.percentile(arr, 95)),
        "max_s": float(arr.max()),
        "probe_p50_s": statistics.median(probes) if probes else float("nan"),
        "probe_p95_s": float(np.percentile(probes, 95)) if probes else float("nan"),
        "probes": len(probes),
        "rate_per_s": units * rate_hz,
    }


def cpu_probe_s() -> float:
    """Seconds for a fixed pure-Python loop (10 million additions): how fast this shared
    virtual machine runs right now, reported beside the throughput."""
    t0 = time.perf_counter()
    x = 0
    for i in range(10_000_000):
        x += i
    return time.perf_counter() - t0


def bridge_lines(md: MasterData, msgs: list[OutMessage], batch: int = 5000) -> list[bytes]:
    """The line protocol the bridge writes for `msgs`, made by the bridge's own code
    (decode, CV integration, line protocol) in its batch size, ahead of time."""
    bridge = LiveBridge(None, None, md)  # type: ignore[arg-type]  # computes only
    bridge.state = {}
    out: list[bytes] = []
    for a in range(0, len(msgs), batch):
        readings, _ = bridge.decoder.decode([m.data for m in msgs[a : a + batch]])
        applied = bridge._apply(readings)
        bridge.state = applied.state
        out.extend(applied.lines)
    return out


def influx_ceiling(srv: LocalInfluxServer, chunks: list[bytes], database: str) -> dict[str, float]:
    """InfluxDB's own ingest ceiling here: the bridge's lines, prepared in memory, written
    by one writer as fast as InfluxDB takes them (the same request size as the bridge's).
    Nothing the bridge does can beat it; its fraction says what the bridge costs."""
    client = srv.client(database)
    client.create_database()
    n = sum(c.count(b"\n") for c in chunks)
    assert srv.pid is not None
    cpu0 = procfs.cpu_seconds(srv.pid), procfs.cpu_seconds(os.getpid())
    t0 = time.perf_counter()
    for c in chunks:
        client.write_lines(c)
    took = time.perf_counter() - t0
    influx_cpu = procfs.cpu_seconds(srv.pid) - cpu0[0]
    writer_cpu = procfs.cpu_seconds(os.getpid()) - cpu0[1]
    (count,) = client.query('SELECT count("seq") FROM "chromatography"')
    assert count["values"][0][1] == n
    return {
        "ceiling_per_s": n / took,
        "ceiling_influx_cpu_us": influx_cpu / n * 1e6,
        "ceiling_writer_cpu_us": writer_cpu / n * 1e6,
    }


def _drain_round(
    md: MasterData, srv: LocalInfluxServer, q: SqliteQueue, database: str, n_msgs: int
) -> dict[str, float]:
    """One throughput round: a fresh bridge drains a pre-published queue into a fresh
    database; every point is counted in InfluxDB afterwards."""
    sink = InfluxV1Sink(srv.url, database, credentials=srv.admin)
    sink.ensure_database()
    bridge = LiveBridge(q, sink, md)
    # warm-up (first-call costs such as pyarrow's lazy imports), then steady state
    warm = bridge.drain(5000, 60).written
    influx_pid = srv.pid
    assert influx_pid is not None  # started by the caller
    cpu0 = procfs.cpu_seconds(influx_pid), procfs.cpu_seconds(os.getpid())
    t0 = time.perf_counter()
    rep = bridge.drain(10**9, 3600)
    bridge_s = time.perf_counter() - t0
    influx_cpu_s = procfs.cpu_seconds(influx_pid) - cpu0[0]
    bridge_cpu_s = procfs.cpu_seconds(os.getpid()) - cpu0[1]
    assert warm + rep.written == n_msgs, (warm, rep.written, n_msgs)
    (count,) = sink.query('SELECT count("seq") FROM "chromatography"')
    assert count["values"][0][1] == n_msgs
    return {
        "readings": rep.written,
        "bridge_s": bridge_s,
        "bridge_per_s": rep.written / bridge_s,
        # CPU per reading (all threads of the bridge; the InfluxDB server process): on 2
        # cores, their sum bounds the throughput whatever the pipelining
        "bridge_cpu_us": bridge_cpu_s / rep.written * 1e6,
        "influx_cpu_us": influx_cpu_s / rep.written * 1e6,
    }


def bench_streaming(
    md: MasterData, units: int, batches: int, baseline_n: int, rounds: int = 3
) -> dict[str, Any]:
    """Throughput as the median of `rounds` drains (this shared machine's speed moves by
    tens of percent from minute to minute), the per-point baseline and latency."""
    with tempfile.TemporaryDirectory(prefix="chrom-bench-stream-") as d:
        tmp = Path(d)
        srv = LocalInfluxServer(tmp / "influx").start()
        try:
            msgs = _messages(md, units, batches)
            queues = []
            for i in range(rounds):
                (tmp / f"round{i}").mkdir()
                queues.append(_queue(tmp / f"round{i}", msgs))
            chunks = bridge_lines(md, msgs)
            # The publisher is another process in real use: drop its messages from this
            # heap, or every full garbage collection in the bridge walks them too.
            n_msgs, baseline_msgs = len(msgs), msgs[:baseline_n]
            del msgs
            gc.collect()
            probe_before = cpu_probe_s()
            # each bridge round right after a ceiling round: the two see the same machine
            ceilings, runs = [], []
            for i, q in enumerate(queues):
                ceilings.append(influx_ceiling(srv, chunks, f"ceiling{i}"))
                runs.append(_drain_round(md, srv, q, f"bench{i}", n_msgs))
            del chunks
            probe_after = cpu_probe_s()
            sink = InfluxV1Sink(srv.url, "baseline", credentials=srv.admin)
            sink.ensure_database()
            (tmp / "baseline").mkdir(exist_ok=True)
            q2 = _queue(tmp / "baseline", baseline_msgs)
            per_point = per_point_writer(q2, sink, md, baseline_n)
            lat = latency(md, srv, tmp, seconds=20.0, units=6, rate_hz=10.0)
            with urllib.request.urlopen(f"{srv.url}/ping") as resp:
                version = resp.headers.get("X-Influxdb-Version", "unknown")
        finally:
            srv.stop()
    median = sorted(runs, key=lambda r: r["bridge_per_s"])[len(runs) // 2]
    ceiling = sorted(ceilings, key=lambda r: r["ceiling_per_s"])[len(ceilings) // 2]
    return {
        **median,
        **ceiling,
        "rounds": [r["bridge_per_s"] for r in runs],
        "ceiling_rounds": [c["ceiling_per_s"] for c in ceilings],
        # per pair (a ceiling round, then its bridge round), then the median of the pairs
        "fraction_rounds": [
            r["bridge_per_s"] / c["ceiling_per_s"] for r, c in zip(runs, ceilings, strict=True)
        ],
        "cpu_probe_s": (probe_before, probe_after),
        "per_point_per_s": per_point,
        "baseline_n": baseline_n,
        "latency": lat,
        "influx_version": version,
    }
