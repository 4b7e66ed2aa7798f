"""Alert rules as code: what should page a process engineer, and what should page the
platform's owner.

- drift out of envelope during a run: the live bridge's persistence alarm (10 readings
  outside the golden envelope) on any signal of a running batch;
- live data stale for a running unit: the bridge writes every known unit's reading age
  (`live_status`), so a unit whose batch is still running and has gone quiet is a number;
- bridge silent: no `bridge_health` point at all (the bridge itself stopped);
- column HETP or asymmetry beyond limits, permeability below its baseline: the column
  alarms of each unit's latest analysed batch in the warehouse.

Each rule is data query -> reduce -> threshold (Grafana server-side expressions), grouped
per unit (and batch) so one alert instance names one unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting as al
from grafana_foundation_sdk.builders import expr
from grafana_foundation_sdk.models import alerting as am

from chrom_platform.grafana.boards import FOLDER, influxql, sql, to_json
from chrom_platform.grafana.queries import INFLUX_UID, WAREHOUSE_UID, Query
from chrom_platform.lib.core.tables import GOLD_BATCH_ALARMS, GOLD_BATCH_RESULTS
from chrom_platform.lib.streaming.config import StreamingConfig

EXPR_UID = "__expr__"
Cmp = Literal["gt", "lt"]


@dataclass(frozen=True)
class RuleSpec:
    uid: str
    title: str
    group: str
    query: Query
    #: the query's value column Grafana reduces and compares (the others become labels)
    value: str
    reducer: Literal["last", "max", "count", "sum"]
    cmp: Cmp
    threshold: float
    window_s: int
    for_: str
    severity: Literal["critical", "warning"]
    summary: str
    no_data: Literal["OK", "Alerting", "NoData"] = "OK"


def _latest_batch_alarms(sources: str, alias: str) -> str:
    """Per unit, the number of alarms of these sources on its latest batch (by start time)."""
    return f"""
        with ranked as (
            select unit_id, batch_id, row_number() over (
                partition by unit_id order by started_at desc nulls last, batch_id desc
            ) as rn
            from {GOLD_BATCH_RESULTS}
        ),
        latest as (
            select unit_id, batch_id from ranked where rn = 1
        )
        select latest.unit_id as "unit_id", count(alarms.batch_id) as "{alias}"
        from latest
        left join {GOLD_BATCH_ALARMS} as alarms
            on alarms.batch_id = latest.batch_id and alarms.source in ({sources})
        group by latest.unit_id
        """


def rule_specs() -> tuple[RuleSpec, ...]:
    stale_s = StreamingConfig.live_stale_after_s  # the Dagster live freshness check's window too
    return (
        RuleSpec(
            "chrom-drift-out-of-envelope",
            "Batch drifting out of the golden envelope",
            "chrom-live",
            influxql(
                'SELECT max("alarm") AS "alarm" FROM "drift" WHERE $timeFilter '
                'GROUP BY time(30s), "unit_id", "batch_id" fill(none)',
                "alarm",
            ),
            "alarm",
            "max",
            "gt",
            0,
            120,
            "0s",
            "critical",
            "{{ $labels.unit_id }} batch {{ $labels.batch_id }}: a signal has stayed outside "
            "the golden envelope (live drift alarm). Open the Live run dashboard.",
        ),
        RuleSpec(
            "chrom-live-data-stale",
            "Live data stale for a running unit",
            "chrom-live",
            influxql(
                'SELECT last("age_s") AS "age_s" FROM "live_status" WHERE "running" = 1 '
                'AND $timeFilter GROUP BY time(30s), "unit_id" fill(none)',
                "age_s",
            ),
            "age_s",
            "last",
            "gt",
            stale_s,
            600,
            "1m",
            "warning",
            "{{ $labels.unit_id }} is running a batch but its newest reading is "
            "{{ $values.B }} s old: check the skid's connection and the queue.",
        ),
        RuleSpec(
            "chrom-bridge-silent",
            "Live bridge silent",
            "chrom-live",
            influxql(
                'SELECT count("pulled") AS "reports" FROM "bridge_health" WHERE $timeFilter',
                "reports",
            ),
            "reports",
            "last",
            "lt",
            1,
            300,
            "5m",
            "critical",
            "No health report from the live bridge for 5 minutes: live trends and live "
            "drift have stopped.",
            no_data="Alerting",
        ),
        RuleSpec(
            "chrom-column-beyond-limits",
            "Column HETP, asymmetry or permeability beyond limits",
            "chrom-column",
            sql(_latest_batch_alarms("'column'", "column_alarms"), "unit_id", "column_alarms"),
            "column_alarms",
            "last",
            "gt",
            0,
            3600,
            "0s",
            "warning",
            "{{ $labels.unit_id }}: the latest batch's column performance is beyond its "
            "limits (HETP, asymmetry or permeability). See Column performance.",
        ),
        RuleSpec(
            "chrom-batch-result-failed",
            "Latest batch: breakthrough, out of spec or a failed batch result",
            "chrom-column",
            sql(
                _latest_batch_alarms("'breakthrough', 'result', 'spec'", "result_alarms"),
                "unit_id",
                "result_alarms",
            ),
            "result_alarms",
            "last",
            "gt",
            0,
            3600,
            "0s",
            "critical",
            "{{ $labels.unit_id }}: the latest batch broke through in load, ran out of its "
            "recipe's specifications, or failed its batch result (step yield, pool). See "
            "Batch results.",
        ),
    )


def _rule(spec: RuleSpec, profile: str) -> al.Rule:
    data_uid = INFLUX_UID if spec.query.kind == "influxql" else WAREHOUSE_UID
    window = am.RelativeTimeRange(from_val=spec.window_s, to=0)
    return (
        al.Rule(spec.title)
        .uid(spec.uid)
        .condition("C")
        .with_query(
            al.Query("A")
            .datasource_uid(data_uid)
            .relative_time_range(window)
            .model(spec.query.target("A", profile))
        )
        .with_query(
            al.Query("B")
            .datasource_uid(EXPR_UID)
            .model(expr.TypeReduce().ref_id("B").expression("A").reducer(spec.reducer))
        )
        .with_query(
            al.Query("C")
            .datasource_uid(EXPR_UID)
            .model(
                expr.TypeThreshold()
                .ref_id("C")
                .expression("B")
                .conditions(
                    [
                        expr.ExprTypeThresholdConditions().evaluator(
                            expr.ExprTypeThresholdConditionsEvaluator()
                            .type(spec.cmp)
                            .params([spec.threshold])
                        )
                    ]
                )
            )
        )
        .for_val(spec.for_)
        .no_data_state(spec.no_data)
        .exec_err_state("Error")
        .labels({"severity": spec.severity, "team": "process-engineering"})
        .annotations({"summary": spec.summary})
    )


def rule_groups(profile: str) -> dict[str, Any]:
    """Grafana's alert-rule provisioning file (apiVersion 1), one group per concern."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for spec in rule_specs():
        rule = to_json(_rule(spec, profile))
        # the API's placement fields: the provisioning file places rules by group instead
        for key in ("folderUID", "ruleGroup", "orgID"):
            rule.pop(key, None)
        groups.setdefault(spec.group, []).append(rule)
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": name, "folder": FOLDER, "interval": "30s", "rules": rules}
            for name, rules in groups.items()
        ],
    }
