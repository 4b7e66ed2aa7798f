"""Analytics benchmark: the analytics step on a large history (full, then after one new
batch), and what live drift adds to the bridge per reading (compute and InfluxDB write),
each against a baseline measured in the same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from chrom_platform.lib.analytics import pipeline
from chrom_platform.lib.analytics.envelope import DEFAULT_FLOOR, EnvelopeParams
from chrom_platform.lib.analytics.live import ENVELOPE_KEY, EnvelopeSource, envelope_bytes
from chrom_platform.lib.core.tables import GOLD_BATCH_RESULTS, GOLD_GOLDEN_ENVELOPE
from chrom_platform.lib.io.influx import InfluxV1Sink
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.lib.io.warehouse import WarehouseConfig
from chrom_platform.lib.streaming.bridge import LiveBridge
from chrom_platform.local.influx_server import LocalInfluxServer
from chrom_platform_tests.warehouse_helpers import History


def _run(h: History) -> tuple[float, pipeline.AnalyticsResult]:
    cfg = WarehouseConfig("local", str(h.duckdb_path), str(h.lake))
    t0 = time.perf_counter()
    with cfg.connect(read_only=False) as wh:
        res = pipeline.run(wh)
        env = wh.query_arrow(f"select * from {GOLD_GOLDEN_ENVELOPE}")
    open_store(str(h.lake)).put(ENVELOPE_KEY, envelope_bytes(env))
    return time.perf_counter() - t0, res


def analytics_full(h: History) -> dict[str, Any]:
    seconds, res = _run(h)
    return {"full_s": seconds, "batches": res.batches, "summary_full": res.summary()}


def analytics_incremental(h: History) -> dict[str, Any]:
    seconds, res = _run(h)
    return {
        "incremental_s": seconds,
        "analysed": res.analysed,
        "summary_incremental": res.summary(),
    }


class _NoTransport:
    """The bridge's compute path only: nothing is pulled or acked here."""


def live_drift(h: History, repeats: int = 5) -> dict[str, Any]:
    """Per reading: the bridge's work on one batch of messages (decode, CV, line protocol)
    with and without live drift, and the InfluxDB write of the lines each produces."""
    sim = h.sims[-1]
    payloads = [orjson.dumps(m) for m in sim.messages()]
    p = EnvelopeParams()
    base = LiveBridge(_NoTransport(), _NoTransport(), h.md)  # type: ignore[arg-type]
    drift = LiveBridge(
        _NoTransport(),  # type: ignore[arg-type]
        _NoTransport(),  # type: ignore[arg-type]
        h.md,
        envelope=EnvelopeSource(open_store(str(h.lake)), p.z_limit, p.bin_width_cv),
    )
    assert drift.drift is not None
    assert drift.drift.source.get() is not None

    t_base, t_drift, base_lines, drift_lines, n_drift = _with_and_without(
        base, drift, payloads, repeats
    )
    n = len(payloads)
    out: dict[str, Any] = {
        "readings": n,
        "drift_points": n_drift,
        "compute_base_us": t_base / n * 1e6,
        "compute_drift_us": t_drift / n * 1e6,
    }
    out.update(_write_us({"base": base_lines, "drift": drift_lines}, n, repeats))
    return out


def _bridge_work(b: LiveBridge, payloads: list[bytes]) -> tuple[float, list[bytes], int]:
    """The bridge's compute path on one batch of messages (decode, CV, line protocol, and
    the live drift or multivariate points it is set up for), from a fresh state: seconds,
    lines, and the points the scoring added."""
    b.state = {}
    if b.mspc is not None:
        b.mspc.running = {}
    t0 = time.perf_counter()
    readings, _ = b.decoder.decode(payloads)
    a = b._apply(readings)
    lines, points = a.lines, 0
    for scorer in (b.drift, b.mspc):
        if scorer is not None:
            extra = scorer.lines(a.readings, a.phase_cv, a.batch_cv)
            lines, points = [*lines, *extra.chunks], points + extra.points
    return time.perf_counter() - t0, lines, points


def _with_and_without(
    base: LiveBridge, other: LiveBridge, payloads: list[bytes], repeats: int
) -> tuple[float, float, list[bytes], list[bytes], int]:
    """Median seconds of each bridge's work, then the lines each writes and the points
    `other` adds."""
    t_base = statistics.median(_bridge_work(base, payloads)[0] for _ in range(repeats))
    t_other = statistics.median(_bridge_work(other, payloads)[0] for _ in range(repeats))
    _, base_lines, _ = _bridge_work(base, payloads)
    _, other_lines, points = _bridge_work(other, payloads)
    return t_base, t_other, base_lines, other_lines, points


def _write_us(lines: dict[str, list[bytes]], n: int, repeats: int) -> dict[str, float]:
    """Per reading: the median time a local InfluxDB takes to accept each set of lines."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="chrom-bench-live-") as tmp:
        srv = LocalInfluxServer(Path(tmp) / "influx").start()
        try:
            for name, chunks in lines.items():
                times = []
                for i in range(repeats):
                    sink = InfluxV1Sink(srv.url, f"bench_{name}_{i}", credentials=srv.admin)
                    sink.ensure_database()
                    t0 = time.perf_counter()
                    for c in chunks:
                        sink.write(c)
                    times.append(time.perf_counter() - t0)
                out[f"write_{name}_us"] = statistics.median(times) / n * 1e6
        finally:
            srv.stop()
    return out


def live_mspc(h: History, repeats: int = 5) -> dict[str, Any]:
    """Per reading: the bridge's work on one batch of messages with and without live
    multivariate scoring (its unit's model fitted on the history before it, exported as the
    asset exports it), and the InfluxDB write of the points it adds."""
    from chrom_platform.lib.analytics import mspc
    from chrom_platform.lib.analytics.live_mspc import MODEL_KEY, model_source
    from chrom_platform.lib.analytics.mspc_run import models_bytes

    sim = h.sims[-1]
    cfg = WarehouseConfig("local", str(h.duckdb_path), str(h.lake))
    t0 = time.perf_counter()
    with cfg.connect(read_only=True) as wh:
        batches = wh.query(
            f"select batch_id, unit_id, recipe from {GOLD_BATCH_RESULTS} "
            "where unit_id = ? order by started_at",
            [sim.plan.unit.unit_id],
        )
        group = next(
            g
            for g in pipeline.binned_groups(wh, batches, pipeline.recipe_phases(wh))
            if g.unit_id == sim.plan.unit.unit_id
        )
    ids = [b for b in group.batch_ids if b != sim.plan.batch_id]
    ref = [group.batch_ids.index(b) for b in ids[-40:]]
    t1 = time.perf_counter()
    model = mspc.fit(group, ref, mspc.MspcParams(), DEFAULT_FLOOR)
    fit_s = time.perf_counter() - t1
    assert model is not None
    open_store(str(h.lake)).put(MODEL_KEY, models_bytes([model]))
    read_s = t1 - t0
    payloads = [orjson.dumps(m) for m in sim.messages()]
    base = LiveBridge(_NoTransport(), _NoTransport(), h.md)  # type: ignore[arg-type]
    scored = LiveBridge(
        _NoTransport(),  # type: ignore[arg-type]
        _NoTransport(),  # type: ignore[arg-type]
        h.md,
        models=model_source(open_store(str(h.lake)), EnvelopeParams().bin_width_cv),
    )
    assert scored.mspc is not None

    t_base, t_mspc, base_lines, mspc_lines, points = _with_and_without(
        base, scored, payloads, repeats
    )
    n = len(payloads)
    out: dict[str, Any] = {
        "readings": n,
        "mspc_points": points,
        "bins": len(model.keys),
        "components": model.components,
        "reference_batches": len(ref),
        "fit_s": fit_s,
        "read_binned_s": read_s,
        "compute_base_us": t_base / n * 1e6,
        "compute_mspc_us": t_mspc / n * 1e6,
    }
    out.update(_write_us({"base": base_lines, "mspc": mspc_lines}, n, repeats))
    return out
