"""Resources, built in one place and selected by one switch (Settings.profile)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from chrom_platform.lib.objectstore import ObjectStore, open_store
from chrom_platform.settings import Settings


class LandingStoreResource(dg.ConfigurableResource):
    """The landing zone: a local folder (local profile) or a GCS bucket (gcp profile)."""

    uri: str

    def store(self) -> ObjectStore:
        return open_store(self.uri)


def build_resources(settings: Settings) -> dict[str, Any]:
    # Both profiles use the same resource types; only the URIs differ. The gcp profile's
    # adapters (GCS, Pub/Sub, InfluxDB Cloud, Snowflake) plug in behind these interfaces.
    return {"landing": LandingStoreResource(uri=settings.landing_uri)}
