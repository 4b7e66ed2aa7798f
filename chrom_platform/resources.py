"""Resources, built in one place and selected by one switch (Settings.profile)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

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


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), whether or not the
    venv is activated; else whatever `dbt` is on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


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
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            target=settings.warehouse.target,
            dbt_executable=dbt_executable(),
        ),
    }
