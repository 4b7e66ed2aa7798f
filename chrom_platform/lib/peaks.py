"""Peak and transition math shared by the simulator's ground truth and the analytics.

A step change of buffer at the column inlet leaves the column as a transition curve C(V);
its derivative dC/dV is the column's residence-volume distribution. Its moments give the
plate count N = mu1^2 / sigma^2 and HETP = bed height / N; its shape at 10% of the peak
height gives the asymmetry factor As = b / a (tail half-width over front half-width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Moments:
    area: float
    mean: float
    variance: float

    @property
    def plates(self) -> float:
        return self.mean**2 / self.variance if self.variance > 0 else float("nan")


def moments(x: npt.ArrayLike, y: npt.ArrayLike) -> Moments:
    """Zeroth, first and second central moments of a peak y(x), by the trapezoid rule."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    area = float(np.trapezoid(y, x))
    if area == 0:
        return Moments(0.0, float("nan"), float("nan"))
    mean = float(np.trapezoid(x * y, x) / area)
    var = float(np.trapezoid((x - mean) ** 2 * y, x) / area)
    return Moments(area, mean, var)


def _crossing(x: Array, y: Array, level: float, i0: int, i1: int) -> float:
    """x where y crosses `level` between samples i0 and i1 (linear interpolation)."""
    y0, y1 = y[i0], y[i1]
    if y1 == y0:
        return float(x[i0])
    return float(x[i0] + (level - y0) * (x[i1] - x[i0]) / (y1 - y0))


def asymmetry(x: npt.ArrayLike, y: npt.ArrayLike, fraction: float = 0.1) -> float:
    """Asymmetry factor b/a at `fraction` of the peak height (USP-style, 10% by default).

    a: distance from the leading edge to the apex, b: from the apex to the trailing edge,
    both at the given fraction of the apex height. NaN when either edge is not in the data.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.size < 3:
        return float("nan")
    apex = int(np.argmax(y))
    level = fraction * y[apex]
    left = np.nonzero(y[:apex] <= level)[0]
    right = np.nonzero(y[apex:] <= level)[0]
    if left.size == 0 or right.size == 0:
        return float("nan")
    il = int(left[-1])
    ir = apex + int(right[0])
    x_front = _crossing(x, y, level, il, il + 1)
    x_tail = _crossing(x, y, level, ir - 1, ir)
    a = x[apex] - x_front
    b = x_tail - x[apex]
    return float(b / a) if a > 0 else float("nan")
