"""How this project declares its Dagster objects, written once: the sensors run from the
start (they move and watch data; nobody should have to switch them on) and are described by
their docstrings, as assets are; and the asset keys more than one domain under defs/ names,
so the domains import this module and never each other."""

import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg

from chrom_platform.lib.core.tables import Table


def running_sensor(every_s: int) -> Callable[[Callable[..., Any]], dg.SensorDefinition]:
    """`@dg.sensor` named after its function, evaluated at most every `every_s` seconds,
    running by default, its docstring the description the UI shows."""

    def wrap(fn: Callable[..., Any]) -> dg.SensorDefinition:
        return dg.sensor(
            minimum_interval_seconds=every_s,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=inspect.cleandoc(fn.__doc__ or "") or None,
        )(fn)

    return wrap


def asset_key(table: Table) -> dg.AssetKey:
    """A warehouse table's asset key (dbt's or the analytics'): its schema, then its name."""
    return dg.AssetKey(table.path)


#: the live series in InfluxDB (external assets: the live bridge sensor reports them)
LIVE_KEY = dg.AssetKey(["live", "influx_chromatography"])
LIVE_DRIFT_KEY = dg.AssetKey(["live", "influx_drift"])
LIVE_MSPC_KEY = dg.AssetKey(["live", "influx_mspc"])


def landing(name: str) -> dg.AssetKey:
    """A landing asset's key (landing/<name>: readings, batch_events, ...)."""
    return dg.AssetKey(["landing", name])
