"""Python asset checks for what dbt's SQL tests do not express well: flatlined signals, gaps
in 1 Hz data, phases off their buffer's conductivity and pH, and the duplicate rate. Each
runs after its asset updates (declarative automation), takes the warehouse pool (it opens
the DuckDB file), and reports the offending batches, signals, phases and CVs in metadata.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg

from chrom_platform.defs.conventions import asset_key
from chrom_platform.lib.analytics import quality
from chrom_platform.lib.analytics.quality import QualityResult
from chrom_platform.lib.analytics.scans import FLATLINE_FACTOR, FLATLINE_SCANS
from chrom_platform.lib.core.tables import GOLD_TREND_BY_CV, SILVER_READINGS_CHECKED
from chrom_platform.lib.io.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseConfig

TREND_KEY = asset_key(GOLD_TREND_BY_CV)
READINGS_CHECKED_KEY = asset_key(SILVER_READINGS_CHECKED)
#: Offending rows shown in metadata (the description gives the full count).
MAX_ROWS_SHOWN = 50


def check_result(res: QualityResult, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=res.passed,
        severity=dg.AssetCheckSeverity[res.severity],
        description=res.description,
        metadata={
            "batches_checked": res.batches_checked,
            "offending_batches": dg.MetadataValue.json(res.offending_batches),
            "offending": dg.MetadataValue.json(
                json.loads(json.dumps(res.offending[:MAX_ROWS_SHOWN], default=str))
            ),
            **{
                k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                for k, v in res.metadata.items()
            },
        },
    )


@dataclass(frozen=True)
class QualityCheck:
    asset: dg.AssetKey
    fn: Callable[[Warehouse], QualityResult]
    description: str

    @property
    def key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset, self.fn.__name__)


CHECKS = [
    QualityCheck(
        TREND_KEY,
        quality.flatlined_signals,
        f"WARN when a signal repeats one value longer than its own habits explain (at least "
        f"{FLATLINE_SCANS} scans and {FLATLINE_FACTOR:g}x its longest other run in the batch; "
        "the rule the batch verdict uses): a stuck sensor, in the batches of the latest load.",
    ),
    QualityCheck(
        TREND_KEY,
        quality.gaps_in_readings,
        f"WARN when a batch's 1 Hz scans have a gap longer than {quality.MAX_GAP_S} s "
        "(by the unit's scan counter), in the batches of the latest load.",
    ),
    QualityCheck(
        TREND_KEY,
        quality.phase_sensor_ranges,
        "ERROR when a phase's settled conductivity or pH (the median from "
        f"{quality.SETTLE_CV:g} CV after its buffer reaches the inlet) is outside the spec "
        "ranges master data gives its buffer: a wrong buffer or a failing sensor. Phases "
        "without ranges are counted as not judged.",
    ),
    QualityCheck(
        READINGS_CHECKED_KEY,
        quality.duplicate_rate,
        f"WARN when more than {quality.MAX_DUPLICATE_RATE:.1%} of the latest load's readings "
        "repeat an earlier (unit_id, ts); counts every reject reason in metadata.",
    ),
]


# One step for all of them: one process and one DuckDB connection per run instead of four
# (each step of a run is a process start and a code-location load, several seconds here).
@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            c.fn.__name__,
            asset=c.asset,
            description=c.description,
            automation_condition=dg.AutomationCondition.eager(),
        )
        for c in CHECKS
    ],
    name="warehouse_quality_checks",
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def warehouse_quality_checks(
    context: dg.AssetCheckExecutionContext, warehouse: dg.ResourceParam[WarehouseConfig]
) -> Iterator[dg.AssetCheckResult]:
    selected = set(context.selected_asset_check_keys)
    with warehouse.connect(read_only=True, on_wait=context.log.warning) as wh:
        for c in CHECKS:
            if c.key in selected:
                yield check_result(c.fn(wh), c.key)


QUALITY_CHECKS = [warehouse_quality_checks]
