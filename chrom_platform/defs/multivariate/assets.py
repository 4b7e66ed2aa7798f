"""Multivariate batch monitoring as an asset: per recipe and unit, a multiway PCA model of the
released batches (versioned), each batch's T2 and SPE by CV bin against it with the signals
that carry them, and a check on every unit's latest batch (lib/analytics/mspc.py and
mspc_run.py).

It follows the analytics step (which releases batches) by declarative automation, takes the
warehouse pool, and exports the current models to the landing store for the live bridge.
"""

import json
from collections.abc import Iterator

import dagster as dg

from chrom_platform.defs.conventions import asset_key
from chrom_platform.lib.analytics import mspc_run
from chrom_platform.lib.analytics.live_mspc import MODEL_KEY
from chrom_platform.lib.analytics.quality import latest_ids
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_MSPC_LIMITS,
    GOLD_MSPC_MODELS,
    GOLD_MSPC_SCORES,
    GOLD_MSPC_VERDICT,
    GOLD_TREND_BINNED,
    SILVER_RECIPE_PHASES,
    SILVER_RECIPES,
)
from chrom_platform.lib.io.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseConfig
from chrom_platform.resources import LandingStoreResource

PARAMS = mspc_run.MspcRunParams()
CHECK = "latest_batches_in_mspc_limits"

DESCRIPTIONS = {
    GOLD_MSPC_MODELS: (
        "Each unit and recipe's current multiway PCA model (batch-wise unfolding of the "
        "0.1 phase-CV bins of its five signals): version (a hash of its reference batches "
        "and parameters), components, variance explained, and the released batches it is "
        f"built from (the newest {PARAMS.window})."
    ),
    GOLD_MSPC_LIMITS: (
        "The current models' limits per phase and CV bin: Hotelling's T2 of the scores "
        "estimated from the bins so far, and the SPE of each signal, cross-validated on the "
        f"reference batches at a tail of {PARAMS.model.alpha:g} per bin."
    ),
    GOLD_MSPC_SCORES: (
        "Per batch and CV bin, against the model of the batches eligible before it: T2 and "
        "its limit, each signal's SPE, limit and ratio, each signal's share of T2, and "
        "whether the bin is outside."
    ),
    GOLD_MSPC_VERDICT: (
        "Per batch: alarm (T2 or an SPE over its limit for "
        f"{PARAMS.model.persistence} bins running), pass, or no_model (fewer than "
        f"{PARAMS.model.min_batches} eligible batches before it); its severity (ERROR: an "
        f"alarm of a model of {PARAMS.model.mature_batches} or more reference batches; WARN: "
        "a younger model's alarm, or no model); where the alarm fired, which statistic, and "
        "the top-3 signals by contribution."
    ),
}


def mspc_check(wh: Warehouse) -> dg.AssetCheckResult:
    """The latest batch of every unit inside its multivariate limits; a batch with no model
    to judge it is said, never passed."""
    latest, ids, marks = latest_ids(wh)
    rows = wh.query(
        "select batch_id, unit_id, recipe, verdict, severity, model_version, reference_batches, "
        "alarm_phase, alarm_cv, alarm_statistic, alarm_ratio, top_signals, detail "
        f"from {GOLD_MSPC_VERDICT} where batch_id in ({marks}) order by unit_id",
        ids,
    )
    alarms = [r for r in rows if r["verdict"] == "alarm"]
    unjudged = [r for r in rows if r["verdict"] == "no_model"]
    unjudged += [
        {"batch_id": b, "detail": "not scored"}
        for b in ids
        if b not in {r["batch_id"] for r in rows}
    ]
    parts = [f"{r['batch_id']}: {r['detail']}" for r in alarms]
    if unjudged:
        parts.append(
            "cannot judge: " + "; ".join(f"{r['batch_id']}: {r['detail']}" for r in unjudged)
        )
    if not latest:
        parts.append("cannot judge: no batch in gold yet")
    return dg.AssetCheckResult(
        check_name=CHECK,
        asset_key=asset_key(GOLD_MSPC_VERDICT),
        passed=bool(latest) and not alarms and not unjudged,
        # a young model's alarm warns (its limits rest on few batches): only a mature
        # model's fails the check (mspc_run.verdict_severity)
        severity=dg.AssetCheckSeverity.ERROR
        if any(r["severity"] == "ERROR" for r in alarms)
        else dg.AssetCheckSeverity.WARN,
        description="; ".join(parts)
        or f"latest batch of each of {len(latest)} units inside its multivariate limits",
        metadata={
            "verdicts": dg.MetadataValue.json(json.loads(json.dumps(rows, default=str))),
        },
    )


@dg.multi_asset(
    name="batch_mspc",
    specs=[
        dg.AssetSpec(
            asset_key(t),
            group_name="multivariate",
            description=DESCRIPTIONS[t],
            deps=[
                asset_key(GOLD_TREND_BINNED),
                asset_key(GOLD_BATCH_RESULTS),
                asset_key(GOLD_BATCH_VERDICT),
                asset_key(SILVER_RECIPE_PHASES),
                asset_key(SILVER_RECIPES),
            ],
            kinds={"python", "scikit-learn"},
            automation_condition=dg.AutomationCondition.eager(),
        )
        for t in mspc_run.TABLES
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=asset_key(GOLD_MSPC_VERDICT),
            description="The latest batch of every unit is inside its multivariate (T2 / "
            "SPE) limits: ERROR with where the alarm fired and the top-3 signals; WARN when "
            "the model is young (fewer than "
            f"{PARAMS.model.mature_batches} reference batches) or a unit has no model yet to "
            "judge it by.",
        )
    ],
    pool=WAREHOUSE_POOL,
)
def batch_mspc(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[WarehouseConfig],
    landing: LandingStoreResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Multiway PCA models of released batches and every batch's T2 / SPE against them."""
    with warehouse.connect(read_only=False, on_wait=context.log.warning) as wh:
        res = mspc_run.run(wh, PARAMS)
        check = mspc_check(wh)
        models = wh.query(f"select * from {GOLD_MSPC_MODELS} order by unit_id, recipe")
    # the live bridge's copy of the current models (it never opens the warehouse)
    landing.store().put(MODEL_KEY, mspc_run.models_bytes(list(res.current.values())))
    summary = res.summary()
    context.log.info(f"multivariate: {summary}")
    for t in mspc_run.TABLES:
        yield dg.MaterializeResult(
            asset_key=asset_key(t),
            metadata={
                **summary,
                "alarming_batches_list": dg.MetadataValue.json(res.alarms[-20:]),
                "models": dg.MetadataValue.json(json.loads(json.dumps(models, default=str))),
            },
        )
    yield check
