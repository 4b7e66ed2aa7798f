"""Shared fixtures: master data, a small simulated history, a real local InfluxDB."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chrom_platform.lib.influx_server import InfluxNotInstalled, LocalInfluxServer, find_influxd
from chrom_platform.lib.master_data import MasterData, load_master_data
from simulator import DEFAULT_EQUIPMENT, DEFAULT_RECIPES
from simulator.landing import DEFAULT_START_NS

# What the tests simulate with: the shipped master data and the fixed default start.
EQUIPMENT, RECIPES, START_NS = DEFAULT_EQUIPMENT, DEFAULT_RECIPES, DEFAULT_START_NS


@pytest.fixture(scope="session")
def md() -> MasterData:
    return load_master_data(EQUIPMENT, RECIPES)


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalInfluxServer]:
    """A real InfluxDB 1.x on a free loopback port, for the whole test session."""
    try:
        find_influxd()
    except InfluxNotInstalled as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have InfluxDB: {e}")
        pytest.skip(str(e))
    srv = LocalInfluxServer(data_dir=Path(tmp_path_factory.mktemp("influxdb"))).start()
    yield srv
    srv.stop()
