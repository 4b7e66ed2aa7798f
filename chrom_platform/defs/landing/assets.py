"""The landing zone as assets: what the plant (simulator), the lab and the MES write.

Dagster does not produce these objects, so they are external assets (AssetSpec); the
landing sensor reports a materialization whenever new objects appear, which is what lets
downstream assets (dbt bronze onwards) follow by automation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import dagster as dg

from chrom_platform.defs.conventions import landing, running_sensor
from chrom_platform.lib.core.contracts import (
    EVENTS_PREFIX,
    IMPORTS_PREFIX,
    MASTER_DATA_PREFIX,
    READINGS_PREFIX,
    SAMPLES_PREFIX,
)
from chrom_platform.lib.io.objectstore import ObjectStore
from chrom_platform.lib.streaming.config import StreamingConfig
from chrom_platform.resources import LandingStoreResource


@dataclass(frozen=True)
class LandingAsset:
    name: str
    prefix: str
    kind: str
    description: str

    @property
    def key(self) -> dg.AssetKey:
        return landing(self.name)


LANDING_ASSETS = (
    LandingAsset(
        "readings",
        READINGS_PREFIX,
        "parquet",
        "1 Hz sensor readings (chrom.reading.v1) per unit: flow, pressure, UV 280 nm, "
        "conductivity, pH. Parquet, partitioned by unit_id and UTC date; object names are "
        "the seq range they hold, so re-landing the same readings never duplicates them.",
    ),
    LandingAsset(
        "batch_events",
        EVENTS_PREFIX,
        "json",
        "Batch, phase and hold start/end events from the skid's batch controller "
        "(chrom.event.v1), one JSON object per line.",
    ),
    LandingAsset(
        "sample_results",
        SAMPLES_PREFIX,
        "json",
        "Lab results as the instrument exports them: feed titer before the column and pool "
        "concentration after it, with calibration points, regression, scan and retests.",
    ),
    LandingAsset(
        "master_data",
        MASTER_DATA_PREFIX,
        "json",
        "Equipment (units, columns, column volume, resin) and recipe master data snapshots "
        "from the MES. Column volume is read from here, never written as a literal.",
    ),
    LandingAsset(
        "import_reports",
        IMPORTS_PREFIX,
        "json",
        "What each `chrom import` of a plant's files found: files, batches, readings and "
        "lab results landed, and every inference counted with examples (holds found, noise "
        "scans ignored, late labels, unlabelled gaps, scans outside batches, columns and "
        "sample types not used). The newest is shown in this asset's metadata.",
    ),
)

LANDING_SPECS = [
    dg.AssetSpec(
        a.key,
        description=a.description,
        group_name="landing",
        kinds={a.kind, "landing"},
        metadata={"prefix": a.prefix},
    )
    for a in LANDING_ASSETS
]


#: Work per tick for the landing consumer: well inside Dagster's 60 s sensor timeout.
TICK_MAX_MESSAGES = 500_000
TICK_MAX_SECONDS = 25.0


@running_sensor(every_s=30)
def landing_sensor(
    context: dg.SensorEvaluationContext,
    landing: LandingStoreResource,
    streaming: dg.ResourceParam[StreamingConfig],
) -> dg.SensorResult:
    """Lands queued readings from the `landing` subscription as Parquet (bounded work
    per tick), then reports a materialization of each landing asset with new objects."""
    store = landing.store()
    # One sensor both lands the stream and reports what is new in the store (from the
    # stream, a backfill or another writer), so each new object is reported exactly once.
    consumer = streaming.landing_consumer(store)
    try:
        consumed = consumer.drain(TICK_MAX_MESSAGES, TICK_MAX_SECONDS)
    finally:
        consumer.transport.close()
    if consumed.pulled:
        context.log.info(f"landing consumer: {consumed.summary()}")
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    events: list[dg.AssetMaterialization] = []
    new_cursor = dict(cursor)
    for a in LANDING_ASSETS:
        since = cursor.get(a.name, 0)
        total = 0
        total_bytes = 0
        new_keys: list[str] = []
        newest = (since, "")  # the last-landed new object: (mtime, key)
        per_unit: dict[str, int] = defaultdict(int)
        for obj in store.list(a.prefix):
            total += 1
            total_bytes += obj.size
            if obj.mtime_ns > since:
                new_keys.append(obj.key)
                newest = max(newest, (obj.mtime_ns, obj.key))
                for part in obj.key.split("/"):
                    if part.startswith("unit_id="):
                        per_unit[part.removeprefix("unit_id=")] += 1
        if not new_keys:
            continue
        new_cursor[a.name] = newest[0]
        events.append(
            dg.AssetMaterialization(
                asset_key=a.key,
                description=f"{len(new_keys)} new object(s) under {a.prefix}",
                metadata={
                    "new_objects": len(new_keys),
                    "objects": total,
                    "bytes": dg.MetadataValue.int(total_bytes),
                    "new_objects_by_unit": dg.MetadataValue.json(dict(sorted(per_unit.items()))),
                    "latest_object": max(new_keys),
                    "store": store.uri,
                    **(
                        {
                            "streamed_readings_landed": consumed.landed,
                            "streamed_dead_lettered": dg.MetadataValue.json(
                                dict(consumed.dead_lettered)
                            ),
                        }
                        if a.name == "readings" and consumed.pulled
                        else {}
                    ),
                    **(
                        {"newest_report": dg.MetadataValue.json(_report(store, newest[1]))}
                        if a.name == "import_reports"
                        else {}
                    ),
                },
            )
        )
    if not events:
        return dg.SensorResult(skip_reason="no new landing objects", cursor=json.dumps(new_cursor))
    return dg.SensorResult(asset_events=events, cursor=json.dumps(new_cursor))


def _report(store: ObjectStore, key: str) -> dict[str, object]:
    """An import report as it landed (what the import found and inferred)."""
    return {"object": key, **json.loads(store.get(key))}
