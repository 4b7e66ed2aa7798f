"""Shared fixtures: master data, a small simulated history, a real local InfluxDB."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chrom_platform.lib.core.master_data import MasterData, load_master_data
from chrom_platform.local.influx_server import InfluxNotInstalled, LocalInfluxServer, find_influxd
from simulator import DEFAULT_EQUIPMENT, DEFAULT_RECIPES
from simulator.landing import DEFAULT_START_NS

# Tiers by folder: unit/ (pure functions), simulator/, contract/ (every adapter pair), e2e/
# (real servers). `make test-fast` leaves e2e out, so the marker follows the folder, not each
# file's memory of it.
TIER_MARKERS = {"e2e": pytest.mark.e2e}


#: Files that take a minute or more (measured in CI, docs/benchmarks.md): `make test` runs two
#: workers by file, and a worker that draws one of these last finishes minutes after the
#: other. Started first, the short files fill in around them. Order only: nothing is skipped.
LONG_FIRST = (
    "test_dagster_analytics.py",  # with the other two of SHARED_WORKER: one unit
    "test_grafana_queries.py",
    "test_dagster_mspc.py",
    "test_warehouse_convergence.py",
    "test_warehouse_concurrency.py",
    "test_chaos.py",
    "test_demo_headless.py",
    "test_demo.py",
    "test_dagster_warehouse.py",
    "test_streaming.py",
    "test_warehouse_dbt.py",
    "test_readme_import.py",
    "test_warehouse_snowflake.py",
    "test_import_round_trip.py",
    "test_systematic_findings.py",
)


#: Files that share a session fixture too costly to build twice (the analytics history, two
#: Dagster materializations: about a minute): one work unit, so one worker builds it once.
#: Under `--dist loadfile` each file is otherwise its own unit and may land on either worker.
SHARED_WORKER = dict.fromkeys(
    ("test_dagster_analytics.py", "test_grafana_queries.py", "test_dagster_mspc.py"),
    "the analytics history (e2e/conftest.py: built)",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the files of `SHARED_WORKER` as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return SHARED_WORKER.get(file.rsplit("/", 1)[-1], file)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = TIER_MARKERS.get(item.path.parent.name)
        if marker is not None:
            item.add_marker(marker)
    # stable: a file's tests keep their order and stay together (module fixtures)
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
    # The server runs with authentication: what the tests start (chrom-bridge, Dagster
    # resources, Settings.from_env) finds its admin where the demo puts it, in the
    # environment. Other servers a test starts set their own.
    saved = {k: os.environ.get(k) for k in ("CHROM_INFLUX_USER", "CHROM_INFLUX_PASSWORD")}
    os.environ["CHROM_INFLUX_USER"] = srv.admin.username
    os.environ["CHROM_INFLUX_PASSWORD"] = srv.admin.password
    yield srv
    srv.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
