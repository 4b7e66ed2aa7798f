"""Column performance and peak analytics from one batch's readings, by column volume.

Transition analysis: when the inlet buffer steps (say conductivity 16 -> 48 mS/cm at the
start of Wash 2), the outlet shows the column's residence-volume distribution as a smooth
step F(V) (0 -> 1). Its derivative dF/dV is the distribution itself, so its moments give the
plate count N = mean^2 / variance and HETP = bed height / N, and its shape at 10% height
gives the asymmetry factor (lib/core/peaks.py, the math the simulator's ground truth uses too).

The moments are computed from F itself, not from a differentiated noisy signal:
mean = integral of (1 - F) dV, and variance = -integral of 2 (V - mean) (F - H(V - mean)) dV
(H the unit step), which weights the noise by |V - mean|, small where the step happens.
Only the asymmetry needs dF/dV; it is taken from a Savitzky-Golay derivative of F resampled
on a uniform volume grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.core.peaks import Array, asymmetry, moments

#: Transitions: the inlet level is read from the phase's first CV fraction (before the front
#: arrives, about one column volume in), the new level from the plateau after it, and the
#: moments integrate the window in between.
BEFORE_CV = (0.05, 0.35)
PLATEAU_CV = (1.6, 2.0)
WINDOW_CV = 2.0
#: A transition is analysed when its step is at least this many mS/cm (conductivity).
MIN_STEP = 3.0
#: Grid step for the derivative (CV) and the Savitzky-Golay window (grid points, odd, cubic):
#: wide enough to average the noise of a 1 Hz signal, narrow enough not to round the peak.
#: Measured on simulated batches (160, a third with faults): asymmetry within 4%; a window
#: scaled to the transition's width did worse (-3.6% bias).
GRID_CV = 0.002
SAVGOL_POINTS = 31
#: A step at the inlet leaves a packed bed as an S-curve that has settled well within the
#: window: its level moves by less than this share of the step across the plateau window. A
#: ramp or linear gradient still moving there is not a step response, and its "plates"
#: would be the ramp's length, not the column's (an HETP of a ramp fails every good batch).
PLATEAU_TOLERANCE = 0.05
#: ... and the derivative of a step response is a peak: its width at 80% of its height is
#: about a third of its width at 20% (0.37 for a Gaussian). A ramp that did finish inside
#: the window leaves a flat-topped derivative, as wide at 80% as at 20%: above this ratio,
#: not a step.
RAMP_FLATNESS = 0.6
#: ... and a step this many times the signal's own scan-to-scan noise (on the plateau) at
#: least: moments of a smaller one are mostly noise. Measured on both simulated process
#: families (fault-free, 330 transitions): below 100 the HETP was off by a median 24% and up
#: to 212%; from 150, a median 1-4% and at most 26%; a batch's HETP is the median over the
#: transitions that pass.
MIN_STEP_NOISE_RATIO = 100.0


@dataclass(frozen=True)
class NotApplicable:
    """Why a transition was not analysed as a step response (said, never turned into an
    HETP)."""

    reason: str


@dataclass(frozen=True)
class Transition:
    mean_cv: float
    variance_cv2: float
    plates: float
    hetp_cm: float
    asymmetry: float
    step: float  # new level - old level, in the signal's unit

    def record(self) -> dict[str, float]:
        return {
            "mean_cv": self.mean_cv,
            "variance_cv2": self.variance_cv2,
            "plates": self.plates,
            "hetp_cm": self.hetp_cm,
            "asymmetry": self.asymmetry,
            "step": self.step,
        }


def step_moments(v: npt.ArrayLike, f: npt.ArrayLike, window_cv: float = WINDOW_CV) -> Moments2:
    """Mean and variance of the distribution whose cumulative curve F(v) is sampled at v
    (v from the inlet step, increasing; F normalized 0 -> 1), by the integral forms above.

    Two passes: the first over the whole window locates the transition; the second takes F
    as exactly 0 before mean - FRONT_SD and exactly 1 after mean + TAIL_SD standard
    deviations. Far from the front, F only carries the noise of the two levels, and the
    variance integral weights that by the distance to the mean: left in, a 0.05% error in
    the plateau level moved the plate count by a quarter."""
    v = np.asarray(v, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    inside = v <= window_cv
    v, f = v[inside], f[inside]
    if v.size < 3:
        return Moments2(float("nan"), float("nan"))
    # F is 0 at the step itself (v = 0): anchor the integral there.
    if v[0] > 0:
        v = np.concatenate([[0.0], v])
        f = np.concatenate([[0.0], f])
    m = _moments_of_step(v, f)
    if not m.variance > 0:
        return m
    sd = float(np.sqrt(m.variance))
    lo, hi = m.mean - FRONT_SD * sd, m.mean + TAIL_SD * sd
    f = np.where(v < lo, 0.0, np.where(v > hi, 1.0, f))
    return _moments_of_step(v, f)


#: Truncation of the second pass, in standard deviations of the first (the tail side is
#: longer: a worn bed tails).
FRONT_SD = 5.0
TAIL_SD = 9.0


def _moments_of_step(v: Array, f: Array) -> Moments2:
    mean = float(np.trapezoid(1.0 - f, v))
    # split the interval containing the mean so the step function H(v - mean) is exact
    j = int(np.searchsorted(v, mean))
    fm = float(np.interp(mean, v, f))
    vv = np.concatenate([v[:j], [mean], v[j:]])
    ff = np.concatenate([f[:j], [fm], f[j:]])
    left = -np.trapezoid(2.0 * (vv[: j + 1] - mean) * ff[: j + 1], vv[: j + 1])
    right = -np.trapezoid(2.0 * (vv[j:] - mean) * (ff[j:] - 1.0), vv[j:])
    return Moments2(mean, float(left + right))


@dataclass(frozen=True)
class Moments2:
    mean: float
    variance: float


def transition(
    v: npt.ArrayLike, c: npt.ArrayLike, bed_height_cm: float, min_step: float = MIN_STEP
) -> Transition | NotApplicable | None:
    """Analyse a buffer transition: `v` phase CV from the step (outside holds), `c` the
    outlet signal. None when there is no step (too small) or no plateau in the data;
    NotApplicable, with the reason, when the change is not a step (a ramp or gradient)."""
    v = np.asarray(v, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    before = (v >= BEFORE_CV[0]) & (v <= BEFORE_CV[1])
    plateau = (v >= PLATEAU_CV[0]) & (v <= PLATEAU_CV[1])
    if before.sum() < 5 or plateau.sum() < 5:
        return None
    c0 = float(np.median(c[before]))
    c1 = float(np.median(c[plateau]))
    if abs(c1 - c0) < min_step:
        return None
    moving = _plateau_change(v[plateau], c[plateau]) / abs(c1 - c0)
    if moving > PLATEAU_TOLERANCE:
        return NotApplicable(
            f"no plateau: the level still moves by {moving:.0%} of the change between phase "
            f"CV {PLATEAU_CV[0]:g} and {PLATEAU_CV[1]:g} (a ramp or gradient, not a step)"
        )
    noise = noise_sd(c[plateau])
    if noise > 0 and abs(c1 - c0) < MIN_STEP_NOISE_RATIO * noise:
        return NotApplicable(
            f"step of {abs(c1 - c0):.3g} only {abs(c1 - c0) / noise:.0f} times the signal's "
            f"noise (sd {noise:.2g}); moments need {MIN_STEP_NOISE_RATIO:.0f}"
        )
    f = (c - c0) / (c1 - c0)
    flat = _derivative_flatness(v, f)
    if flat > RAMP_FLATNESS:
        return NotApplicable(
            f"flat-topped front (width at 80% of its height {flat:.0%} of that at 20%): a "
            "ramp, not a step"
        )
    m = step_moments(v, f)
    if not (m.variance > 0 and m.mean > 0):
        return None
    plates = m.mean**2 / m.variance
    return Transition(
        mean_cv=m.mean,
        variance_cv2=m.variance,
        plates=plates,
        hetp_cm=bed_height_cm / plates,
        asymmetry=_derivative_asymmetry(v, f),
        step=c1 - c0,
    )


def _plateau_change(v: Array, c: Array) -> float:
    """How far the level moves across the plateau window (least-squares slope x width)."""
    if np.ptp(v) <= 0:
        return 0.0
    slope = np.polyfit(v, c, 1)[0]
    return float(abs(slope) * (PLATEAU_CV[1] - PLATEAU_CV[0]))


def _derivative_flatness(v: Array, f: Array) -> float:
    """Width of dF/dV at 80% of its maximum over its width at 20% (NaN if too few points)."""
    got = _derivative(v, f)
    if got is None:
        return float("nan")
    d = got[1]
    top = float(np.max(d))
    if not top > 0:
        return float("nan")
    wide = int(np.count_nonzero(d >= 0.2 * top))
    return int(np.count_nonzero(d >= 0.8 * top)) / max(1, wide)


def _derivative(v: Array, f: Array) -> tuple[Array, Array] | None:
    """(grid, dF/dV) on a regular grid over the transition window (Savitzky-Golay, cubic);
    None with too few points."""
    inside = v <= WINDOW_CV
    v, f = v[inside], f[inside]
    grid = np.arange(v[0], v[-1], GRID_CV) if v.size else np.empty(0)
    if grid.size < 2 * SAVGOL_POINTS:
        return None
    fg = np.interp(grid, v, f)
    # imported here, as every scipy module in lib: scipy.signal costs 1.7 s to import, paid
    # by every process that loads the code location (code server, each run, each CLI)
    from scipy.signal import savgol_filter

    return grid, np.asarray(savgol_filter(fg, SAVGOL_POINTS, 3, deriv=1, delta=GRID_CV))


def _derivative_asymmetry(v: Array, f: Array) -> float:
    got = _derivative(v, f)
    return float("nan") if got is None else asymmetry(*got)


#: Darcy's fit separates the bed's term from the static head only where its driving term
#: (viscosity x velocity) varies across the settled phases by at least this much of its mean,
#: and only while the fitted slope is known to this relative standard error (3+ phases):
#: a plant running every phase at one flow and one buffer viscosity gives no permeability.
PERMEABILITY_MIN_SPREAD = 0.25
PERMEABILITY_MAX_SLOPE_RSE = 0.25


def permeability_m2(
    flow_lpm: npt.ArrayLike,
    pressure_bar: npt.ArrayLike,
    viscosity_mpa_s: npt.ArrayLike,
    *,
    area_cm2: float,
    bed_height_cm: float,
    system_bar_per_lpm: float,
) -> tuple[float, str | None]:
    """Bed permeability K by Darcy's law, dP_bed = mu * u * L / K, from settled phases, or
    NaN with the reason it cannot be judged.

    Each point is one phase's settled flow, pressure and buffer viscosity. The skid's own
    pressure drop (per L/min, from master data) is taken off first; what remains is fitted
    as a + (mu u L) / K, the intercept absorbing the static head of the outlet line, so
    no constant of the plant has to be known. The fit needs the driving term to vary
    (PERMEABILITY_MIN_SPREAD) and, with three points or more, a slope its own residuals
    do not swamp (PERMEABILITY_MAX_SLOPE_RSE)."""
    q = np.asarray(flow_lpm, dtype=np.float64)
    p = np.asarray(pressure_bar, dtype=np.float64)
    mu = np.asarray(viscosity_mpa_s, dtype=np.float64)
    ok = np.isfinite(q) & np.isfinite(p) & np.isfinite(mu) & (q > 0)
    nan = float("nan")
    if ok.sum() < 2:
        return nan, f"{int(ok.sum())} settled phase(s) with flow: 2 needed for Darcy's fit"
    u_m_s = q[ok] / 60_000.0 / (area_cm2 * 1e-4)
    x = mu[ok] * 1e-3 * u_m_s * (bed_height_cm / 100.0) / 1e5  # bar * m2
    y = p[ok] - system_bar_per_lpm * q[ok]
    spread = float(np.ptp(x) / np.mean(x))
    if spread < PERMEABILITY_MIN_SPREAD:
        return nan, (
            f"flow x viscosity varies {spread:.0%} across the settled phases: at least "
            f"{PERMEABILITY_MIN_SPREAD:.0%} needed to tell the bed from the static head"
        )
    (slope, intercept), n = np.polyfit(x, y, 1), x.size
    if n >= 3:
        resid = y - (slope * x + intercept)
        se = float(np.sqrt(resid @ resid / (n - 2) / np.sum((x - x.mean()) ** 2)))
        if slope > 0 and se > PERMEABILITY_MAX_SLOPE_RSE * slope:
            return nan, (
                f"Darcy's fit uncertain to {se / slope:.0%} of its slope over {n} phases "
                f"(at most {PERMEABILITY_MAX_SLOPE_RSE:.0%})"
            )
    if slope <= 0:
        return nan, "pressure does not rise with flow x viscosity across the settled phases"
    return float(1.0 / slope), None


@dataclass(frozen=True)
class Peak:
    retention_cv: float  # first moment, phase CV
    width_cv: float  # standard deviation, CV
    asymmetry: float
    area_mau_cv: float
    max_mau: float

    def record(self) -> dict[str, float]:
        return {
            "retention_cv": self.retention_cv,
            "width_cv": self.width_cv,
            "asymmetry": self.asymmetry,
            "area_mau_cv": self.area_mau_cv,
            "max_mau": self.max_mau,
        }


def elution_peak(v: npt.ArrayLike, uv: npt.ArrayLike, baseline_mau: float = 0.0) -> Peak | None:
    """The elution UV peak by phase CV: retention (first moment), width (sd), asymmetry at
    10% height, area and maximum above the baseline."""
    v = np.asarray(v, dtype=np.float64)
    y = np.asarray(uv, dtype=np.float64) - baseline_mau
    if v.size < 5 or not np.isfinite(y).all():
        return None
    m = moments(v, np.clip(y, 0.0, None))
    if not m.area > 0:
        return None
    return Peak(
        retention_cv=m.mean,
        width_cv=float(np.sqrt(m.variance)),
        asymmetry=asymmetry(v, y),
        area_mau_cv=m.area,
        max_mau=float(y.max()),
    )


#: Load breakthrough: the outlet UV above the load's own early baseline by this fraction of
#: the feed's product UV, for BREAKTHROUGH_SCANS readings running, is breakthrough.
BREAKTHROUGH_FRACTION = 0.10
BREAKTHROUGH_SCANS = 10
LOAD_BASELINE_CV = (1.5, 3.0)
#: ... and by at least this many times the baseline's own noise, whichever is stricter: a
#: fraction of the feed can be below the noise of a weakly absorbing product or a noisy
#: detector (3% of an 85 mAU product is 2.5 mAU: at 10 mAU of noise that rule alone rang on
#: 24 of 100 good batches), and noise alone must never read as breakthrough. With the
#: 10-scan run, 3 sigma: no alarm on 100 good batches at 10 mAU, and 57 of 60 early
#: breakthroughs still caught (4 sigma caught 48: simulator/test_breakthrough_noise.py).
BREAKTHROUGH_NOISE_K = 3.0


def noise_sd(y: npt.ArrayLike) -> float:
    """A signal's scan-to-scan noise, robustly: 1.4826 x the MAD of its first differences
    over sqrt(2), so a slow drift of the baseline is not counted as noise."""
    d = np.diff(np.asarray(y, dtype=np.float64))
    if d.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def breakthrough_cv(
    v: npt.ArrayLike,
    uv: npt.ArrayLike,
    feed_product_mau: float,
    fraction: float,
    noise_k: float = BREAKTHROUGH_NOISE_K,
) -> float:
    """Load phase CV where the outlet UV first stays above the load's baseline (flow-through
    impurities) by `fraction` of the feed's product UV, or by `noise_k` times the baseline's
    own noise if that is more, for BREAKTHROUGH_SCANS readings; NaN when not seen."""
    v = np.asarray(v, dtype=np.float64)
    uv = np.asarray(uv, dtype=np.float64)
    base = (v >= LOAD_BASELINE_CV[0]) & (v <= LOAD_BASELINE_CV[1])
    if base.sum() < 10 or not feed_product_mau > 0:
        return float("nan")
    b0 = float(np.median(uv[base]))
    threshold = max(fraction * feed_product_mau, noise_k * noise_sd(uv[base]))
    above = (uv - b0 >= threshold) & (v > LOAD_BASELINE_CV[1])
    run = first_run(above, BREAKTHROUGH_SCANS)
    return float(v[run]) if run >= 0 else float("nan")


def first_run(flags: npt.NDArray[np.bool_], length: int) -> int:
    """Index where the first run of at least `length` consecutive True values starts, or -1."""
    flags = np.asarray(flags, dtype=bool)
    if length <= 1:
        hit = np.flatnonzero(flags)
        return int(hit[0]) if hit.size else -1
    if flags.size < length:
        return -1
    c = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    full = np.flatnonzero(c[length:] - c[:-length] == length)
    return int(full[0]) if full.size else -1
