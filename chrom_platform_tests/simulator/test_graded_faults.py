"""Graded faults (simulator.faults GRADED_KINDS, simulator.batch.graded_magnitude): the size
is the severity times the changed signal's normal variation where the fault starts, the
truth says both, the rest of the batch is the batch without the fault, and sizes outside
0.5-10 sd or kinds without a size are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from chrom_platform_tests.conftest import START_NS
from simulator.batch import plan_batch, simulate
from simulator.faults import FAULT_KINDS, GRADED_KINDS, GRADED_RAMP_CV, SEVERITY_RANGE


def _pair(md, kind: str, severity: float):
    unit = md.units["SKID-01"]
    kw = {
        "unit": unit,
        "resin": md.resins[unit.resin],
        "recipe": md.recipes["MAB1-PROA-V3"],
        "unit_index": 0,
        "batch_index": 4,
        "earliest_start_ns": START_NS,
        "seed": 9,
        "fault_rate": 0.0,
    }
    clean = simulate(plan_batch(**kw), noise=False)
    faulty = simulate(plan_batch(**kw, force_fault=kind, fault_severity=severity), noise=False)
    return clean, faulty


@pytest.mark.parametrize("kind", GRADED_KINDS)
def test_truth_records_the_severity_and_the_sigma_it_is_counted_in(md, kind) -> None:
    _, faulty = _pair(md, kind, 3.0)
    fault = faulty.truth["fault"]
    assert fault["severity_sigma"] == 3.0
    assert fault["magnitude"]["severity_sigma"] == 3.0
    if kind != "packing_degradation":  # counted in the column's own parameters' sd
        assert fault["magnitude"]["sigma"] > 0


@pytest.mark.parametrize(
    ("kind", "signal"), [("ph_drift", "ph"), ("pressure_rise", "pressure_bar")]
)
def test_a_drift_reaches_severity_times_sigma_after_the_ramp_and_stays(md, kind, signal) -> None:
    for severity in (1.0, 5.0):
        clean, faulty = _pair(md, kind, severity)
        fault = faulty.truth["fault"]
        v = faulty.volume_true_l / faulty.plan.column_volume_l
        onset = int(np.searchsorted(v, fault["onset_batch_cv"]))
        after = int(np.searchsorted(v, fault["onset_batch_cv"] + GRADED_RAMP_CV)) + 1
        diff = faulty.signals[signal] - clean.signals[signal]
        assert np.all(diff[: onset - 1] == 0)  # nothing before the onset
        want = severity * fault["magnitude"]["sigma"]
        # at full size in the phase it started in (pressure: the bed at that flow)
        assert abs(diff[after]) == pytest.approx(want, rel=0.02)


def test_a_wrong_buffer_is_off_by_severity_times_its_sigma(md) -> None:
    clean, faulty = _pair(md, "wrong_buffer", 4.0)
    fault = faulty.truth["fault"]
    k = faulty.plan.recipe.phase_names().index(fault["phase"])
    b_clean = clean.plan.phase_buffers[k].cond_ms_cm
    b_faulty = faulty.plan.phase_buffers[k].cond_ms_cm
    assert abs(b_faulty - b_clean) == pytest.approx(4.0 * fault["magnitude"]["sigma"], rel=1e-9)


def test_severity_grows_the_change(md) -> None:
    sizes = []
    for s in (1.0, 3.0, 10.0):
        clean, faulty = _pair(md, "pump_fault", s)
        n = min(clean.ts_ns.size, faulty.ts_ns.size)
        sizes.append(float(np.max(clean.signals["flow_lpm"][:n] - faulty.signals["flow_lpm"][:n])))
    assert sizes[0] < sizes[1] < sizes[2]


def test_out_of_range_severities_and_sensor_faults_are_refused_by_name(md) -> None:
    lo, hi = SEVERITY_RANGE
    for bad in (lo / 2, hi * 2, float("nan")):
        with pytest.raises(ValueError, match="severity must be"):
            _pair(md, "ph_drift", bad)
    for kind in set(FAULT_KINDS) - set(GRADED_KINDS):
        with pytest.raises(ValueError, match="no graded size"):
            _pair(md, kind, 3.0)


def test_backfill_grades_every_fault_and_refuses_sensor_kinds(tmp_path) -> None:
    import json

    from simulator.cli import main

    args = ["backfill", "--units", "1", "--batches-per-unit", "2", "--fault-rate", "1", "--quiet"]
    graded = ["--fault-kinds", "ph_drift,pump_fault", "--fault-severity", "2.5"]
    land = ["--landing", str(tmp_path / "lake"), "--truth", str(tmp_path / "truth")]
    assert main([*args, *graded, *land]) == 0
    faults = [json.loads(x) for x in (tmp_path / "truth" / "faults.jsonl").read_text().splitlines()]
    assert len(faults) == 2
    assert {f["severity_sigma"] for f in faults} == {2.5}
    with pytest.raises(SystemExit, match=r"sensor_flatline.*has no size"):
        main([*args, "--fault-severity", "2.5", *land[:1], str(tmp_path / "l2"), *land[2:]])
