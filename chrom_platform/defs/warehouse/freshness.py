"""Freshness of silver and gold against the landing zone, and the automation that keeps them
fresh.

A warehouse asset is fresh when it has caught up with the newest landing data (readings or
batch events), or when that data landed less than the allowed lag ago (15 minutes unless
CHROM_WAREHOUSE_MAX_LAG_MIN says otherwise). A quiet plant (nothing landing) never makes
gold stale; a stuck dbt run does. The sensor evaluates the checks every minute from the
instance's materialization records; the same checks can be run from the UI.

Why not `dg.FreshnessPolicy` (Dagster 1.12+): its policies, `time_window` and `cron`, judge
the time since an asset's last materialization. What we mean is lag behind the newest
*upstream data*: a plant that runs no batch over a weekend must not turn gold stale, and a
time window long enough to allow that would hide a stuck build for days. A policy cannot
see the landing zone, so this stays a check the sensor evaluates (and the UI can run).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from chrom_platform.defs.conventions import asset_key, landing, running_sensor
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BY_CV,
    SILVER_READINGS_CHECKED,
)
from chrom_platform.lib.io.warehouse import WarehouseConfig

#: What silver and gold must keep up with.
LANDING_KEYS = [landing("readings"), landing("batch_events")]
#: The warehouse assets whose freshness is checked.
FRESH_KEYS = [
    asset_key(SILVER_READINGS_CHECKED),
    asset_key(GOLD_TREND_BY_CV),
    asset_key(GOLD_PHASE_SUMMARY),
    asset_key(GOLD_BATCH_RESULTS),
]
CHECK_NAME = "behind_landing"


@dataclass(frozen=True)
class Lag:
    passed: bool
    lag_s: float
    landing_at: float | None
    asset_at: float | None
    max_lag_s: float

    def describe(self) -> str:
        if self.landing_at is None:
            return "nothing has landed yet"
        if self.asset_at is not None and self.asset_at >= self.landing_at:
            return "caught up with the newest landing data"
        verdict = "within" if self.passed else "beyond"
        return (
            f"newest landing data is {self.lag_s / 60:.1f} min old and not yet built "
            f"({verdict} the {self.max_lag_s / 60:.0f} min allowed)"
        )


def lag_behind_landing(
    landing_at: float | None, asset_at: float | None, now: float, max_lag_s: float
) -> Lag:
    """How far an asset is behind the newest landing data (timestamps in seconds)."""
    if landing_at is None or (asset_at is not None and asset_at >= landing_at):
        return Lag(True, 0.0, landing_at, asset_at, max_lag_s)
    lag = max(0.0, now - landing_at)
    return Lag(lag <= max_lag_s, lag, landing_at, asset_at, max_lag_s)


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return event.timestamp if event else None


def evaluate(
    instance: dg.DagsterInstance, max_lag_s: float, now: float | None = None
) -> dict[dg.AssetKey, Lag]:
    now = time.time() if now is None else now
    landing = [t for t in (_latest(instance, k) for k in LANDING_KEYS) if t is not None]
    landing_at = max(landing) if landing else None
    return {
        key: lag_behind_landing(landing_at, _latest(instance, key), now, max_lag_s)
        for key in FRESH_KEYS
    }


def _outcome(lag: Lag) -> dict:
    return {
        "passed": lag.passed,
        "severity": dg.AssetCheckSeverity.WARN,
        "description": lag.describe(),
        "metadata": {
            "lag_minutes": round(lag.lag_s / 60, 2),
            "max_lag_minutes": lag.max_lag_s / 60,
            "landing_updated_at": dg.MetadataValue.timestamp(lag.landing_at)
            if lag.landing_at
            else "never",
            "asset_updated_at": dg.MetadataValue.timestamp(lag.asset_at)
            if lag.asset_at
            else "never",
        },
    }


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=key,
            description="Caught up with the newest landing readings and events, or behind "
            "them by less than the allowed lag (CHROM_WAREHOUSE_MAX_LAG_MIN, 15 min).",
        )
        for key in FRESH_KEYS
    ],
    name="warehouse_behind_landing",
    can_subset=True,
)
def warehouse_behind_landing(
    context: dg.AssetCheckExecutionContext, warehouse: dg.ResourceParam[WarehouseConfig]
) -> Iterator[dg.AssetCheckResult]:
    selected = {k.asset_key for k in context.selected_asset_check_keys}
    for key, lag in evaluate(context.instance, warehouse.max_lag_min * 60).items():
        if key in selected:
            yield dg.AssetCheckResult(asset_key=key, check_name=CHECK_NAME, **_outcome(lag))


FRESHNESS_CHECKS = [warehouse_behind_landing]


@running_sensor(every_s=60)
def warehouse_freshness_sensor(
    context: dg.SensorEvaluationContext, warehouse: dg.ResourceParam[WarehouseConfig]
) -> dg.SensorResult:
    """Every minute, reports how far silver and gold are behind the landing zone (the
    behind_landing checks), from the instance's materialization records."""
    lags = evaluate(context.instance, warehouse.max_lag_min * 60)
    return dg.SensorResult(
        asset_events=[
            dg.AssetCheckEvaluation(asset_key=key, check_name=CHECK_NAME, **_outcome(lag))
            for key, lag in lags.items()
        ]
    )


warehouse_automation_sensor = dg.AutomationConditionSensorDefinition(
    "warehouse_automation_sensor",
    target=dg.AssetSelection.all(),
    description="Evaluates the automation conditions: dbt models follow new landing data "
    "(eager), Python checks follow their assets; never a second run while one is going.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
