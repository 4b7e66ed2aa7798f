from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from chrom_platform_tests.conftest import START_NS
from simulator.landing import backfill


@dataclass
class History:
    landing: Path
    truth_dir: Path
    truth: list[dict[str, Any]]

    def readings(self):
        files = sorted((self.landing / "landing" / "readings").rglob("*.parquet"))
        import pyarrow as pa

        return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas() if files else None

    def events(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted((self.landing / "landing" / "batch_events").rglob("*.json")):
            out.extend(json.loads(line) for line in f.read_text().splitlines() if line)
        return out


@pytest.fixture(scope="session")
def history(md, tmp_path_factory) -> History:
    """3 units x 4 batches, half of them faulty: landed files plus ground truth."""
    root = tmp_path_factory.mktemp("history")
    res = backfill(
        landing=str(root / "lake"),
        truth_dir=root / "truth",
        units=3,
        batches_per_unit=4,
        seed=11,
        fault_rate=0.5,
        start_ns=START_NS,
        workers=1,
    )
    return History(root / "lake", root / "truth", res.truth)
