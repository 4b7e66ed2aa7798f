"""Materializing the whole asset graph without the UI, the one way `chrom evaluate`, the
headless demo and the demo's first build all do it: landing -> bronze -> silver -> gold ->
analytics -> the dashboards' snapshot, in one in-process run on the given instance."""

from __future__ import annotations

from typing import Any

import dagster as dg

from chrom_platform.settings import Settings


def buildable_assets() -> list[Any]:
    from chrom_platform.defs import analytics, dashboards, landing, warehouse

    return [
        *landing.LANDING_SPECS,
        warehouse.chrom_dbt_models,
        *analytics.ANALYTICS_ASSETS,
        dashboards.warehouse_snapshot,
    ]


def build_everything(
    settings: Settings, instance: dg.DagsterInstance, *, raise_on_error: bool = False
) -> dg.ExecuteInProcessResult:
    from chrom_platform.resources import build_resources

    return dg.materialize(
        buildable_assets(),
        resources=build_resources(settings),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key or "?" for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
