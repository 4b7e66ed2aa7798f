from __future__ import annotations

import pytest

from chrom_platform_tests.conftest import START_NS
from chrom_platform_tests.warehouse_helpers import History
from simulator.landing import backfill


@pytest.fixture(scope="session")
def history(md, tmp_path_factory) -> History:
    """3 units x 4 batches, half of them faulty, landed by `chrom-sim backfill`'s own code
    (truth files written apart from the landing zone)."""
    h = History(tmp_path_factory.mktemp("history"), md)
    res = backfill(
        landing=str(h.lake),
        truth_dir=h.truth_dir,
        units=3,
        batches_per_unit=4,
        seed=11,
        fault_rate=0.5,
        start_ns=START_NS,
        workers=1,
    )
    h.truths.extend(res.truth)
    return h
