"""Each fault changes the signals it claims and no others; the physics carries the column state."""

from __future__ import annotations

import numpy as np
import pytest

from chrom_platform.lib.core.peaks import asymmetry, moments
from chrom_platform_tests.conftest import START_NS
from simulator import samples
from simulator.batch import NOISE, plan_batch, simulate
from simulator.faults import FAULT_KINDS


def _twins(md, kind: str, batch_index: int = 3):
    unit = md.units["SKID-01"]
    kw = {
        "unit": unit,
        "resin": md.resins[unit.resin],
        "recipe": md.recipes["MAB1-PROA-V3"],
        "unit_index": 0,
        "batch_index": batch_index,
        "earliest_start_ns": START_NS,
        "seed": 5,
        "fault_rate": 0.0,
    }
    clean = simulate(plan_batch(**kw, no_fault=True), noise=False)
    faulty = simulate(plan_batch(**kw, force_fault=kind), noise=False)
    return clean, faulty


def _by_phase_cv(sim, signal: str, phase_k: int, grid: np.ndarray) -> np.ndarray:
    """A signal on a phase-CV grid (pumping samples only, holds excluded)."""
    sel = (sim.phase_idx == phase_k) & ~sim.hold & sim.keep
    v = sim.volume_true_l[sel] / sim.plan.column_volume_l
    return np.interp(grid, v - v[0], sim.signals[signal][sel])


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_fault_changes_claimed_signals_and_no_others(md, kind):
    clean, faulty = _twins(md, kind)
    fault = faulty.plan.fault
    assert fault is not None
    assert clean.plan.fault is None
    claimed = set(fault.signals)
    # the twins share every other random draw
    assert clean.plan.titer_true_g_l == faulty.plan.titer_true_g_l
    assert clean.plan.hold_s == faulty.plan.hold_s
    tol = {s: 10 * (NOISE[s][0] + NOISE[s][1] * np.abs(clean.signals[s]).max()) for s in NOISE}

    if kind == "sensor_dropout":
        gone = ~faulty.keep
        assert gone.sum() == fault.magnitude["duration_s"]
        for s in claimed:
            np.testing.assert_array_equal(
                clean.signals[s][faulty.keep], faulty.signals[s][faulty.keep]
            )
        return

    if kind == "pump_fault":
        # flow changes the timeline, so compare every signal by phase CV (holds excluded)
        for k in range(len(clean.plan.recipe.phases)):
            grid = np.linspace(
                0,
                0.98
                * (np.ptp(clean.volume_true_l[clean.phase_idx == k]) / clean.plan.column_volume_l),
                400,
            )
            for s in NOISE:
                diff = np.abs(
                    _by_phase_cv(clean, s, k, grid) - _by_phase_cv(faulty, s, k, grid)
                ).max()
                if s not in claimed:
                    assert diff < 0.01 * max(1.0, np.ptp(clean.signals[s])), (k, s, diff)
        k = clean.plan.recipe.phase_names().index(fault.phase)
        for s in claimed:
            grid = np.linspace(0.7, 0.95, 200) * (
                np.ptp(clean.volume_true_l[(clean.phase_idx == k) & ~clean.hold])
                / clean.plan.column_volume_l
            )
            diff = np.abs(_by_phase_cv(clean, s, k, grid) - _by_phase_cv(faulty, s, k, grid)).max()
            assert diff > tol[s], (s, diff)
        assert faulty.ts_ns.size > clean.ts_ns.size  # low flow: the same volume takes longer
        return

    assert clean.ts_ns.size == faulty.ts_ns.size
    for s in NOISE:
        diff = np.abs(clean.signals[s] - faulty.signals[s]).max()
        if s in claimed:
            assert diff > tol[s], (kind, s, diff)
        else:
            assert diff == 0.0, (kind, s, diff)


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_fault_truth_records_onset_inside_the_batch(md, kind):
    _clean, faulty = _twins(md, kind)
    ft = faulty.truth["fault"]
    assert ft["kind"] == kind
    assert ft["batch_id"] == faulty.plan.batch_id
    assert 0 <= ft["onset_batch_cv"] < faulty.truth["total_cv"]
    assert ft["onset_phase"] in faulty.plan.recipe.phase_names()
    assert ft["magnitude"]


def test_fault_onset_marks_where_the_signal_departs(md):
    clean, faulty = _twins(md, "ph_drift")
    ft = faulty.truth["fault"]
    v = faulty.volume_true_l / faulty.plan.column_volume_l
    before = v < ft["onset_batch_cv"]
    assert np.abs(clean.signals["ph"][before] - faulty.signals["ph"][before]).max() == 0.0
    assert np.abs(clean.signals["ph"][~before] - faulty.signals["ph"][~before]).max() > 0.05


def _transition(sim, phase: str):
    """Normalized conductivity transition into `phase` vs CV since the step (noise-free)."""
    names = sim.plan.recipe.phase_names()
    k = names.index(phase)
    v = sim.volume_true_l / sim.plan.column_volume_l
    sel = (sim.phase_idx == k) & ~sim.hold
    c = sim.signals["cond_ms_cm"][sel]
    x = v[sel] - v[sel][0]
    y = (c - c[0]) / (c[-1] - c[0])
    dy = np.gradient(y, x)
    return x, dy


@pytest.mark.parametrize("phase", ["Wash 2", "Elution"])
def test_transition_analysis_recovers_the_columns_hetp_and_asymmetry(md, phase):
    clean, degraded = _twins(md, "packing_degradation")
    for sim in (clean, degraded):
        x, dy = _transition(sim, phase)
        m = moments(x, dy)
        hetp = sim.plan.unit.bed_height_cm / m.plates
        assert hetp == pytest.approx(sim.truth["hetp_cm"], rel=0.02)
        assert asymmetry(x, dy) == pytest.approx(sim.truth["asymmetry"], rel=0.05)
    assert degraded.truth["hetp_cm"] > 1.7 * clean.truth["hetp_cm"]


def test_elution_peak_area_matches_pooled_mass(md):
    clean, _ = _twins(md, "ph_drift")
    t = clean.truth
    a, b = (
        np.searchsorted(clean.volume_true_l / t["column_volume_l"], t[k])
        for k in ("pool_start_cv", "pool_end_cv")
    )
    uv = clean.signals["uv_mau"][a : b + 1]
    mass = np.trapezoid(uv, clean.volume_true_l[a : b + 1]) / (
        clean.plan.recipe.extinction_l_g_cm * clean.plan.unit.uv_path_length_cm * 1000
    )
    assert mass == pytest.approx(t["pool_mass_g"], rel=0.01)
    assert 0.85 < t["step_yield"] < 0.99


def test_early_breakthrough_lowers_yield_and_raises_load_uv(md):
    clean, faulty = _twins(md, "early_breakthrough")
    assert faulty.truth["step_yield"] < clean.truth["step_yield"] - 0.03
    assert faulty.truth["breakthrough_loss_g"] > 10 * clean.truth["breakthrough_loss_g"]


def test_pressure_follows_darcy_and_fouling_across_cycles(md):
    early, _ = _twins(md, "ph_drift", batch_index=0)
    late, _ = _twins(md, "ph_drift", batch_index=300)
    k = early.plan.recipe.phase_names().index("Wash 1")
    p_early = np.median(early.signals["pressure_bar"][(early.phase_idx == k) & ~early.hold][-100:])
    p_late = np.median(late.signals["pressure_bar"][(late.phase_idx == k) & ~late.hold][-100:])
    # permeability falls by fouling_per_cycle per cycle: bed pressure rises accordingly
    u = early.plan.unit
    bed_early = p_early - 0.03 - u.system_pressure_bar_per_lpm * u.flow_lpm(300)
    bed_late = p_late - 0.03 - u.system_pressure_bar_per_lpm * u.flow_lpm(300)
    assert bed_late / bed_early == pytest.approx(
        early.plan.permeability_m2 / late.plan.permeability_m2, rel=0.01
    )


def test_failed_scans_get_a_retest(md, monkeypatch):
    monkeypatch.setattr(samples, "FAIL_RATE", 1.0)  # every first attempt fails
    clean, _ = _twins(md, "ph_drift")
    docs = samples.sample_results(clean)
    for point in ("feed", "pool"):
        att = sorted((d for d in docs if d["sample_point"] == point), key=lambda d: d["attempt"])
        assert [d["status"] for d in att] == ["failed", "ok"]
        assert att[0]["failure_reason"]
        assert att[0]["scan"]["result"] is None
        assert att[1]["retest_of"] == f"{att[0]['sample_id']}-a1"
        assert att[1]["analyzed_at"] > att[0]["analyzed_at"]
