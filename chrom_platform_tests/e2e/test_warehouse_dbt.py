"""The dbt project, for real: `dbt build` on DuckDB over a simulated history landed as the
plant lands it, gold checked against the simulator's own truth; then one more batch per
unit, built incrementally, checked against a full rebuild of the same data."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from chrom_platform.lib.analytics.reads import units as read_units
from chrom_platform.lib.core.contracts import ts_to_iso
from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY, Accuracy, MasterData
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BINNED,
    GOLD_TREND_BY_CV,
)
from chrom_platform.lib.io.warehouse import DBT_BUILD, WarehouseConfig
from chrom_platform_tests.truth import assert_cv_matches_truth, truth_cv
from chrom_platform_tests.warehouse_helpers import (
    DAY_NS,
    History,
    assert_same_tables,
    gold_tables,
    table,
)

#: Faults that change what gold computes a batch's pool and yield from (the elution UV
#: trace or the flow it integrates): there the platform is right to differ from the truth,
#: which knows the undisturbed process.
DISTURBS_POOL = {"sensor_dropout", "sensor_flatline", "pump_fault"}


@pytest.fixture(scope="module")
def history(md, tmp_path_factory) -> History:
    """3 units x 3 batches, a third of them faulty, built once by `dbt build`. SKID-02
    declares its flow meter's accuracy (no effect on the simulation)."""
    md = _with_flow_meter(md, "SKID-02", Accuracy(0.02, 0.001))
    h = History(tmp_path_factory.mktemp("warehouse"), md)
    h.land(units=3, batches_per_unit=3, seed=21, fault_rate=0.35)
    h.dbt(*DBT_BUILD)
    return h


def _with_flow_meter(md: MasterData, unit_id: str, flow: Accuracy) -> MasterData:
    unit = md.units[unit_id]
    accuracy = {**unit.instrument_accuracy, "flow_lpm": flow}
    units = {**md.units, unit_id: dataclasses.replace(unit, instrument_accuracy=accuracy)}
    return dataclasses.replace(md, units=units)


def test_a_units_instruments_reach_the_analytics_from_the_landed_snapshot(
    history: History,
) -> None:
    """What the analytics floor their limits with is what equipment master data declared,
    through the landed snapshot and silver_units; the defaults for the units that did not."""
    with WarehouseConfig("local", str(history.duckdb_path), str(history.lake)).connect() as wh:
        got = read_units(wh)
    assert got["SKID-02"].accuracy["flow_lpm"] == Accuracy(0.02, 0.001)
    assert got["SKID-02"].accuracy["ph"] == DEFAULT_ACCURACY["ph"]
    assert got["SKID-01"].accuracy == DEFAULT_ACCURACY
    assert {u: i.accuracy for u, i in got.items()} == {
        u: dict(history.md.units[u].instrument_accuracy) for u in got
    }


def test_every_landed_reading_reaches_gold_once_with_the_simulators_cv(history: History) -> None:
    with history.connect() as con:
        rows = table(con, f"select unit_id, seq, batch_cv from {GOLD_TREND_BY_CV}")
    got = {(r["unit_id"], r["seq"]): r for r in rows}
    truth = truth_cv(history.sims, history.md)
    assert len(rows) == len(got), "one gold row per (unit, scan)"
    assert set(got) == set(truth), "gold holds exactly the readings the plant produced"
    assert_cv_matches_truth(got, truth)  # within 0.1% (0.001 CV near a batch's start)


def test_phase_boundaries_and_holds_are_exact(history: History) -> None:
    with history.connect() as con:
        rows = table(
            con,
            "select batch_id, phase, started_at, ended_at, hold_s, cv, start_cv "
            f"from {GOLD_PHASE_SUMMARY}",
        )
    got = {(r["batch_id"], r["phase"]): r for r in rows}
    n = 0
    for sim in history.sims:
        for ph in sim.truth["phases"]:
            r = got.pop((sim.plan.batch_id, ph["phase"]))
            iso = ts_to_iso(int(r["started_at"].timestamp() * 1e6) * 1000)
            assert iso == ph["start_ts"], (sim.plan.batch_id, ph["phase"])
            assert ts_to_iso(int(r["ended_at"].timestamp() * 1e6) * 1000) == ph["end_ts"]
            assert r["hold_s"] == ph["hold_s"], (sim.plan.batch_id, ph["phase"])
            assert r["cv"] == pytest.approx(ph["cv"], rel=1e-3, abs=1e-3)
            assert r["start_cv"] == pytest.approx(ph["start_cv"], rel=1e-3, abs=1e-3)
            n += 1
    assert not got, f"phases gold has that the batches did not: {sorted(got)}"
    assert n == sum(len(s.truth["phases"]) for s in history.sims) > 0


def test_pool_volume_and_step_yield_match_truth(history: History) -> None:
    with history.connect() as con:
        got = {
            r["batch_id"]: r
            for r in table(
                con,
                "select batch_id, load_volume_l, load_mass_g, pool_start_cv, pool_end_cv, "
                f"pool_volume_l, step_yield, alerts from {GOLD_BATCH_RESULTS}",
            )
        }
    compared = 0
    for sim in history.sims:
        t = sim.truth
        r = got[t["batch_id"]]
        assert r["load_volume_l"] == pytest.approx(t["load_volume_l"], rel=1e-3)
        fault = t["fault"]["kind"] if t["fault"] else None
        if fault in DISTURBS_POOL or "pool_volume_l" not in t:
            continue
        compared += 1
        # pool volume within 1% and step yield within 1 percentage point of the truth, which
        # knows the true titer and concentrations the lab measures with 0.25% precision
        assert r["pool_volume_l"] == pytest.approx(t["pool_volume_l"], rel=0.01), t["batch_id"]
        assert r["pool_start_cv"] == pytest.approx(t["pool_start_cv"], abs=0.02)
        assert r["pool_end_cv"] == pytest.approx(t["pool_end_cv"], abs=0.02)
        assert abs(r["step_yield"] - t["step_yield"]) <= 0.01, t["batch_id"]
    assert compared >= 6, "most batches must be compared"


def test_dbt_tests_and_unit_tests_ran_and_passed(history: History) -> None:
    res = history.dbt("test", "--select", "test_type:unit")
    assert "PASS=9 WARN=0 ERROR=0" in res.stdout, res.stdout[-2000:]


def test_a_new_batch_costs_its_own_work_and_equals_a_full_rebuild(
    history: History, tmp_path: Path
) -> None:
    with history.connect() as con:
        before = {
            r["batch_id"]: r["_source_loaded_at"]
            for r in table(con, f"select batch_id, _source_loaded_at from {GOLD_BATCH_RESULTS}")
        }
    last_start = max(int(s.ts_ns[-1]) for s in history.sims)
    new = history.land(
        units=3,
        batches_per_unit=1,
        seed=21,
        fault_rate=0.0,
        first_batch=3,
        start_ns=last_start + DAY_NS,
    )
    history.dbt(*DBT_BUILD)
    with history.connect() as con:
        after = {
            r["batch_id"]: r["_source_loaded_at"]
            for r in table(con, f"select batch_id, _source_loaded_at from {GOLD_BATCH_RESULTS}")
        }
    assert set(after) == set(before) | {s.plan.batch_id for s in new}
    # incremental: the batches already built were not rebuilt
    assert all(after[b] == before[b] for b in before)

    # the same lake built from scratch gives the same gold (to float rounding)
    full = tmp_path / "full.duckdb"
    shutil.copy(history.duckdb_path, full)
    history.dbt("run", "--full-refresh", duckdb_path=full)
    keys = {
        GOLD_TREND_BY_CV.name: "unit_id, ts",
        GOLD_PHASE_SUMMARY.name: "batch_id, phase",
        GOLD_BATCH_RESULTS.name: "batch_id",
        GOLD_TREND_BINNED.name: "batch_id, phase, cv_bin",
    }
    with history.connect() as inc, history.connect(full) as ref:
        got, want = gold_tables(inc, keys), gold_tables(ref, keys)
    assert all(t.num_rows > 0 for t in want.values())
    assert_same_tables(got, want)
