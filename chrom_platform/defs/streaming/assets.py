"""The live store as an asset: InfluxDB's `chromatography` measurement, fed by the live
bridge. Dagster does not compute it, so it is an external asset (AssetSpec) whose
materializations are reported by the sensor that drives the bridge; its freshness check
fails when a running unit has sent no point within the configured window.
"""

from __future__ import annotations

import json
import time
from typing import Any

import dagster as dg

from chrom_platform.defs.conventions import (
    LIVE_DRIFT_KEY,
    LIVE_KEY,
    LIVE_MSPC_KEY,
    asset_key,
    running_sensor,
)
from chrom_platform.lib.core.tables import GOLD_GOLDEN_ENVELOPE, GOLD_MSPC_MODELS
from chrom_platform.lib.streaming.config import StreamingConfig
from chrom_platform.lib.streaming.live_health import LiveFreshness, check_live_freshness
from chrom_platform.resources import LandingStoreResource

FRESH_CHECK = "live_points_fresh"

#: Work per sensor tick: well inside Dagster's 60 s sensor timeout.
TICK_MAX_MESSAGES = 200_000
TICK_MAX_SECONDS = 20.0

LIVE_ASSET = dg.AssetSpec(
    LIVE_KEY,
    description=(
        "Live 1 Hz readings in InfluxDB (measurement `chromatography`, tags unit_id, "
        "batch_id, recipe, phase; fields the five signals, batch_cv, phase_cv, volume_l, "
        "seq), written by the live bridge from the `live-bridge` subscription with column "
        "volumes integrated as the readings arrive. This is what the live dashboards read."
    ),
    group_name="live",
    kinds={"influxdb"},
)
LIVE_DRIFT_ASSET = dg.AssetSpec(
    LIVE_DRIFT_KEY,
    description=(
        "Live drift in InfluxDB (measurement `drift`, same tags as the readings; fields "
        "z_<signal> and out_<signal> per signal, n_out, alarm, batch_cv): every live reading "
        "compared with the golden envelope by the live bridge, in the same write as the "
        "reading, so dashboards and alerts see drift within seconds. `alarm` = 1 once a "
        "signal has been outside for 10 readings running."
    ),
    group_name="live",
    kinds={"influxdb"},
    deps=[asset_key(GOLD_GOLDEN_ENVELOPE), LIVE_KEY],
)
LIVE_MSPC_ASSET = dg.AssetSpec(
    LIVE_MSPC_KEY,
    description=(
        "Live multivariate scores in InfluxDB (measurement `mspc`, same tags as the "
        "readings; fields t2_ratio, spe_ratio, ratio, out, alarm, batch_cv and share_<signal> "
        "per signal): every CV bin a running batch finishes, scored by the live bridge against "
        "its unit and recipe's multiway PCA model, in the same write as the readings. "
        "`alarm` = 1 once T2 or an SPE has been over its limit for the model's persistence."
    ),
    group_name="live",
    kinds={"influxdb"},
    deps=[asset_key(GOLD_MSPC_MODELS), LIVE_KEY],
)
#: Re-report an unchanged freshness result at most this often (the tick runs every 5 s).
FRESH_REPORT_EVERY_S = 60.0


def _freshness_outcome(result: LiveFreshness) -> dict[str, Any]:
    """What the check says, whether the sensor reports it or a run executes it."""
    return {
        "passed": result.passed,
        "severity": dg.AssetCheckSeverity.ERROR,
        "description": result.describe(),
        "metadata": {
            "window_s": result.window_s,
            "running_units": dg.MetadataValue.json(result.running),
            "newest_point_age_s": dg.MetadataValue.json(result.age_s),
            "stale_units": dg.MetadataValue.json(result.stale),
        },
    }


def freshness_evaluation(result: LiveFreshness) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=LIVE_KEY, check_name=FRESH_CHECK, **_freshness_outcome(result)
    )


@dg.asset_check(
    asset=LIVE_KEY,
    name=FRESH_CHECK,
    description="Every unit running a batch has a live point within the window "
    "(CHROM_LIVE_STALE_AFTER_S, default 120 s). The live bridge sensor reports it every "
    "minute and whenever it changes; it can also be run from here.",
)
def live_points_fresh(
    landing: LandingStoreResource, streaming: dg.ResourceParam[StreamingConfig]
) -> dg.AssetCheckResult:
    res = check_live_freshness(landing.store(), streaming.sink(), streaming.live_stale_after_s)
    return dg.AssetCheckResult(**_freshness_outcome(res))


@running_sensor(every_s=5)
def live_bridge_sensor(
    context: dg.SensorEvaluationContext,
    landing: LandingStoreResource,
    streaming: dg.ResourceParam[StreamingConfig],
) -> dg.SensorResult:
    """Drains the live-bridge subscription into InfluxDB (bounded work per tick) and
    reports the live asset and its freshness check."""
    cfg = streaming
    cursor = json.loads(context.cursor) if context.cursor else {}
    # sink, envelope and model sources and master data last across ticks; the queue and
    # where each unit stands are read again (another bridge may have moved them)
    bridge = cfg.lasting().bridge()
    sink = bridge.sink
    # the live drift persistence counts carry over from tick to tick in the cursor
    bridge.out_runs = cursor.get("out_runs", {})
    bridge.mspc_running = cursor.get("mspc_running", {})
    try:
        rep = bridge.drain(TICK_MAX_MESSAGES, TICK_MAX_SECONDS)
    finally:
        bridge.transport.close()
    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    summary = rep.summary()
    if rep.drift_points:
        events.append(
            dg.AssetMaterialization(
                asset_key=LIVE_DRIFT_KEY,
                description=f"{rep.drift_points:,} live drift points written to InfluxDB",
                metadata={
                    "drift_points": rep.drift_points,
                    "readings_in_persistent_drift": rep.drift_alarms,
                    "units": dg.MetadataValue.json(summary["units"]),
                },
            )
        )
    if rep.mspc_points:
        events.append(
            dg.AssetMaterialization(
                asset_key=LIVE_MSPC_KEY,
                description=f"{rep.mspc_points:,} live multivariate points written to InfluxDB",
                metadata={
                    "mspc_points": rep.mspc_points,
                    "bins_in_persistent_alarm": rep.mspc_alarms,
                    "units": dg.MetadataValue.json(summary["units"]),
                },
            )
        )
    if rep.written or rep.dead_lettered:
        events.append(
            dg.AssetMaterialization(
                asset_key=LIVE_KEY,
                description=f"{rep.written:,} points written to InfluxDB",
                metadata={
                    "points_written": rep.written,
                    "dead_lettered": summary["dead_lettered"],
                    "dead_lettered_by_reason": dg.MetadataValue.json(
                        summary["dead_lettered_by_reason"]
                    ),
                    "lag_p50_s": summary["lag_p50_s"],
                    "lag_max_s": summary["lag_max_s"],
                    "units": dg.MetadataValue.json(summary["units"]),
                    "sink": f"{sink.name} {cfg.influx_url}/{cfg.influx_database}",
                },
            )
        )
    cursor["out_runs"] = bridge.out_runs
    cursor["mspc_running"] = bridge.mspc_running
    if rep.sink_down:
        context.log.warning(f"InfluxDB at {cfg.influx_url} is not answering; nothing pulled")
    else:
        fresh = check_live_freshness(landing.store(), sink, streaming.live_stale_after_s)
        now = time.time()
        if (
            fresh.passed != cursor.get("passed")
            or now - cursor.get("at", 0) >= FRESH_REPORT_EVERY_S
        ):
            events.append(freshness_evaluation(fresh))
            cursor.update(passed=fresh.passed, at=now)
    if not events:
        return dg.SensorResult(skip_reason="no new readings", cursor=json.dumps(cursor))
    return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor))
