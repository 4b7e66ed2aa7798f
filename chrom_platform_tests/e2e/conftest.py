"""End-to-end fixtures shared across modules."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from chrom_platform_tests.e2e.analytics_history import land_clean, land_faulty, materialize
from chrom_platform_tests.warehouse_helpers import History


@pytest.fixture(scope="session")
def built(
    md, tmp_path_factory
) -> Iterator[tuple[History, dg.ExecuteInProcessResult, dg.DagsterInstance]]:
    """The analytics history, materialized once for the session: on the clean history
    (kept as h.runs["clean"]), then with one faulty batch per unit landed after it."""
    h = History(tmp_path_factory.mktemp("analytics"), md)
    land_clean(h)
    # a persistent instance (a DAGSTER_HOME on disk): the browser test serves it in the UI
    with dg.instance_for_test(temp_dir=str(h.root)) as instance:
        h.runs["clean"] = materialize(h, instance)
        land_faulty(h)
        yield h, materialize(h, instance), instance
