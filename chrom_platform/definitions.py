"""The code location: assembles definitions from defs/ and resources from one place."""

import os

import dagster as dg

from chrom_platform.check_config import require
from chrom_platform.defs import analytics, dashboards, landing, streaming, warehouse
from chrom_platform.resources import build_resources
from chrom_platform.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded when Dagster loads the code location, not at import: the environment is read here,
    # and checked for the profile it names (a gcp location never runs on local defaults).
    require(os.environ)
    return dg.Definitions(
        assets=[
            *landing.LANDING_SPECS,
            streaming.LIVE_ASSET,
            streaming.LIVE_DRIFT_ASSET,
            warehouse.chrom_dbt_models,
            *analytics.ANALYTICS_ASSETS,
            *dashboards.DASHBOARD_ASSETS,
        ],
        asset_checks=[
            streaming.live_points_fresh,
            *warehouse.QUALITY_CHECKS,
            *warehouse.FRESHNESS_CHECKS,
        ],
        sensors=[
            landing.landing_sensor,
            streaming.live_bridge_sensor,
            warehouse.warehouse_freshness_sensor,
            warehouse.warehouse_automation_sensor,
        ],
        resources=build_resources(Settings.from_env()),
        # Every computed step here opens the warehouse and takes its single-slot pool, so
        # steps never run side by side anyway: one process per run, not one per step.
        executor=dg.in_process_executor,
    )
