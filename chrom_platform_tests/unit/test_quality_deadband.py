"""The phase range check on a compressed record: a settled level outside its buffer's range
only within the record's deadband is not judged (and said); beyond it, it fails as before."""

from __future__ import annotations

from pathlib import Path

import duckdb

from chrom_platform.lib.analytics.quality import phase_sensor_ranges
from chrom_platform.lib.core.tables import GOLD_TREND_BY_CV, SILVER_BATCHES, SILVER_RECIPE_PHASES
from chrom_platform.lib.io.warehouse import WarehouseConfig


def _warehouse(tmp_path: Path, deadbands: str | None) -> WarehouseConfig:
    """Two batches' Storage phase (range 0.475-0.525 mS/cm), settled at 0.53 and 0.60."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema gold")
        con.execute("create schema silver")
        con.execute(
            f"create table {GOLD_TREND_BY_CV} as "
            "select b.batch_id, 'R' as recipe, 'Storage' as phase, i / 100.0 as phase_cv, "
            "false as is_hold, b.cond as cond_ms_cm, 7.0 as ph, "
            "timestamp '2026-01-01' as _source_loaded_at "
            "from (values ('B1', 0.53), ('B2', 0.60)) as b(batch_id, cond), range(400) as t(i)"
        )
        con.execute(
            f"create table {SILVER_RECIPE_PHASES} as select 'R' as recipe, "
            "'Storage' as phase, 0.0 as gradient_cv, 0.475 as buffer_cond_min_ms_cm, "
            "0.525 as buffer_cond_max_ms_cm, 6.9 as buffer_ph_min, 7.1 as buffer_ph_max, "
            "'STORAGE' as buffer"
        )
        con.execute(
            f"create table {SILVER_BATCHES} as select batch_id, ? as record_deadbands "
            "from (values ('B1'), ('B2')) as b(batch_id)",
            [deadbands],
        )
    return WarehouseConfig(target="local", duckdb_path=str(path), landing_uri=str(tmp_path))


def test_a_level_within_the_deadband_of_its_range_is_not_judged(tmp_path: Path) -> None:
    with _warehouse(tmp_path, '{"cond_ms_cm": 0.05}').connect() as wh:
        r = phase_sensor_ranges(wh)
    assert not r.passed
    assert r.offending_batches == ["B2"]  # 0.60 is beyond 0.525 + 0.05
    assert r.metadata["cannot_judge"] == [{"batch_id": "B1", "phase": "Storage"}]
    assert "1 phase(s) outside their range only within the record's historian deadband" in (
        r.description
    )
    # the same levels on an uncompressed record: both out of spec
    with _warehouse(tmp_path / "plain", None).connect() as wh:
        r = phase_sensor_ranges(wh)
    assert r.offending_batches == ["B1", "B2"]
    assert r.metadata["cannot_judge"] == []
