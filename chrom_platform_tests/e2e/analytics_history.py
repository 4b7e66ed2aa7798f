"""The analytics end-to-end history, shared by the analytics and the dashboard tests: a clean
history and one faulty batch per unit, landing -> dbt -> analytics through Dagster on a
temporary DuckDB (built once per session, see conftest.py)."""

from __future__ import annotations

import dagster as dg

from chrom_platform.defs.analytics import assets as analytics
from chrom_platform.defs.landing import assets as landing
from chrom_platform.defs.warehouse import dbt as warehouse
from chrom_platform.resources import build_resources
from chrom_platform_tests.conftest import START_NS
from chrom_platform_tests.warehouse_helpers import DAY_NS, History

CLEAN_BATCHES = 12  # per unit: more than min_batches, so the last ones are judged
FAULT = "wrong_buffer"


def materialize(h: History, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*landing.LANDING_SPECS, warehouse.chrom_dbt_models, *analytics.ANALYTICS_ASSETS],
        resources=build_resources(h.settings()),
        instance=instance,
    )


def land_history(h: History) -> None:
    h.land(units=2, batches_per_unit=CLEAN_BATCHES, seed=5, fault_rate=0.0)
    h.land(
        units=2,
        batches_per_unit=1,
        seed=5,
        fault_rate=1.0,
        fault_kinds=[FAULT],
        first_batch=CLEAN_BATCHES,
        start_ns=START_NS + (CLEAN_BATCHES + 2) * DAY_NS,
    )
