"""The five dashboards: live run, batch comparison, column performance, batch results and
platform health. Each is built per profile (the warehouse panels differ in SQL dialect and
plugin), and every query a panel, variable or annotation runs is recorded with the columns
it must return, so the tests can run all of them against the real stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, table, timeseries, xychart
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import xychart as xym

from chrom_platform.grafana.queries import (
    Query,
    influx_ref,
    mixed_ref,
    warehouse_ref,
)
from chrom_platform.lib.core.contracts import INFLUX_MEASUREMENT, SIGNALS
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MSPC_SCORES,
    GOLD_MSPC_VERDICT,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BINNED,
)

#: Signals an engineer overlays by CV (flow is the x axis's own source)
TREND_SIGNALS = ("ph", "uv_mau", "cond_ms_cm", "pressure_bar")
FOLDER = "Chromatography"


def influxql(text: str, *columns: str, table: bool = False) -> Query:
    return Query("influxql", text, ("time", *columns) if not table else columns, table)


def sql(text: str, *columns: str) -> Query:
    return Query("sql", " ".join(text.split()), columns)


@dataclass
class Recorded:
    """One query of a dashboard: where it sits and what it is."""

    dashboard: str
    where: str  # "panel:<title>", "variable:<name>" or "annotation:<name>"
    ref_id: str
    query: Query


@dataclass
class Board:
    """Builds one dashboard for one profile, recording each query it places."""

    uid: str
    title: str
    profile: str
    queries: list[Recorded] = field(default_factory=list)
    dashboard: Any = None

    def reads(self) -> tuple[set[str], set[str]]:
        """What the dashboard reads: gold tables and InfluxDB measurements (its lineage)."""
        tables: set[str] = set()
        measurements: set[str] = set()
        for r in self.queries:
            if r.query.kind == "sql":
                tables |= set(re.findall(r"\bgold\.(gold_\w+)", r.query.text))
            else:
                measurements |= set(re.findall(r'FROM "(\w+)"', r.query.text))
        return tables, measurements

    def target(self, where: str, ref_id: str, q: Query) -> Any:
        self.queries.append(Recorded(self.uid, where, ref_id, q))
        return q.target(ref_id, self.profile)

    def variable(self, name: str, label: str, q: Query, *, multi: bool = False) -> Any:
        self.queries.append(Recorded(self.uid, f"variable:{name}", "var", q))
        ref = influx_ref() if q.kind == "influxql" else warehouse_ref(self.profile)
        return (
            db.QueryVariable(name)
            .label(label)
            .datasource(ref)
            .query(q.for_profile(self.profile))
            .definition(q.for_profile(self.profile))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(
                dm.VariableSort.ALPHABETICAL_DESC
                if name.startswith("batch")
                else dm.VariableSort.ALPHABETICAL_ASC
            )
            .multi(multi)
        )

    def panel(self, builder: Any, title: str, *queries: Query, w: int = 12, h: int = 8) -> Any:
        kinds = {q.kind for q in queries}
        if kinds == {"influxql"}:
            ref = influx_ref()
        elif kinds == {"sql"}:
            ref = warehouse_ref(self.profile)
        else:
            ref = mixed_ref()
        p = builder.title(title).datasource(ref).span(w).height(h)
        for i, q in enumerate(queries):
            p = p.with_target(self.target(f"panel:{title}", chr(ord("A") + i), q))
        return p


def signal_variable() -> Any:
    return (
        db.CustomVariable("signal")
        .label("Signal")
        .values(",".join(TREND_SIGNALS))
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def unit_variable(b: Board, table: str = GOLD_BATCH_RESULTS.name) -> Any:
    """`unit` from the warehouse (history dashboards)."""
    return b.variable(
        "unit",
        "Unit",
        sql(f'select distinct unit_id as "unit_id" from gold.{table} order by 1', "unit_id"),
    )


def recipe_variable(b: Board) -> Any:
    """`recipe` of the chosen unit, from the warehouse."""
    return b.variable(
        "recipe",
        "Recipe",
        sql(
            f'select distinct recipe as "recipe" from {GOLD_BATCH_RESULTS} '
            "where unit_id = ${unit:sqlstring} order by 1",
            "recipe",
        ),
    )


def tag_variable(
    b: Board, name: str, label: str, key: str, *, where: str = "", multi: bool = False
) -> Any:
    """A variable from the values of one tag of the live measurement."""
    clause = f" WHERE {where}" if where else ""
    q = influxql(
        f'SHOW TAG VALUES FROM "{INFLUX_MEASUREMENT}" WITH KEY = "{key}"{clause}',
        "key",
        "value",
        table=True,
    )
    return b.variable(name, label, q, multi=multi)


def xy(board: Board, title: str, *queries: Query, w: int = 12, partition: str | None = None) -> Any:
    p = board.panel(
        xychart.Panel().mapping(xym.SeriesMapping.AUTO).show(xym.XYShowMode.LINES),
        title,
        *queries,
        w=w,
    )
    if partition:
        # one series per batch (or column) from a long SQL result
        p = p.with_transformation(
            dm.DataTransformerConfig(
                id_val="partitionByValues", options={"fields": [partition], "keepFields": False}
            )
        )
    return p


# -- 1. live run ----------------------------------------------------------------------------

M = INFLUX_MEASUREMENT


def _live_by_cv_queries() -> dict[str, Query]:
    """The live run's curves by batch CV: the running batch, the recent ones, the envelope, the
    live z and the multivariate statistics."""
    running = influxql(
        f'SELECT "batch_cv", "$signal" FROM "{M}" WHERE "batch_id" =~ /^${{batch:regex}}$/ AND $timeFilter',
        "batch_cv",
        "$signal",
    )
    recent = influxql(
        f'SELECT mean("batch_cv") AS "batch_cv", mean("$signal") AS "$signal" FROM "{M}" '
        'WHERE "recipe" =~ /^${recipe:regex}$/ AND "unit_id" =~ /^${unit:regex}$/ AND "batch_id" !~ /^${batch:regex}$/ '
        'AND $timeFilter GROUP BY time($__interval), "batch_id" fill(none)',
        "batch_cv",
        "$signal",
    )
    envelope = sql(
        f"""
        with envelope as (
            select * from {GOLD_GOLDEN_ENVELOPE}
            where recipe = ${{recipe:sqlstring}} and unit_id = ${{unit:sqlstring}} and signal = ${{signal:sqlstring}}
              and centre is not null
        ),
        positions as (
            select phase, cv_bin, median(batch_cv) as batch_cv from {GOLD_TREND_BINNED}
            where recipe = ${{recipe:sqlstring}} and unit_id = ${{unit:sqlstring}}
            group by phase, cv_bin
        )
        select positions.batch_cv as "batch_cv", envelope.lower as "lower",
            envelope.centre as "centre", envelope.upper as "upper"
        from envelope inner join positions
            on envelope.phase = positions.phase and envelope.cv_bin = positions.cv_bin
        order by 1
        """,
        "batch_cv",
        "lower",
        "centre",
        "upper",
    )
    z = influxql(
        'SELECT "batch_cv", '
        + ", ".join(f'"z_{s}"' for s in SIGNALS)
        + ' FROM "drift" WHERE "batch_id" =~ /^${batch:regex}$/ AND $timeFilter',
        "batch_cv",
        *(f"z_{s}" for s in SIGNALS),
    )
    # the live multivariate score of each finished CV bin (lib/analytics/live_mspc.py)
    mspc_by_cv = influxql(
        'SELECT "batch_cv", "t2_ratio", "spe_ratio" FROM "mspc" '
        'WHERE "batch_id" =~ /^${batch:regex}$/ AND $timeFilter',
        "batch_cv",
        "t2_ratio",
        "spe_ratio",
    )
    return {
        "running": running,
        "recent": recent,
        "envelope": envelope,
        "z": z,
        "mspc_by_cv": mspc_by_cv,
    }


def _live_now_queries() -> dict[str, Query]:
    """The live run's state now (drift, multivariate shares, unit, phases) and its trend by time."""
    drift_status = influxql(
        'SELECT last("n_out") AS "signals_out", last("alarm") AS "alarm", '
        'last("batch_cv") AS "batch_cv" FROM "drift" WHERE "batch_id" =~ /^${batch:regex}$/ AND $timeFilter',
        "signals_out",
        "alarm",
        "batch_cv",
    )
    mspc_top = influxql(
        'SELECT last("ratio") AS "ratio", last("alarm") AS "alarm", '
        + ", ".join(f'last("share_{s}") AS "{s}"' for s in SIGNALS)
        + ' FROM "mspc" WHERE "batch_id" =~ /^${batch:regex}$/ AND $timeFilter',
        "ratio",
        "alarm",
        *SIGNALS,
    )
    status = influxql(
        'SELECT last("age_s") AS "age_s", last("running") AS "running", last("batch_cv") AS '
        '"batch_cv" FROM "live_status" WHERE "unit_id" =~ /^${unit:regex}$/ AND $timeFilter',
        "age_s",
        "running",
        "batch_cv",
    )
    phases = influxql(
        'SELECT first("batch_cv") AS "start_cv", last("batch_cv") AS "end_cv" '
        f'FROM "{M}" WHERE "batch_id" =~ /^${{batch:regex}}$/ AND $timeFilter GROUP BY "phase"',
        "time",
        "phase",
        "start_cv",
        "end_cv",
        table=True,
    )
    by_time = influxql(
        ", ".join(f'mean("{s}") AS "{s}"' for s in TREND_SIGNALS).join(("SELECT ", " "))
        + f'FROM "{M}" WHERE "batch_id" =~ /^${{batch:regex}}$/ AND $timeFilter '
        "GROUP BY time($__interval) fill(none)",
        *TREND_SIGNALS,
    )
    phase_marks = influxql(
        f'SELECT first("batch_cv") AS "batch_cv" FROM "{M}" '
        'WHERE "batch_id" =~ /^${batch:regex}$/ AND $timeFilter GROUP BY "phase"',
        "batch_cv",
    )
    return {
        "drift_status": drift_status,
        "mspc_top": mspc_top,
        "status": status,
        "phases": phases,
        "by_time": by_time,
        "phase_marks": phase_marks,
    }


def live_run(profile: str) -> Board:
    """The running batch by batch CV over recent batches of its recipe and the golden
    envelope, with live drift and phases."""
    b = Board("chrom-live-run", "Chromatography · Live run", profile)
    q = {**_live_by_cv_queries(), **_live_now_queries()}
    d = (
        db.Dashboard(b.title)
        .uid(b.uid)
        .tags(["chromatography", "live"])
        .time("now-12h", "now")
        .refresh("10s")
        .with_variable(tag_variable(b, "unit", "Unit", "unit_id"))
        .with_variable(
            tag_variable(b, "recipe", "Recipe", "recipe", where='"unit_id" =~ /^${unit:regex}$/')
        )
        .with_variable(
            tag_variable(b, "batch", "Batch", "batch_id", where='"unit_id" =~ /^${unit:regex}$/')
        )
        .with_variable(signal_variable())
        .annotation(
            db.AnnotationQuery()
            .name("Phases")
            .datasource(influx_ref())
            .enable(True)
            .icon_color("blue")
            .target(b.target("annotation:Phases", "Anno", q["phase_marks"]))
        )
        .with_row(db.Row("Now"))
        .with_panel(b.panel(stat.Panel(), "Live drift status", q["drift_status"], w=8, h=4))
        .with_panel(b.panel(stat.Panel(), "Unit status", q["status"], w=8, h=4))
        .with_panel(b.panel(table.Panel(), "Phases of the running batch", q["phases"], w=8, h=4))
        .with_row(db.Row("By column volume"))
        .with_panel(
            xy(
                b,
                "$signal by batch CV: running batch, recent batches, golden envelope",
                q["running"],
                q["recent"],
                q["envelope"],
            )
            .repeat("signal")
            .repeat_direction("h")
            .max_per_row(2)
        )
        .with_panel(xy(b, "Live z against the envelope by batch CV", q["z"], w=24))
        .with_panel(
            xy(
                b,
                "Multivariate T2 and SPE over their limits by batch CV (1 = the limit)",
                q["mspc_by_cv"],
                w=16,
            )
        )
        .with_panel(
            b.panel(
                stat.Panel(),
                "Multivariate: each signal's share of the statistic (last finished bin)",
                q["mspc_top"],
                w=8,
            )
        )
        .with_row(db.Row("By time"))
        .with_panel(b.panel(timeseries.Panel(), "Running batch by time", q["by_time"], w=24))
    )
    b.dashboard = d
    return b


# -- 2. batch comparison --------------------------------------------------------------------


def _comparison_queries() -> dict[str, Query]:
    """The chosen batches' curves by batch and phase CV, their results and verdicts, and
    their multivariate statistics."""
    by_batch = sql(
        f"""
        select batch_id as "batch_id", batch_cv as "batch_cv", ${{signal}} as "value"
        from {GOLD_TREND_BINNED} where batch_id in (${{batches:sqlstring}})
        order by batch_id, batch_cv
        """,
        "batch_id",
        "batch_cv",
        "value",
    )
    by_phase = sql(
        f"""
        select batch_id as "batch_id", cv_bin_start as "phase_cv", ${{signal}} as "value"
        from {GOLD_TREND_BINNED}
        where batch_id in (${{batches:sqlstring}}) and phase = ${{phase:sqlstring}}
        order by batch_id, cv_bin_start
        """,
        "batch_id",
        "phase_cv",
        "value",
    )
    chosen = sql(
        f"""
        select results.batch_id as "batch_id", results.started_at as "started_at",
            results.total_cv as "total_cv", results.step_yield as "step_yield",
            verdicts.verdict as "verdict", verdicts.alarm_sources as "alarm_sources"
        from {GOLD_BATCH_RESULTS} as results
        left join {GOLD_BATCH_VERDICT} as verdicts on results.batch_id = verdicts.batch_id
        where results.batch_id in (${{batches:sqlstring}})
        order by results.started_at
        """,
        "batch_id",
        "started_at",
        "total_cv",
        "step_yield",
        "verdict",
        "alarm_sources",
    )
    # each chosen batch's multivariate statistics against the limits of the model it was
    # judged by, and where and why it alarmed (lib/analytics/mspc_run.py)
    mspc_by_cv = sql(
        f"""
        select batch_id as "batch_id", batch_cv as "batch_cv", ratio as "ratio"
        from {GOLD_MSPC_SCORES} where batch_id in (${{batches:sqlstring}})
        order by batch_id, batch_cv
        """,
        "batch_id",
        "batch_cv",
        "ratio",
    )
    mspc_verdicts = sql(
        f"""
        select batch_id as "batch_id", verdict as "verdict", model_version as "model",
            alarm_phase as "alarm_phase", alarm_cv as "alarm_cv",
            alarm_statistic as "statistic", top_signals as "top_signals", detail as "detail"
        from {GOLD_MSPC_VERDICT} where batch_id in (${{batches:sqlstring}})
        order by batch_id
        """,
        "batch_id",
        "verdict",
        "model",
        "alarm_phase",
        "alarm_cv",
        "statistic",
        "top_signals",
        "detail",
    )
    return {
        "by_batch": by_batch,
        "by_phase": by_phase,
        "chosen": chosen,
        "mspc_by_cv": mspc_by_cv,
        "mspc_verdicts": mspc_verdicts,
    }


def batch_comparison(profile: str) -> Board:
    """Chosen batches overlaid by batch CV or by phase CV (from the warehouse history)."""
    b = Board("chrom-batch-comparison", "Chromatography · Batch comparison", profile)
    q = _comparison_queries()
    d = (
        db.Dashboard(b.title)
        .uid(b.uid)
        .tags(["chromatography", "history"])
        .time("now-90d", "now")
        .with_variable(unit_variable(b))
        .with_variable(recipe_variable(b))
        .with_variable(
            b.variable(
                "batches",
                "Batches",
                sql(
                    f'select batch_id as "batch_id" from {GOLD_BATCH_RESULTS} '
                    "where unit_id = ${unit:sqlstring} and recipe = ${recipe:sqlstring} order by started_at desc",
                    "batch_id",
                ),
                multi=True,
            )
        )
        .with_variable(
            b.variable(
                "phase",
                "Phase",
                sql(
                    f'select distinct phase as "phase" from {GOLD_PHASE_SUMMARY} '
                    "where batch_id in (${batches:sqlstring}) order by 1",
                    "phase",
                ),
            )
        )
        .with_variable(signal_variable())
        .with_panel(
            xy(b, "$signal by batch CV", q["by_batch"], partition="batch_id")
            .repeat("signal")
            .max_per_row(2)
        )
        .with_panel(
            xy(b, "$signal by phase CV in ${phase}", q["by_phase"], partition="batch_id")
            .repeat("signal")
            .max_per_row(2)
        )
        .with_panel(b.panel(table.Panel(), "Chosen batches", q["chosen"], w=24))
        .with_panel(
            xy(
                b,
                "Multivariate: T2 or SPE over its limit by batch CV (1 = the limit)",
                q["mspc_by_cv"],
                w=24,
                partition="batch_id",
            )
        )
        .with_panel(
            b.panel(
                table.Panel(),
                "Multivariate verdicts: where the alarm fired and the top-3 signals",
                q["mspc_verdicts"],
                w=24,
            )
        )
    )
    b.dashboard = d
    return b


# -- 3. column performance ------------------------------------------------------------------


def column_performance(profile: str) -> Board:
    """HETP, asymmetry and permeability per column across its cycles, with the limits."""
    b = Board("chrom-column-performance", "Chromatography · Column performance", profile)

    def per_cycle(value: str, alias: str, limit: str | None) -> Query:
        extra = f', {limit} as "{limit}"' if limit else ""
        cols = ("column_id", "column_cycle", alias, *((limit,) if limit else ()))
        return sql(
            f"""
            select distinct column_id as "column_id", column_cycle as "column_cycle",
                {value} as "{alias}"{extra}
            from {GOLD_COLUMN_PERFORMANCE}
            where unit_id = ${{unit:sqlstring}} and {value} is not null
            order by 1, 2
            """,
            *cols,
        )

    alarms = sql(
        f"""
        select batch_id as "batch_id", signal as "alarm", severity as "severity",
            detail as "detail"
        from {GOLD_BATCH_ALARMS}
        where unit_id = ${{unit:sqlstring}} and source = 'column'
        order by batch_id desc
        """,
        "batch_id",
        "alarm",
        "severity",
        "detail",
    )
    d = (
        db.Dashboard(b.title)
        .uid(b.uid)
        .tags(["chromatography", "column"])
        .time("now-1y", "now")
        .with_variable(unit_variable(b, GOLD_COLUMN_PERFORMANCE.name))
        .with_panel(
            xy(
                b,
                "HETP (cm) by column cycle",
                per_cycle("batch_hetp_cm", "hetp_cm", "hetp_limit_cm"),
                w=8,
                partition="column_id",
            )
        )
        .with_panel(
            xy(
                b,
                "Asymmetry by column cycle",
                per_cycle("batch_asymmetry", "asymmetry", "asymmetry_limit"),
                w=8,
                partition="column_id",
            )
        )
        .with_panel(
            xy(
                b,
                "Permeability (m²) by column cycle",
                per_cycle("permeability_m2", "permeability_m2", None),
                w=8,
                partition="column_id",
            )
        )
        .with_panel(b.panel(table.Panel(), "Column alarms", alarms, w=24))
    )
    b.dashboard = d
    return b


# -- 4. batch results -----------------------------------------------------------------------


def batch_results(profile: str) -> Board:
    """Load, pool, step yield, verdicts and alerts per batch."""
    b = Board("chrom-batch-results", "Chromatography · Batch results", profile)
    results = sql(
        f"""
        select results.batch_id as "batch_id", results.started_at as "started_at",
            results.load_volume_l as "load_volume_l", results.load_mass_g as "load_mass_g",
            results.pool_start_cv as "pool_start_cv", results.pool_end_cv as "pool_end_cv",
            results.pool_volume_l as "pool_volume_l", results.step_yield as "step_yield",
            results.alerts as "alerts", verdicts.verdict as "verdict",
            verdicts.alarm_sources as "alarm_sources", verdicts.not_judged as "not_judged"
        from {GOLD_BATCH_RESULTS} as results
        left join {GOLD_BATCH_VERDICT} as verdicts on results.batch_id = verdicts.batch_id
        where results.unit_id = ${{unit:sqlstring}} and results.recipe = ${{recipe:sqlstring}}
        order by results.started_at desc
        """,
        "batch_id",
        "started_at",
        "load_volume_l",
        "load_mass_g",
        "pool_start_cv",
        "pool_end_cv",
        "pool_volume_l",
        "step_yield",
        "alerts",
        "verdict",
        "alarm_sources",
        "not_judged",
    )
    step_yield = sql(
        f"""
        select started_at as "time", step_yield * 100 as "step_yield_pct"
        from {GOLD_BATCH_RESULTS}
        where unit_id = ${{unit:sqlstring}} and recipe = ${{recipe:sqlstring}} and step_yield is not null
        order by 1
        """,
        "time",
        "step_yield_pct",
    )
    pool_cut = sql(
        f"""
        select started_at as "time", pool_start_cv as "pool_start_cv",
            pool_end_cv as "pool_end_cv"
        from {GOLD_BATCH_RESULTS}
        where unit_id = ${{unit:sqlstring}} and recipe = ${{recipe:sqlstring}} and pool_start_cv is not null
        order by 1
        """,
        "time",
        "pool_start_cv",
        "pool_end_cv",
    )
    counts = sql(
        f"""
        select count(*) as "batches",
            sum(case when verdict = 'fail' then 1 else 0 end) as "failed",
            sum(case when released then 1 else 0 end) as "released"
        from {GOLD_BATCH_VERDICT}
        where unit_id = ${{unit:sqlstring}}
        """,
        "batches",
        "failed",
        "released",
    )
    d = (
        db.Dashboard(b.title)
        .uid(b.uid)
        .tags(["chromatography", "history"])
        .time("now-90d", "now")
        .with_variable(unit_variable(b))
        .with_variable(recipe_variable(b))
        .with_panel(b.panel(stat.Panel(), "Batches, failed verdicts, released", counts, w=24, h=4))
        .with_panel(b.panel(timeseries.Panel().unit("percent"), "Step yield", step_yield))
        .with_panel(b.panel(timeseries.Panel(), "Pool cut (CV into elution)", pool_cut))
        .with_panel(b.panel(table.Panel(), "Batches", results, w=24, h=12))
    )
    b.dashboard = d
    return b


# -- 5. platform health ---------------------------------------------------------------------


def platform_health(profile: str) -> Board:
    """Bridge lag, dead-lettered messages, freshness of live and gold data."""
    b = Board("chrom-platform-health", "Chromatography · Platform health", profile)
    lag = influxql(
        'SELECT max("lag_max_s") AS "lag_max_s", mean("lag_p50_s") AS "lag_p50_s" '
        'FROM "bridge_health" WHERE $timeFilter GROUP BY time($__interval) fill(none)',
        "lag_max_s",
        "lag_p50_s",
    )
    flow = influxql(
        'SELECT sum("points_written") AS "points_written", sum("dead_lettered") AS '
        '"dead_lettered" FROM "bridge_health" WHERE $timeFilter GROUP BY time($__interval) fill(0)',
        "points_written",
        "dead_lettered",
    )
    held = influxql(
        'SELECT last("dead_letters_held") AS "dead_letters_held", last("dead_letter_bytes") AS '
        '"dead_letter_bytes" FROM "bridge_health" WHERE $timeFilter '
        "GROUP BY time($__interval) fill(previous)",
        "dead_letters_held",
        "dead_letter_bytes",
    )
    live = influxql(
        'SELECT last("age_s") AS "age_s", last("running") AS "running", last("batch_cv") AS '
        '"batch_cv" FROM "live_status" WHERE "unit_id" =~ /^${unit:regex}$/ AND $timeFilter '
        'GROUP BY "unit_id"',
        "time",
        "unit_id",
        "age_s",
        "running",
        "batch_cv",
        table=True,
    )
    gold = sql(
        f"""
        select max(_source_loaded_at) as "gold_loaded_at", max(ended_at) as "newest_batch_end",
            count(*) as "batches"
        from {GOLD_BATCH_RESULTS}
        """,
        "gold_loaded_at",
        "newest_batch_end",
        "batches",
    )
    d = (
        db.Dashboard(b.title)
        .uid(b.uid)
        .tags(["chromatography", "platform"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(tag_variable(b, "unit", "Unit", "unit_id", multi=True).include_all(True))
        .with_panel(b.panel(timeseries.Panel().unit("s"), "Bridge lag (reading to InfluxDB)", lag))
        .with_panel(b.panel(timeseries.Panel(), "Readings written and dead-lettered", flow))
        .with_panel(
            b.panel(timeseries.Panel(), "Dead letters held for audit (31 days, 1 GiB)", held)
        )
        .with_panel(b.panel(table.Panel(), "Live data per unit (age of newest reading, s)", live))
        .with_panel(b.panel(table.Panel(), "Gold freshness", gold))
    )
    b.dashboard = d
    return b


BOARDS: tuple[Callable[[str], Board], ...] = (
    live_run,
    batch_comparison,
    column_performance,
    batch_results,
    platform_health,
)


def to_json(builder: Any) -> dict[str, Any]:
    import json

    return json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
