"""dbt_chrom's seeds and models as Dagster assets, its data tests as asset checks.

Keys are `<layer>/<model>` (bronze, silver, gold: the schema each model builds in) and groups
are the layers; dbt sources map to the landing assets through their `meta.dagster.asset_key`,
so lineage runs landing -> bronze -> silver -> gold. Every model follows its upstream by
declarative automation (eager: run when an upstream updated, never while one is running,
never twice at once), and every run of the dbt assets takes the warehouse pool's single
slot, so concurrent runs queue instead of colliding on the DuckDB file.
"""

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from chrom_platform.lib.io.landing import finish_staged
from chrom_platform.lib.io.warehouse import DBT_BUILD, WAREHOUSE_POOL, WarehouseConfig
from chrom_platform.resources import (
    DBT_PROJECT_DIR,
    DbtCoreCliResource,
    LandingStoreResource,
    dbt_executable,
)

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def prepare_if_dev(project: DbtProject) -> None:
    """`DbtProject.prepare_if_dev` with the dbt installed beside this interpreter: under
    `dagster dev` and `dg check defs` the manifest is rebuilt from the project at load (dbt
    parse); elsewhere it is prepared once (scripts/bootstrap.sh runs `dagster-dbt project
    prepare-and-package`). dagster-dbt's own runs `dbt` from PATH, which a venv that is
    not activated does not put there (`.venv/bin/dg check defs` failed to load)."""
    if not project.preparer.using_dagster_dev():
        return
    dbt = DbtCoreCliResource(
        project_dir=str(project.project_dir),
        profiles_dir=str(project.profiles_dir),
        dbt_executable=dbt_executable(),
    )
    dbt.cli(["parse", "--quiet"], target_path=project.target_path).wait()


prepare_if_dev(dbt_project)


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


#: what a dbt step logs when it has the warehouse file to itself, and when it lets it go
WAREHOUSE_HELD = "holding the warehouse file"
WAREHOUSE_RELEASED = "releasing the warehouse file"

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
    landing: LandingStoreResource,
) -> Iterator[Any]:
    """`dbt build` of the selected models: seeds, models and data tests (unit tests belong to
    code changes, see DBT_BUILD), on the warehouse the settings name (DuckDB file locally,
    Snowflake for the gcp profile)."""
    # an import killed after its commit has part of its objects in place: publish the rest
    # first, so this build sees all of it (one uncommitted is invisible until it commits)
    completed = finish_staged(landing.store())
    if completed:
        context.log.warning(f"published {len(completed)} object(s) an interrupted import left")
    cfg = warehouse
    cfg.prepare()
    with (
        parse_reused(cfg, context.run.run_id) as target,
        cfg.exclusive(on_wait=context.log.warning),
    ):
        context.log.info(WAREHOUSE_HELD)
        args = [*DBT_BUILD, "--vars", json.dumps(cfg.dbt_vars())]
        yield from dbt.cli(args, context=context, target_path=target).stream()
        context.log.info(WAREHOUSE_RELEASED)


#: dbt's own name for its parse state, in the target folder of a run
PARTIAL_PARSE = "partial_parse.msgpack"
#: the newest run folders kept beside the warehouse (compiled SQL, run_results.json to read)
KEEP_RUNS = 3


@contextmanager
def parse_reused(cfg: WarehouseConfig, run_id: str) -> Iterator[Path | None]:
    """A target folder for one dbt run, seeded with the parse state the last run on this
    warehouse left. dbt re-parses the whole project (4-5 s here) unless the state's vars and
    profile match its own, and dagster-dbt seeds each run only from the project's target
    folder, parsed with other paths: so every run paid the full parse. Keyed by the settings
    dbt hashes (target and vars); dbt checks the project's files itself and parses again
    when one changed. Local warehouses only (the folder sits beside the DuckDB file); None
    elsewhere, dagster-dbt's own default."""
    if cfg.target != "local":
        yield None
        return
    state = Path(cfg.duckdb_path).parent / ".dbt"
    key = hashlib.sha256(json.dumps([cfg.target, cfg.dbt_vars()]).encode()).hexdigest()[:16]
    saved = state / f"{key}.msgpack"
    target = state / "runs" / f"{time.time_ns()}-{run_id[:8]}"
    target.mkdir(parents=True)
    if saved.exists():
        shutil.copyfile(saved, target / PARTIAL_PARSE)
    yield target
    if (target / PARTIAL_PARSE).exists():  # atomic: concurrent runs never read half a file
        tmp = saved.with_name(f".{saved.name}.{uuid.uuid4().hex}")
        shutil.copyfile(target / PARTIAL_PARSE, tmp)
        os.replace(tmp, saved)
    for old in sorted((state / "runs").iterdir())[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
