"""Resources, built in one place and selected by one switch (Settings.profile)."""

from __future__ import annotations

import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging.version import Version

from chrom_platform.lib.io.objectstore import ObjectStore, open_store
from chrom_platform.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_chrom"


class LandingStoreResource(dg.ConfigurableResource):
    """The landing zone: a local folder (local profile) or a GCS bucket (gcp profile)."""

    uri: str

    def store(self) -> ObjectStore:
        return open_store(self.uri)


class AnalyticsResource(dg.ConfigurableResource):
    """Where the analytics write their pictures and HTML reports."""

    reports_dir: str


def dbt_beside_interpreter() -> Path:
    """Where the project's venv installs dbt, beside this interpreter."""
    return Path(sys.executable).parent / "dbt"


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), whether or not the
    venv is activated; else whatever `dbt` is on PATH."""
    beside = dbt_beside_interpreter()
    return str(beside) if beside.exists() else "dbt"


class DbtCoreCliResource(DbtCliResource):
    """dagster-dbt's dbt resource without two costs it pays before every dbt step, 4.6 s of
    CPU a step here (more than a one-batch incremental build's own models take):

    - it runs `dbt --version` to tell dbt Core from Fusion (3.1 s: the command loads every
      installed adapter, Snowflake's included). The dbt we run is the one installed beside
      this interpreter (`dbt_executable`), so its version is the installed dbt-core
      package's; a dbt found elsewhere on PATH is still asked.
    - it opens a dbt adapter in this process (1.5 s: imports dbt, loads its macros) only
      to fetch row counts and column metadata, which these assets never ask for. Without
      one, dagster-dbt streams dbt's events as they come (as it does for Fusion) instead of
      holding them until dbt exits."""

    @cached_property
    def _cli_version(self) -> Version:
        if Path(self.dbt_executable) == dbt_beside_interpreter():
            return Version(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Any) -> Any:
        return None


def build_resources(settings: Settings) -> dict[str, Any]:
    """The resources of both profiles: the same types, only the URIs differ (the gcp
    profile's adapters, GCS, Pub/Sub, InfluxDB Cloud and Snowflake, plug in behind the same
    interfaces). The streaming and warehouse configs are handed to the assets as they are
    (`dg.ResourceParam`): one shape per configuration, declared where it is used. Being
    plain values, not resource config, they are never shown in the UI nor stored with runs,
    so the InfluxDB password and token stay out of both."""
    return {
        "landing": LandingStoreResource(uri=settings.landing_uri),
        "streaming": settings.streaming,
        "warehouse": settings.warehouse,
        "analytics": AnalyticsResource(reports_dir=str(settings.reports_dir)),
        "dbt": DbtCoreCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            target=settings.warehouse.target,
            dbt_executable=dbt_executable(),
        ),
    }
