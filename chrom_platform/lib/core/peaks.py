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


def _refine_apex(x: Array, y: Array, i: int) -> tuple[float, float]:
    """Apex of a sampled peak by a parabola through the highest sample and its neighbours.

    On 1 Hz data a transition is only a few dozen samples wide; the highest sample can sit
    half a sample from the true apex, which biases the asymmetry by several percent.
    """
    if i == 0 or i == y.size - 1:
        return float(x[i]), float(y[i])
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    denom = y0 - 2 * y1 + y2
    if denom >= 0:
        return float(x[i]), float(y1)
    d = 0.5 * (y0 - y2) / denom  # offset in samples, within (-0.5, 0.5) at a true maximum
    h = 0.5 * (x[i + 1] - x[i - 1])
    return float(x[i] + d * h), float(y1 - 0.25 * (y0 - y2) * d)


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
    x_apex, y_apex = _refine_apex(x, y, apex)
    level = fraction * y_apex
    left = np.nonzero(y[:apex] <= level)[0]
    right = np.nonzero(y[apex:] <= level)[0]
    if left.size == 0 or right.size == 0:
        return float("nan")
    il = int(left[-1])
    ir = apex + int(right[0])
    x_front = _crossing(x, y, level, il, il + 1)
    x_tail = _crossing(x, y, level, ir - 1, ir)
    a = x_apex - x_front
    b = x_tail - x_apex
    return float(b / a) if a > 0 else float("nan")
