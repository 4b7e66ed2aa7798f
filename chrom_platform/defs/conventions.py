"""How this project declares its Dagster objects, written once: the sensors run from the
start (they move and watch data; nobody should have to switch them on) and are described by
their docstrings, as assets are."""

import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg


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
