"""Is live data arriving for every unit that is running a batch?

A unit is running when its newest landed batch event of type `batch_start` has no matching
`batch_end`. For each running unit the newest point in InfluxDB must be younger than the
window; a unit with no point at all since its batch started counts from the start. Used by
the Dagster freshness check of the live asset (chrom_platform/defs/streaming).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from chrom_platform.lib.core.contracts import EVENTS_PREFIX, INFLUX_MEASUREMENT, iso_to_ns
from chrom_platform.lib.io.influx import InfluxSink
from chrom_platform.lib.io.objectstore import ObjectStore


@dataclass
class LiveFreshness:
    window_s: float
    running: dict[str, str] = field(default_factory=dict)  # unit -> batch_id
    age_s: dict[str, float | None] = field(default_factory=dict)  # unit -> newest point age
    stale: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.stale

    def describe(self) -> str:
        if not self.running:
            return "no unit is running a batch"
        if self.passed:
            return f"live points within {self.window_s:.0f} s for all {len(self.running)} running units"
        return "no live point within {:.0f} s for running unit(s): {}".format(
            self.window_s, ", ".join(self.stale)
        )


def running_batches(store: ObjectStore) -> dict[str, tuple[str, int]]:
    """unit -> (batch_id, start ts ns) for units whose newest batch has started, not ended.
    Reads only each unit's newest date partition of events."""
    out: dict[str, tuple[str, int]] = {}
    for unit_dir in store.children(EVENTS_PREFIX):
        unit_id = unit_dir.removeprefix("unit_id=")
        dates = store.children(f"{EVENTS_PREFIX}/{unit_dir}")
        if not dates:
            continue
        starts: dict[str, int] = {}
        ended: set[str] = set()
        for obj in store.list(f"{EVENTS_PREFIX}/{unit_dir}/{dates[-1]}"):
            for line in store.get(obj.key).splitlines():
                if not line.strip():
                    continue
                e = json.loads(line)
                if e.get("event_type") == "batch_start":
                    starts[e["batch_id"]] = iso_to_ns(e["ts"])
                elif e.get("event_type") == "batch_end":
                    ended.add(e["batch_id"])
        open_batches = {b: t for b, t in starts.items() if b not in ended}
        if open_batches:
            batch_id = max(open_batches, key=lambda b: open_batches[b])
            out[unit_id] = (batch_id, open_batches[batch_id])
    return out


def check_live_freshness(
    store: ObjectStore, sink: InfluxSink, window_s: float, now_ns: int | None = None
) -> LiveFreshness:
    now_ns = time.time_ns() if now_ns is None else now_ns
    res = LiveFreshness(window_s)
    running = running_batches(store)
    if not running:
        return res
    last: dict[str, int] = {}
    for s in sink.query(
        f'SELECT last("seq") FROM "{INFLUX_MEASUREMENT}" WHERE time > now() - 7d GROUP BY "unit_id"'
    ):
        last[s["tags"]["unit_id"]] = int(s["values"][0][0])
    for unit_id, (batch_id, start_ns) in sorted(running.items()):
        res.running[unit_id] = batch_id
        newest = max(last.get(unit_id, start_ns), start_ns)
        age = (now_ns - newest) / 1e9
        res.age_s[unit_id] = round(age, 1) if unit_id in last else None
        if age > window_s:
            res.stale.append(unit_id)
    return res
