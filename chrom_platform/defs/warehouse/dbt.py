"""dbt_chrom's seeds and models as Dagster assets, its data tests as asset checks.

Keys are `<layer>/<model>` (bronze, silver, gold: the schema each model builds in) and groups
are the layers; dbt sources map to the landing assets through their `meta.dagster.asset_key`,
so lineage runs landing -> bronze -> silver -> gold. Every model follows its upstream by
declarative automation (eager: run when an upstream updated, never while one is running,
never twice at once), and every run of the dbt assets takes the warehouse pool's single
slot, so concurrent runs queue instead of colliding on the DuckDB file.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from chrom_platform.lib.io.warehouse import WAREHOUSE_POOL, WarehouseConfig
from chrom_platform.resources import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` the manifest is rebuilt from the project at load (dbt parse); elsewhere
# it is prepared once (scripts/bootstrap.sh runs `dagster-dbt project prepare-and-package`).
dbt_project.prepare_if_dev()


class ChromDbtTranslator(DagsterDbtTranslator):
    """Keys and groups by layer, automation for every model."""

    @staticmethod
    def layer(props: Mapping[str, Any]) -> str:
        return str(props.get("config", {}).get("schema") or "warehouse")

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)  # the landing asset (meta)
        return dg.AssetKey([self.layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return self.layer(dbt_resource_props)

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] == "seed":
            # A seed has no upstream to wait for: build it while missing (on_missing would
            # skip an asset already missing at the first evaluation, leaving every model
            # after it waiting), unless a build is running or the last one failed.
            return (
                dg.AutomationCondition.missing()
                & ~dg.AutomationCondition.in_progress()
                & ~dg.AutomationCondition.execution_failed()
            ) | dg.AutomationCondition.code_version_changed()
        return dg.AutomationCondition.eager()


TRANSLATOR = ChromDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=TRANSLATOR,
    pool=WAREHOUSE_POOL,
)
def chrom_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: dg.ResourceParam[WarehouseConfig],
) -> Iterator[Any]:
    """`dbt build` of the selected models: seeds, models, data tests and unit tests, on the
    warehouse the settings name (DuckDB file locally, Snowflake for the gcp profile)."""
    cfg = warehouse
    cfg.prepare()
    yield from dbt.cli(["build", "--vars", json.dumps(cfg.dbt_vars())], context=context).stream()
