"""Resources, built in one place and selected by one switch (Settings.profile)."""

from __future__ import annotations

import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from chrom_platform.lib.objectstore import ObjectStore, open_store
from chrom_platform.lib.streaming import StreamingConfig
from chrom_platform.lib.warehouse import WarehouseConfig
from chrom_platform.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_chrom"


class LandingStoreResource(dg.ConfigurableResource):
    """The landing zone: a local folder (local profile) or a GCS bucket (gcp profile)."""

    uri: str

    def store(self) -> ObjectStore:
        return open_store(self.uri)


class StreamingResource(dg.ConfigurableResource):
    """The streaming path: the queue (SQLite file or pubsub://project), the InfluxDB the
    live bridge writes to (v1 API, or v2 API when a token is set) and the master data that
    gives each unit's column volume."""

    transport_uri: str
    influx_url: str
    influx_database: str
    equipment_path: str
    recipes_path: str
    influx_token: str | None = None
    influx_org: str | None = None
    influx_username: str | None = None
    influx_password: str | None = None
    envelope_uri: str | None = None
    create_topology: bool | None = None
    max_ahead_s: float = 300.0
    live_stale_after_s: float = 120.0

    def config(self) -> StreamingConfig:
        return StreamingConfig(**{f.name: getattr(self, f.name) for f in fields(StreamingConfig)})


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse dbt builds and the Python checks read: a DuckDB file (dbt target
    `local`) or Snowflake (`prod`, key-pair auth; connection settings from the environment)."""

    target: str
    duckdb_path: str
    landing_uri: str
    snowflake: dict[str, str] = {}  # noqa: RUF012 (pydantic copies defaults)
    #: silver and gold may lag the newest landing data by this many minutes
    max_lag_min: float = 15.0

    def config(self) -> WarehouseConfig:
        return WarehouseConfig(
            target=self.target,
            duckdb_path=self.duckdb_path,
            landing_uri=self.landing_uri,
            snowflake=dict(self.snowflake),
        )


class AnalyticsResource(dg.ConfigurableResource):
    """Where the analytics write their pictures and HTML reports."""

    reports_dir: str


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (the project's venv), whether or not the
    venv is activated; else whatever `dbt` is on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def build_resources(settings: Settings) -> dict[str, Any]:
    # Both profiles use the same resource types; only the URIs differ. The gcp profile's
    # adapters (GCS, Pub/Sub, InfluxDB Cloud, Snowflake) plug in behind these interfaces.
    streaming = settings.streaming()
    return {
        "landing": LandingStoreResource(uri=settings.landing_uri),
        "streaming": StreamingResource(
            **{
                **asdict(streaming),
                # the token stays an environment reference: never shown in the UI or stored
                "influx_token": dg.EnvVar("CHROM_INFLUX_TOKEN") if streaming.influx_token else None,
                "influx_password": (
                    dg.EnvVar("CHROM_INFLUX_PASSWORD") if streaming.influx_password else None
                ),
            },
            live_stale_after_s=settings.live_stale_after_s,
        ),
        "warehouse": WarehouseResource(
            target=settings.dbt_target,
            duckdb_path=str(settings.duckdb_path),
            landing_uri=settings.landing_uri,
            # no secret here (the UI shows resource config): the key's passphrase is read
            # from the environment when connecting
            snowflake=dict(settings.snowflake),
            max_lag_min=settings.warehouse_max_lag_min,
        ),
        "analytics": AnalyticsResource(reports_dir=str(settings.reports_dir)),
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            target=settings.dbt_target,
            dbt_executable=dbt_executable(),
        ),
    }
