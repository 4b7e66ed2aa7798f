"""Column physics, in column volumes (CV) of totalized flow.

Everything here is a function of volume, not time: dispersion, breakthrough and elution
follow the liquid that has passed through the bed, so a hold (no flow) freezes them and a
slower pump stretches them in time but not in CV. That is why engineers trend by CV.

Column response: a residence-volume distribution made of a gamma distribution (tanks in
series, the packed bed) convolved with an exponential (a mixing tail, what makes a real
column tail: As > 1). It is parameterized by what a packing qualification reports: HETP
(plate count N = bed height / HETP) and asymmetry at 10% peak height.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chrom_platform.lib.core.peaks import Array, asymmetry, moments


@lru_cache(maxsize=1)
def _emg_asymmetry_table() -> tuple[Array, Array]:
    """Asymmetry at 10% of an exponentially modified Gaussian vs tau/sigma."""
    # scipy is imported where it is used: the `chrom` and `chrom-sim` commands import this
    # module at start, and scipy.signal and .stats cost ~2 s to import there
    from scipy import stats

    ratios = np.linspace(0.0, 4.0, 401)
    x = np.linspace(-8, 40, 24001)
    values = np.array([asymmetry(x, stats.exponnorm.pdf(x, max(r, 1e-3))) for r in ratios])
    return values, ratios


def tail_ratio_for_asymmetry(target_as: float) -> float:
    """tau/sigma of the exponential tail that gives a peak asymmetry `target_as`."""
    values, ratios = _emg_asymmetry_table()
    if target_as <= values[0]:
        return 0.0
    return float(np.interp(target_as, values, ratios))


def _gamma_with_tail(grid: Array, h: float, mu_g: float, sigma_g: float, tau: float) -> Array:
    """A gamma core (mean `mu_g`, sd `sigma_g`) convolved with an exponential tail of mean
    `tau`, on the even `grid` of step `h`, scaled to unit area: the column's response and a
    peak share this shape."""
    from scipy import signal, stats

    pdf = stats.gamma.pdf(grid, (mu_g / sigma_g) ** 2, scale=sigma_g**2 / mu_g)
    if tau > 0:
        # Convolution with exp(-v/tau)/tau as a one-pole recursive filter (exact on a grid).
        a = np.exp(-h / tau)
        pdf = signal.lfilter([1.0 - a], [1.0, -a], pdf)
    return np.asarray(pdf / np.trapezoid(pdf, grid))


@dataclass(frozen=True)
class ColumnResponse:
    """Residence-volume distribution of the column + system, tabulated on a grid (CV)."""

    grid: Array  # CV after the inlet step
    pdf: Array  # 1/CV, integrates to 1
    cdf: Array  # 0..1
    bed_height_cm: float

    @classmethod
    def build(
        cls, mean_cv: float, hetp_cm: float, asym: float, bed_height_cm: float
    ) -> ColumnResponse:
        n_eff = bed_height_cm / hetp_cm
        r = tail_ratio_for_asymmetry(asym)
        sigma_g = mean_cv / np.sqrt(n_eff * (1.0 + r * r))
        tau = r * sigma_g
        sigma_tot = mean_cv / np.sqrt(n_eff)
        h = sigma_tot / 40.0
        vmax = mean_cv + 14.0 * sigma_tot + 12.0 * tau
        grid = np.arange(0.0, vmax + h, h)
        pdf = _gamma_with_tail(grid, h, mean_cv - tau, sigma_g, tau)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * h)])
        cdf = np.minimum(cdf / cdf[-1], 1.0)
        return cls(grid=grid, pdf=pdf, cdf=cdf, bed_height_cm=bed_height_cm)

    def step(self, dv: Array) -> Array:
        """Fraction of a step at the inlet seen at the outlet, `dv` CV after the step."""
        return np.interp(dv, self.grid, self.cdf, left=0.0, right=1.0)

    def plates(self) -> float:
        return moments(self.grid, self.pdf).plates

    def hetp_cm(self) -> float:
        return self.bed_height_cm / self.plates()

    def asymmetry(self) -> float:
        return asymmetry(self.grid, self.pdf)

    def tail_ratio(self) -> float:
        """tau/sigma of this response's tail, reused to shape the elution peak alike."""
        m = moments(self.grid, self.pdf)
        return tail_ratio_for_asymmetry(self.asymmetry()) if m.variance > 0 else 0.0


def breakthrough_fraction(loaded_g_l: Array, dbc10_g_l: float, width_g_l: float) -> Array:
    """Outlet/feed product concentration vs mass loaded per litre of resin.

    Logistic breakthrough curve pinned so that c/c0 = 10% exactly at the dynamic binding
    capacity DBC10 (which is how DBC is defined and measured).
    """
    q50 = dbc10_g_l + width_g_l * np.log(9.0)
    z = np.clip((np.asarray(loaded_g_l) - q50) / width_g_l, -50.0, 50.0)
    return 1.0 / (1.0 + np.exp(-z))


def peak_pdf(dv: Array, mean_cv: float, sd_cv: float, tail_ratio: float) -> Array:
    """A unit-area chromatographic peak in CV: gamma core convolved with an exponential tail.

    The total mean and standard deviation are `mean_cv` and `sd_cv`; `tail_ratio` (tau/sigma
    of the core) sets the tailing, shared with the column's own response.
    """
    sigma_g = sd_cv / np.sqrt(1.0 + tail_ratio**2)
    tau = tail_ratio * sigma_g
    h = sigma_g / 30.0
    grid = np.arange(0.0, mean_cv + 12 * sd_cv + 12 * tau + h, h)
    pdf = _gamma_with_tail(grid, h, mean_cv - tau, sigma_g, tau)
    return np.interp(dv, grid, pdf, left=0.0, right=0.0)


def darcy_pressure_bar(
    flow_lpm: Array,
    viscosity_mpa_s: Array,
    bed_height_cm: float,
    area_cm2: float,
    permeability_m2: float,
) -> Array:
    """Pressure drop over the packed bed by Darcy's law: dP = mu * u * L / K."""
    u_m_s = (flow_lpm / 60_000.0) / (area_cm2 * 1e-4)  # (L/min -> m3/s) / m2
    return viscosity_mpa_s * 1e-3 * u_m_s * (bed_height_cm / 100.0) / permeability_m2 / 1e5
