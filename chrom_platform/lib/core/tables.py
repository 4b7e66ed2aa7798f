"""The warehouse's tables, as the Python side names them: in SQL (`f"from {GOLD_BATCH_RESULTS}"`),
as Dagster asset keys (`asset_key(GOLD_BATCH_RESULTS)` in defs), in Grafana's queries and in
the tests. Renaming a dbt model is an edit of its SQL and YAML and of its line here; a test
(`unit/test_tables.py`) holds this list to the dbt project and to the tables the analytics
write, and finds any name spelled out anywhere else in the product.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    schema: str
    name: str

    def __str__(self) -> str:
        """The qualified name SQL reads."""
        return f"{self.schema}.{self.name}"

    @property
    def path(self) -> list[str]:
        """The Dagster asset key's path: the schema a model builds in, then its name."""
        return [self.schema, self.name]


# bronze: built by dbt
BRONZE_READINGS = Table("bronze", "bronze_readings")
BRONZE_BATCH_EVENTS = Table("bronze", "bronze_batch_events")
BRONZE_SAMPLE_RESULTS = Table("bronze", "bronze_sample_results")
BRONZE_MASTER_DATA = Table("bronze", "bronze_master_data")

# silver: built by dbt
SILVER_READINGS_CHECKED = Table("silver", "silver_readings_checked")
SILVER_READINGS = Table("silver", "silver_readings")
SILVER_REJECTS = Table("silver", "silver_rejects")
SILVER_BATCH_EVENTS = Table("silver", "silver_batch_events")
SILVER_BATCH_REVISIONS = Table("silver", "silver_batch_revisions")
SILVER_BATCHES = Table("silver", "silver_batches")
SILVER_PHASES = Table("silver", "silver_phases")
SILVER_HOLDS = Table("silver", "silver_holds")
SILVER_SAMPLE_RESULTS = Table("silver", "silver_sample_results")
SILVER_BATCH_LAB_RESULTS = Table("silver", "silver_batch_lab_results")
SILVER_UNITS = Table("silver", "silver_units")
SILVER_RECIPES = Table("silver", "silver_recipes")
SILVER_RECIPE_PHASES = Table("silver", "silver_recipe_phases")

# gold: built by dbt
GOLD_TREND_BY_CV = Table("gold", "gold_trend_by_cv")
GOLD_TREND_BINNED = Table("gold", "gold_trend_binned")
GOLD_PHASE_SUMMARY = Table("gold", "gold_phase_summary")
GOLD_BATCH_RESULTS = Table("gold", "gold_batch_results")

# gold: written by the analytics (lib/analytics/pipeline.py)
GOLD_COLUMN_PERFORMANCE = Table("gold", "gold_column_performance")
GOLD_BATCH_PEAKS = Table("gold", "gold_batch_peaks")
GOLD_GOLDEN_ENVELOPE = Table("gold", "gold_golden_envelope")
GOLD_BATCH_DRIFT = Table("gold", "gold_batch_drift")
GOLD_BATCH_ALARMS = Table("gold", "gold_batch_alarms")
GOLD_BATCH_VERDICT = Table("gold", "gold_batch_verdict")
GOLD_MONITORING_STATE = Table("gold", "gold_monitoring_state")

# gold: written by the multivariate monitoring (lib/analytics/mspc_run.py)
GOLD_MSPC_MODELS = Table("gold", "gold_mspc_models")
GOLD_MSPC_LIMITS = Table("gold", "gold_mspc_limits")
GOLD_MSPC_SCORES = Table("gold", "gold_mspc_scores")
GOLD_MSPC_VERDICT = Table("gold", "gold_mspc_verdict")

#: what the analytics write, in the order they write it
ANALYTICS_TABLES = (
    GOLD_COLUMN_PERFORMANCE,
    GOLD_BATCH_PEAKS,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_VERDICT,
    GOLD_MONITORING_STATE,
)
#: what the multivariate monitoring writes
MSPC_TABLES = (GOLD_MSPC_MODELS, GOLD_MSPC_LIMITS, GOLD_MSPC_SCORES, GOLD_MSPC_VERDICT)
#: what dbt builds (dbt_chrom/models): every model, in its layer's schema
DBT_MODELS = (
    BRONZE_READINGS,
    BRONZE_BATCH_EVENTS,
    BRONZE_SAMPLE_RESULTS,
    BRONZE_MASTER_DATA,
    SILVER_READINGS_CHECKED,
    SILVER_READINGS,
    SILVER_REJECTS,
    SILVER_BATCH_EVENTS,
    SILVER_BATCH_REVISIONS,
    SILVER_BATCHES,
    SILVER_PHASES,
    SILVER_HOLDS,
    SILVER_SAMPLE_RESULTS,
    SILVER_BATCH_LAB_RESULTS,
    SILVER_UNITS,
    SILVER_RECIPES,
    SILVER_RECIPE_PHASES,
    GOLD_TREND_BY_CV,
    GOLD_TREND_BINNED,
    GOLD_PHASE_SUMMARY,
    GOLD_BATCH_RESULTS,
)
