"""Process analytics as assets: the golden envelope, drift per batch, column performance,
the elution peak and load breakthrough, every alarm and each batch's verdict (one step that
writes seven gold tables, lib/analytics/pipeline.py), with asset checks on the latest and
running batch of every unit; then the pictures an engineer looks at.

The analytics step follows gold by declarative automation and takes the warehouse pool (it
writes to the DuckDB file), like the dbt build. It exports the envelope to the landing
store, where the live bridge picks it up for live drift.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from chrom_platform.defs.conventions import asset_key
from chrom_platform.lib.analytics import pipeline, reports
from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.analytics.live import ENVELOPE_KEY, envelope_bytes
from chrom_platform.lib.analytics.quality import latest_ids
from chrom_platform.lib.analytics.reads import envelope_params
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_PEAKS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MONITORING_STATE,
    GOLD_MSPC_VERDICT,
    GOLD_TREND_BINNED,
    GOLD_TREND_BY_CV,
    SILVER_RECIPE_PHASES,
    SILVER_RECIPES,
    SILVER_UNITS,
    Table,
)
from chrom_platform.lib.io.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseConfig
from chrom_platform.resources import AnalyticsResource, LandingStoreResource

UPSTREAM = [
    asset_key(GOLD_TREND_BINNED),
    asset_key(GOLD_TREND_BY_CV),
    asset_key(GOLD_BATCH_RESULTS),
    asset_key(SILVER_UNITS),
    asset_key(SILVER_RECIPE_PHASES),
    asset_key(SILVER_RECIPES),
]
PARAMS = EnvelopeParams()

DESCRIPTIONS = {
    GOLD_GOLDEN_ENVELOPE: (
        "Golden-batch envelope per recipe, unit, phase and 0.1 phase-CV bin, per signal: "
        "mean, std, 5/50/95% quantiles and the limits (median +- "
        f"{PARAMS.z_limit:g} x the spread, widened for a young envelope and floored at "
        "instrument noise) over the last "
        f"{PARAMS.window} released batches; bins with fewer than {PARAMS.min_batches} batches "
        "have no limit (the platform's defaults: a recipe's `envelope:` in master data may set "
        "its own). Released = the platform's own verdict (gold_batch_verdict)."
    ),
    GOLD_BATCH_DRIFT: (
        "Per batch and signal, judged against the envelope of the batches released before "
        "it: verdict (drift/watch/pass/no_envelope), first CV outside, the CV where the "
        f"persistence rule ({PARAMS.persistence} bins running) raised the alarm, max |z|, "
        "fraction of bins outside."
    ),
    GOLD_COLUMN_PERFORMANCE: (
        "Per batch and buffer transition (conductivity steps): plates, HETP and asymmetry "
        "from the moments of dC/dV; per batch the median over transitions, bed permeability "
        "by Darcy's law over settled phases, and the limits they are judged by."
    ),
    GOLD_BATCH_PEAKS: (
        "Per batch: the elution UV peak (retention CV, width, asymmetry, area, maximum) and "
        "load breakthrough (DBC10 where 10% breakthrough is seen, and where it was alarmed)."
    ),
    GOLD_BATCH_ALARMS: (
        "Every alarm per batch: drift, data gap, flatlined sensor, column performance, load "
        "breakthrough, batch-result alerts; with the batch CV where it was raised."
    ),
    GOLD_BATCH_VERDICT: (
        "Per batch: verdict (pass/warn/fail/running), whether it is released into the "
        "envelope, its alarms and the first one's CV."
    ),
    GOLD_MONITORING_STATE: (
        "Per unit and recipe: what its newest batch was judged against: specs_only (the "
        "recipe's specifications, before enough released batches anywhere for an envelope), "
        "cross_unit (the recipe's released batches on every unit, made unit-free by column "
        "size, while the unit has too few of its own) or own_envelope (from n released "
        "batches), and how much of the recipe the specifications cover."
    ),
}


class EnvelopeConfig(dg.Config):
    """Engineers' say on the golden envelope for this run, beside the `envelope: {pin,
    exclude}` of recipe master data (which is where a lasting decision belongs): batches to
    pin into it whatever the platform found, or to keep out of it. A changed say re-judges
    the history; gold_monitoring_state shows which batches the envelope is built from."""

    pin: list[str] = Field(default_factory=list, description="batch ids to pin in")
    exclude: list[str] = Field(default_factory=list, description="batch ids to keep out")


DRIFT_CHECK = "latest_batches_in_envelope"
RESULT_CHECK = "latest_batches_meet_specs_and_results"
#: alarm sources a batch fails on beside drift and the column: load breakthrough, the recipe's
#: specifications, and the batch result (step yield, pool, pressure over limit)
RESULT_SOURCES = ("breakthrough", "spec", "result")
COLUMN_CHECK = "columns_within_limits"
SYSTEMATIC_CHECK = "no_systematic_findings"
#: a finding on at least this share of a unit and recipe's complete batches (and on at
#: least this many) is systematic: a limit that does not fit the plant, or a trend of the
#: equipment, rather than something these batches did
SYSTEMATIC_SHARE, SYSTEMATIC_MIN_BATCHES = 0.8, 5


def _without_envelope(wh: Warehouse, latest: list[dict[str, Any]]) -> list[str]:
    """The latest batches that could not be judged: no envelope for their unit and recipe
    yet (fewer released batches before them than the envelope needs), said per batch."""
    ids = [r["batch_id"] for r in latest]
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    judged = {
        r["batch_id"]
        for r in wh.query(
            f"select distinct batch_id from {GOLD_BATCH_DRIFT} "
            f"where batch_id in ({marks}) and verdict <> 'no_envelope'",
            ids,
        )
    }
    released = {
        r["batch_id"]: r["reference_batches"]
        for r in wh.query(
            f"select batch_id, reference_batches from {GOLD_BATCH_VERDICT} "
            f"where batch_id in ({marks})",
            ids,
        )
    }
    needed = envelope_params(wh, PARAMS)
    return [
        f"no envelope for {r['unit_id']} / {r['recipe']} ({r['batch_id']}): "
        f"{released.get(r['batch_id'], 0)} of "
        f"{needed.get(r['recipe'], PARAMS).min_batches} released batches"
        for r in latest
        if r["batch_id"] not in judged
    ]


def drift_check(wh: Warehouse) -> dg.AssetCheckResult:
    latest, ids, marks = latest_ids(wh)
    rows = wh.query(
        "select batch_id, unit_id, signal, verdict, first_out_phase, first_out_phase_cv, "
        "first_out_cv, alarm_cv, alarm_phase, max_abs_z, fraction_outside "
        f"from {GOLD_BATCH_DRIFT} where batch_id in ({marks}) "
        "and verdict in ('drift', 'watch') order by batch_id, alarm_cv",
        ids,
    )
    drifting = [r for r in rows if r["verdict"] == "drift"]
    watch = [r for r in rows if r["verdict"] == "watch"]
    # a batch with no envelope to judge it against is not "inside its envelope": the check
    # says it cannot judge (a warning), never passes by default
    unjudged = _without_envelope(wh, latest)
    if drifting:
        desc = "; ".join(
            f"{r['batch_id']}: {r['signal']} outside from {r['first_out_phase']} "
            f"(batch CV {r['first_out_cv']:.2f}, max |z| {r['max_abs_z']:.1f})"
            for r in drifting
        )
    elif watch:
        desc = "single bins outside (not persistent): " + ", ".join(
            f"{r['batch_id']} {r['signal']}" for r in watch
        )
    elif unjudged:
        desc = "cannot judge: " + "; ".join(unjudged)
    elif not latest:
        desc = "cannot judge: no batch in gold yet"
    else:
        desc = f"latest batch of each of {len(latest)} units inside its envelope"
    if unjudged and (drifting or watch):
        desc += "; cannot judge: " + "; ".join(unjudged)
    # a unit without its own envelope yet is judged against the recipe's across units
    across = [
        r["batch_id"]
        for r in wh.query(
            f"select batch_id from {GOLD_BATCH_VERDICT} where batch_id in ({marks}) "
            "and envelope = 'cross_unit' order by batch_id",
            ids,
        )
    ]
    if across:
        desc += (
            "; judged against the recipe's envelope across units (no envelope of their own "
            "yet): " + ", ".join(across)
        )
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        asset_key=asset_key(GOLD_BATCH_DRIFT),
        passed=not rows and not unjudged and bool(latest),
        severity=dg.AssetCheckSeverity.ERROR if drifting else dg.AssetCheckSeverity.WARN,
        description=desc,
        metadata={
            "batches_checked": dg.MetadataValue.json(latest),
            "drifting": dg.MetadataValue.json(json.loads(json.dumps(drifting, default=str))),
            "watch": dg.MetadataValue.json(json.loads(json.dumps(watch, default=str))),
            "cannot_judge": dg.MetadataValue.json(unjudged),
            "cross_unit": dg.MetadataValue.json(across),
        },
    )


def systematic_check(wh: Warehouse) -> dg.AssetCheckResult:
    """A finding shared by (nearly) every batch of a unit and recipe is said as one: it is
    about the limit or the equipment, and it does not keep those batches out of the
    envelope unless it is a process or data finding."""
    rows = wh.query(
        f"""
        with batches as (
            select unit_id, recipe, count(*) as n
            from {GOLD_BATCH_RESULTS} where status = 'complete' group by unit_id, recipe
        ),
        found as (
            select r.unit_id, r.recipe, a.source, a.signal, min(a.alarm_class) as alarm_class,
                count(distinct a.batch_id) as hits
            from {GOLD_BATCH_ALARMS} as a
            inner join {GOLD_BATCH_RESULTS} as r on a.batch_id = r.batch_id
            where r.status = 'complete'
            group by r.unit_id, r.recipe, a.source, a.signal
        )
        select found.*, batches.n from found
        inner join batches on found.unit_id = batches.unit_id and found.recipe = batches.recipe
        where found.hits >= ? and found.hits >= ? * batches.n
        order by found.unit_id, found.recipe, found.source, found.signal
        """,
        [SYSTEMATIC_MIN_BATCHES, SYSTEMATIC_SHARE],
    )
    released = {
        (r["unit_id"], r["recipe"]): r["released"]
        for r in wh.query(
            "select unit_id, recipe, sum(case when released then 1 else 0 end) as released "
            f"from {GOLD_BATCH_VERDICT} group by unit_id, recipe"
        )
    }
    found = [
        f"{r['source']}:{r['signal']} on {r['hits']} of {r['n']} batches of {r['unit_id']} / "
        f"{r['recipe']} ({r['alarm_class']}; {released.get((r['unit_id'], r['recipe']), 0)} "
        "released into the envelope)"
        for r in rows
    ]
    return dg.AssetCheckResult(
        check_name=SYSTEMATIC_CHECK,
        asset_key=asset_key(GOLD_BATCH_ALARMS),
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "systematic: " + "; ".join(found) + ". A finding on every batch is about the "
            "limit or the equipment: check the master data or the column."
        )
        if found
        else "no finding shared by most batches of a unit and recipe",
        metadata={"systematic": dg.MetadataValue.json(json.loads(json.dumps(rows, default=str)))},
    )


def result_check(wh: Warehouse) -> dg.AssetCheckResult:
    """The latest batch of every unit without load breakthrough, out-of-spec phases or a
    failed batch result; says so when there is no batch to judge."""
    latest, ids, marks = latest_ids(wh)
    rows = wh.query(
        "select batch_id, unit_id, source, signal, phase, alarm_cv, severity, detail "
        f"from {GOLD_BATCH_ALARMS} where source in ({', '.join('?' * len(RESULT_SOURCES))}) "
        f"and batch_id in ({marks}) order by batch_id, alarm_cv",
        [*RESULT_SOURCES, *ids],
    )
    errors = [r for r in rows if r["severity"] == "ERROR"]
    if rows:
        desc = "; ".join(
            f"{r['batch_id']}: {r['source']} {r['signal']}: {r['detail']}" for r in rows
        )
    elif not latest:
        desc = "cannot judge: no batch in gold yet"
    else:
        desc = (
            f"latest batch of each of {len(latest)} units: no breakthrough, within its "
            "recipe's specifications, batch result within its ranges"
        )
    return dg.AssetCheckResult(
        check_name=RESULT_CHECK,
        asset_key=asset_key(GOLD_BATCH_ALARMS),
        passed=not rows and bool(latest),
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=desc,
        metadata={"offending": dg.MetadataValue.json(json.loads(json.dumps(rows, default=str)))},
    )


def column_check(wh: Warehouse) -> dg.AssetCheckResult:
    latest, ids, marks = latest_ids(wh)
    rows = wh.query(
        "select batch_id, unit_id, signal, phase, alarm_cv, severity, detail "
        f"from {GOLD_BATCH_ALARMS} where source = 'column' and batch_id in ({marks})",
        ids,
    )
    errors = [r for r in rows if r["severity"] == "ERROR"]
    return dg.AssetCheckResult(
        check_name=COLUMN_CHECK,
        asset_key=asset_key(GOLD_COLUMN_PERFORMANCE),
        passed=not rows,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{r['batch_id']}: {r['detail']}" for r in rows)
        or f"latest batch of each of {len(latest)} units within HETP, asymmetry and "
        "permeability limits",
        metadata={"offending": dg.MetadataValue.json(json.loads(json.dumps(rows, default=str)))},
    )


@dg.multi_asset(
    name="process_analytics",
    specs=[
        dg.AssetSpec(
            asset_key(t),
            group_name="analytics",
            description=DESCRIPTIONS[t],
            deps=UPSTREAM,
            kinds={"python", "numpy"},
            automation_condition=dg.AutomationCondition.eager(),
        )
        for t in pipeline.TABLES
    ],
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset=asset_key(GOLD_BATCH_DRIFT),
            description="The latest (or running) batch of every unit is inside its golden "
            "envelope: ERROR with the drifting signals, phase and CV in metadata; WARN for "
            "single bins outside that the persistence rule did not confirm.",
        ),
        dg.AssetCheckSpec(
            COLUMN_CHECK,
            asset=asset_key(GOLD_COLUMN_PERFORMANCE),
            description="The latest batch of every unit shows HETP and asymmetry within "
            "their limits against the column's qualification, and permeability above 75% of "
            "the column's first cycles.",
        ),
        dg.AssetCheckSpec(
            RESULT_CHECK,
            asset=asset_key(GOLD_BATCH_ALARMS),
            description="The latest batch of every unit did not break through in load, stayed "
            "within its recipe's specifications (buffer ranges, flow set points) and passed "
            "its batch result (step yield, pool found, pressure under the limit).",
        ),
        dg.AssetCheckSpec(
            SYSTEMATIC_CHECK,
            asset=asset_key(GOLD_BATCH_ALARMS),
            description="No finding is shared by most batches of a unit and recipe (at least "
            f"{SYSTEMATIC_SHARE:.0%} and {SYSTEMATIC_MIN_BATCHES}): one that is says so, once, "
            "with its class and how many batches were still released into the envelope.",
        ),
    ],
    pool=WAREHOUSE_POOL,
)
def process_analytics(
    context: dg.AssetExecutionContext,
    config: EnvelopeConfig,
    warehouse: dg.ResourceParam[WarehouseConfig],
    landing: LandingStoreResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    with warehouse.connect(read_only=False, on_wait=context.log.warning) as wh:
        res = pipeline.run(wh, PARAMS, pin=config.pin, exclude=config.exclude)
        env = wh.query_arrow(f"select * from {GOLD_GOLDEN_ENVELOPE}")
        checks = [drift_check(wh), column_check(wh), systematic_check(wh), result_check(wh)]
    # the live bridge's copy of the envelope (it never opens the warehouse)
    landing.store().put(ENVELOPE_KEY, envelope_bytes(env))
    summary = res.summary()
    context.log.info(f"analytics: {summary}")
    if res.unknown_decisions:
        context.log.warning(
            "pin/exclude name batches gold does not hold (a typo, or not landed yet; the say "
            f"waits for them): {res.unknown_decisions}"
        )
    for t in pipeline.TABLES:
        yield dg.MaterializeResult(
            asset_key=asset_key(t),
            metadata={
                **{k: v for k, v in summary.items() if isinstance(v, int | float)},
                "drifting_batches_list": dg.MetadataValue.json(res.drifting[-20:]),
                "unknown_pinned_or_excluded": dg.MetadataValue.json(res.unknown_decisions),
                "monitoring_state": dg.MetadataValue.md(_state_table(res.monitoring)),
            },
        )
    yield from checks


def _state_table(rows: list[dict[str, Any]]) -> str:
    """Each unit and recipe's monitoring state, as the UI shows it."""
    lines = ["| unit | recipe | state | released | detail |", "|---|---|---|---:|---|"]
    lines += [
        f"| {r['unit_id']} | {r['recipe']} | {r['state']} | {r['released_batches']} | "
        f"{r['detail']} |"
        for r in rows
    ]
    return "\n".join(lines)


def _write_report(
    analytics: AnalyticsResource, name: str, png: bytes, title: str, table: list[dict[str, Any]]
) -> Path:
    """The picture as <name>.png and an HTML report <name>.html in the reports folder."""
    out = Path(analytics.reports_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.png").write_bytes(png)
    html_path = out / f"{name}.html"
    html_path.write_text(reports.html_report(title, png, table))
    return html_path


def _envelope_lookup(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["phase"], int(r["cv_bin"]), r["signal"]): r for r in rows}


def _overlay_target(wh: Warehouse) -> dict[str, Any] | None:
    """The running batch (newest first), else the newest complete one."""
    rows = wh.query(
        f"select batch_id, unit_id, recipe, status from {GOLD_BATCH_RESULTS} "
        "order by case when status = 'complete' then 1 else 0 end, started_at desc nulls last "
        "limit 1"
    )
    return rows[0] if rows else None


def picture(name: str, reads: list[Table]) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """An analytics picture: reads gold tables (its upstream) from the warehouse, writes a
    PNG into its metadata and an HTML report, and is redrawn when what it reads changes."""
    return dg.asset(
        key=dg.AssetKey(["analytics", name]),
        group_name="analytics",
        deps=[asset_key(t) for t in reads],
        pool=WAREHOUSE_POOL,
        kinds={"python", "matplotlib"},
        automation_condition=dg.AutomationCondition.eager(),
    )


@picture(
    "batch_overlay",
    [GOLD_GOLDEN_ENVELOPE, GOLD_BATCH_DRIFT, GOLD_TREND_BINNED, GOLD_MSPC_VERDICT],
)
def batch_overlay(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[WarehouseConfig],
    analytics: AnalyticsResource,
) -> dg.MaterializeResult:
    """The running (or latest) batch over its golden envelope by batch CV, one panel per
    signal, drift alarms and the multivariate alarm (with its top signals) marked: a PNG in
    this asset's metadata and an HTML report file."""
    with warehouse.connect(read_only=True, on_wait=context.log.warning) as wh:
        target = _overlay_target(wh)
        if target is None:
            return dg.MaterializeResult(metadata={"batch_id": "none yet"})
        bid = target["batch_id"]
        bins = wh.query(
            "select phase, cv_bin, batch_cv, flow_lpm, pressure_bar, uv_mau, cond_ms_cm, ph "
            f"from {GOLD_TREND_BINNED} where batch_id = ? order by batch_cv",
            [bid],
        )
        env = wh.query(
            f"select * from {GOLD_GOLDEN_ENVELOPE} where recipe = ? and unit_id = ?",
            [target["recipe"], target["unit_id"]],
        )
        alarms = wh.query(
            f"select signal, alarm_cv, first_out_phase, max_abs_z from {GOLD_BATCH_DRIFT} "
            "where batch_id = ? and verdict = 'drift'",
            [bid],
        )
        mspc = (
            wh.query(
                "select alarm_cv, alarm_statistic, top_signals, detail "
                f"from {GOLD_MSPC_VERDICT} where batch_id = ? and verdict = 'alarm'",
                [bid],
            )
            if wh.table_exists(GOLD_MSPC_VERDICT.schema, GOLD_MSPC_VERDICT.name)
            else []
        )
    png = reports.overlay_png(bid, bins, _envelope_lookup(env), alarms, mspc[0] if mspc else None)
    html_path = _write_report(
        analytics,
        "batch_overlay",
        png,
        f"{bid} over its golden envelope",
        alarms or [{"drift": "none"}],
    )
    context.log.info(f"overlay of {bid} written to {html_path}")
    return dg.MaterializeResult(
        metadata={
            "batch_id": bid,
            "status": target["status"],
            "drifting_signals": dg.MetadataValue.json([a["signal"] for a in alarms]),
            "multivariate_alarm": dg.MetadataValue.json(mspc[0] if mspc else {}),
            "overlay": dg.MetadataValue.md(reports.img_markdown(png, f"{bid} overlay")),
            "report": dg.MetadataValue.path(str(html_path)),
        }
    )


@picture("column_performance_trend", [GOLD_COLUMN_PERFORMANCE])
def column_performance_trend(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[WarehouseConfig],
    analytics: AnalyticsResource,
) -> dg.MaterializeResult:
    """HETP, asymmetry and permeability of every column across its cycles, with limits: a
    PNG in this asset's metadata and an HTML report file."""
    with warehouse.connect(read_only=True, on_wait=context.log.warning) as wh:
        rows = wh.query(
            "select distinct batch_id, column_id, column_cycle, batch_hetp_cm, "
            "batch_asymmetry, permeability_m2, hetp_limit_cm, asymmetry_limit "
            f"from {GOLD_COLUMN_PERFORMANCE} where batch_hetp_cm is not null"
        )
    png = reports.column_trend_png(rows)
    latest: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in rows:
        if r["column_cycle"] >= latest[r["column_id"]].get("column_cycle", -1):
            latest[r["column_id"]] = r
    table = [
        {k: r[k] for k in ("column_id", "column_cycle", "batch_hetp_cm", "batch_asymmetry")}
        for r in latest.values()
    ]
    html_path = _write_report(
        analytics, "column_performance", png, "Column performance across cycles", table
    )
    context.log.info(f"column trend written to {html_path}")
    return dg.MaterializeResult(
        metadata={
            "columns": len(latest),
            "batches": len(rows),
            "trend": dg.MetadataValue.md(reports.img_markdown(png, "column performance")),
            "report": dg.MetadataValue.path(str(html_path)),
        }
    )


ANALYTICS_ASSETS = [process_analytics, batch_overlay, column_performance_trend]
