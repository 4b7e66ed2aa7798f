"""The analytics end-to-end history, shared by the analytics and the dashboard tests: a clean
history and one faulty batch per unit, landing -> dbt -> analytics through Dagster on a
temporary DuckDB (built once per session, see conftest.py): materialized once on the clean
history (kept as `h.runs["clean"]`), then again after the faulty batches land."""

from __future__ import annotations

import dagster as dg

from chrom_platform.defs.analytics import assets as analytics
from chrom_platform.defs.landing import assets as landing
from chrom_platform.defs.multivariate import assets as multivariate
from chrom_platform.defs.warehouse import dbt as warehouse
from chrom_platform.resources import build_resources
from chrom_platform_tests.conftest import START_NS
from chrom_platform_tests.warehouse_helpers import DAY_NS, History

#: per unit: more than the envelope's and the multivariate model's min_batches, so the last
#: clean ones are judged by both
CLEAN_BATCHES = 14
FAULT = "wrong_buffer"


def materialize(h: History, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [
            *landing.LANDING_SPECS,
            warehouse.chrom_dbt_models,
            *analytics.ANALYTICS_ASSETS,
            multivariate.batch_mspc,
        ],
        resources=build_resources(h.settings()),
        instance=instance,
    )


def land_clean(h: History) -> None:
    h.land(units=2, batches_per_unit=CLEAN_BATCHES, seed=5, fault_rate=0.0)


def land_faulty(h: History) -> None:
    h.land(
        units=2,
        batches_per_unit=1,
        seed=5,
        fault_rate=1.0,
        fault_kinds=[FAULT],
        first_batch=CLEAN_BATCHES,
        start_ns=START_NS + (CLEAN_BATCHES + 2) * DAY_NS,
    )
