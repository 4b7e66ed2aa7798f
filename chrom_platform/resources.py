"""Resources, built in one place and selected by one switch (Settings.profile)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import dagster as dg

from chrom_platform.lib.objectstore import ObjectStore, open_store
from chrom_platform.lib.streaming import StreamingConfig
from chrom_platform.settings import Settings


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
    live_stale_after_s: float = 120.0

    def config(self) -> StreamingConfig:
        return StreamingConfig(**{f.name: getattr(self, f.name) for f in fields(StreamingConfig)})


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
            },
            live_stale_after_s=settings.live_stale_after_s,
        ),
    }
