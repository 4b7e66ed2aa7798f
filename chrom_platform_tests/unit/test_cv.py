"""The one CV integration rule (chrom_platform.lib.core.cv) on inputs with known answers."""

import numpy as np
import pytest

from chrom_platform.lib.core import cv

NS = 1_000_000_000


def test_constant_flow_integrates_exactly():
    t = np.arange(601) * NS  # 10 minutes at 1 Hz
    f = np.full(601, 60.0)  # 60 L/min -> 600 L
    r = cv.integrate(t, f, ["Load"] * 601, column_volume_l=200.0, deadband_lpm=1.0)
    assert r.volume_l[-1] == pytest.approx(600.0)
    assert r.batch_cv[-1] == pytest.approx(3.0)
    assert r.volume_l[0] == 0.0


def test_hold_does_not_advance_and_noise_in_deadband_is_zero():
    t = np.arange(300) * NS
    f = np.concatenate(
        [np.full(100, 30.0), np.random.default_rng(0).normal(0, 0.3, 100), np.full(100, 30.0)]
    )
    r = cv.integrate(t, f, ["Wash 1"] * 300, column_volume_l=100.0, deadband_lpm=1.0)
    hold = r.volume_l[100:200]
    assert np.ptp(hold) == 0.0  # nothing moves inside the hold
    # 99 s of 30 L/min before, half-interval on each edge of the hold, 99 s after
    assert r.volume_l[-1] == pytest.approx(30.0 / 60 * (99 + 0.5 + 0.5 + 99))


def test_phase_cv_resets_at_each_phase_segment():
    t = np.arange(6) * NS
    f = np.full(6, 60.0)
    ph = ["A", "A", "A", "B", "B", "A"]
    r = cv.integrate(t, f, ph, column_volume_l=1.0, deadband_lpm=0.1)
    np.testing.assert_allclose(r.batch_cv, [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(r.phase_cv, [0, 1, 2, 0, 1, 0])


def test_chunked_integration_equals_whole_batch():
    rng = np.random.default_rng(1)
    n = 5000
    t = np.cumsum(rng.integers(1, 3, n)) * NS
    f = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(10, 50, n))
    ph = np.repeat(["Equilibration", "Load", "Wash 1", "Elution"], n // 4)
    whole = cv.integrate(t, f, ph, column_volume_l=226.19, deadband_lpm=1.0)
    state = None
    parts = []
    for a in range(0, n, 777):
        r = cv.integrate(
            t[a : a + 777],
            f[a : a + 777],
            ph[a : a + 777],
            column_volume_l=226.19,
            deadband_lpm=1.0,
            state=state,
        )
        state = r.state
        parts.append(r)
    np.testing.assert_allclose(
        np.concatenate([p.batch_cv for p in parts]), whole.batch_cv, rtol=1e-12
    )
    np.testing.assert_allclose(
        np.concatenate([p.phase_cv for p in parts]), whole.phase_cv, rtol=1e-12, atol=1e-12
    )


def test_rejects_unsorted_duplicates_and_bad_column_volume():
    with pytest.raises(ValueError, match="strictly increasing"):
        cv.integrate([0, 2 * NS, NS], [1, 1, 1], ["A"] * 3, column_volume_l=1, deadband_lpm=0.1)
    with pytest.raises(ValueError, match="strictly increasing"):
        cv.integrate([0, NS, NS], [1, 1, 1], ["A"] * 3, column_volume_l=1, deadband_lpm=0.1)
    with pytest.raises(ValueError, match="column_volume_l"):
        cv.integrate([0], [1], ["A"], column_volume_l=0, deadband_lpm=0.1)
    r = cv.integrate([0, NS], [1, 1], ["A"] * 2, column_volume_l=1, deadband_lpm=0.1)
    with pytest.raises(ValueError, match="at or before"):
        cv.integrate([NS], [1], ["A"], column_volume_l=1, deadband_lpm=0.1, state=r.state)
