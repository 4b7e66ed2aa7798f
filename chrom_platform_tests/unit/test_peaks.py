"""Peak math on peaks with known answers."""

import numpy as np
import pytest
from scipy import stats

from chrom_platform.lib.core.peaks import asymmetry, moments


def test_moments_of_a_gaussian():
    x = np.linspace(0, 20, 20001)
    y = 3.0 * stats.norm.pdf(x, 10.0, 0.5)
    m = moments(x, y)
    assert m.area == pytest.approx(3.0, rel=1e-6)
    assert m.mean == pytest.approx(10.0, rel=1e-9)
    assert m.variance == pytest.approx(0.25, rel=1e-6)
    assert m.plates == pytest.approx(400.0, rel=1e-6)


def test_symmetric_peak_has_asymmetry_one():
    x = np.linspace(-5, 5, 10001)
    assert asymmetry(x, stats.norm.pdf(x)) == pytest.approx(1.0, abs=1e-3)


def test_tailing_peak_asymmetry_matches_hand_computed_triangle():
    # triangle: front 1 wide, tail 2 wide -> at 10% height a = 0.9, b = 1.8 -> As = 2
    x = np.linspace(-1, 2, 3001)
    y = np.where(x < 0, 1 + x, 1 - x / 2)
    assert asymmetry(x, y) == pytest.approx(2.0, rel=1e-3)


def test_asymmetry_nan_when_an_edge_is_missing():
    x = np.linspace(0, 1, 101)
    assert np.isnan(asymmetry(x, x))  # apex at the end: no tail edge
