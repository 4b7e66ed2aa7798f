"""The analytics checks say when they cannot judge: never "inside its envelope" without one."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from chrom_platform.defs.analytics.assets import drift_check
from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    SILVER_RECIPES,
)
from chrom_platform.lib.io.warehouse import WarehouseConfig


def _warehouse(
    tmp_path: Path, drift_verdicts: list[tuple[str, str]], c1_envelope: str = "none"
) -> WarehouseConfig:
    """Two units, each with its latest batch (by start time) and drift verdicts per batch;
    C1's unit has 3 released batches of its own (judged with `c1_envelope`)."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema gold")
        con.execute(
            f"create table {GOLD_BATCH_RESULTS} as select * from (values "
            "('U1', 'R1', 'B9', 'complete', timestamp '2026-01-01'), "
            "('U1', 'R1', 'B48', 'complete', timestamp '2026-03-01'), "
            "('U2', 'R1', 'C1', 'complete', timestamp '2026-02-01')) "
            "as t(unit_id, recipe, batch_id, status, started_at)"
        )
        con.execute(
            f"create table {GOLD_BATCH_VERDICT} as select * from (values "
            "('B9', 9, 'own'), ('B48', 12, 'own'), ('C1', 3, ?)) "
            "as t(batch_id, reference_batches, envelope)",
            [c1_envelope],
        )
        con.execute(
            f"create table {GOLD_BATCH_DRIFT} (batch_id varchar, unit_id varchar, "
            "signal varchar, verdict varchar, first_out_phase varchar, first_out_phase_cv "
            "double, first_out_cv double, alarm_cv double, alarm_phase varchar, max_abs_z "
            "double, fraction_outside double)"
        )
        con.execute("create schema silver")
        con.execute(
            f"create table {SILVER_RECIPES} as select 'R1' as recipe, "
            "null::int as envelope_min_batches, null::int as envelope_window, "
            "null::double as envelope_z_limit, null::int as envelope_persistence"
        )
        for bid, verdict in drift_verdicts:
            con.execute(
                f"insert into {GOLD_BATCH_DRIFT} (batch_id, signal, verdict) values (?, 'ph', ?)",
                [bid, verdict],
            )
    return WarehouseConfig(target="local", duckdb_path=str(path), landing_uri=str(tmp_path))


def test_a_unit_without_an_envelope_is_a_warning_that_says_so(tmp_path) -> None:
    cfg = _warehouse(tmp_path, [("B48", "pass"), ("C1", "no_envelope")])
    with cfg.connect(read_only=True) as wh:
        result = drift_check(wh)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    n = EnvelopeParams().min_batches
    assert result.description == (
        f"cannot judge: no envelope for U2 / R1 (C1): 3 of {n} released batches"
    )
    assert "inside" not in (result.description or "")
    # a recipe that needs fewer released batches (master data) says its own number
    with duckdb.connect(cfg.duckdb_path) as con:
        con.execute(f"update {SILVER_RECIPES} set envelope_min_batches = 5")
    with cfg.connect(read_only=True) as wh:
        result = drift_check(wh)
    assert (
        result.description == "cannot judge: no envelope for U2 / R1 (C1): 3 of 5 released batches"
    )


def test_every_latest_batch_judged_and_inside_passes(tmp_path) -> None:
    """The control: with an envelope for each unit's latest batch (B48, not B9: by time)."""
    cfg = _warehouse(tmp_path, [("B9", "no_envelope"), ("B48", "pass"), ("C1", "pass")])
    with cfg.connect(read_only=True) as wh:
        result = drift_check(wh)
    assert result.passed
    assert result.description == "latest batch of each of 2 units inside its envelope"


def test_a_new_unit_judged_across_units_passes_and_says_against_what(tmp_path) -> None:
    """C1's unit has 3 batches of its own, but the recipe's envelope across units judged it:
    it is judged (the check can pass), and the description says it was not its own."""
    cfg = _warehouse(tmp_path, [("B48", "pass"), ("C1", "pass")], c1_envelope="cross_unit")
    with cfg.connect(read_only=True) as wh:
        result = drift_check(wh)
    assert result.passed
    assert "across units" in (result.description or "")
    assert result.metadata["cross_unit"].value == ["C1"]
