"""Multivariate batch monitoring: multiway PCA on CV bins (Nomikos and MacGregor).

Where the golden envelope (envelope.py) judges each signal in each bin on its own, this
judges the five signals together, as the systems process engineers compare us with
(SIMCA-online, batch-maturity models) do:

* **Alignment and unfolding.** A batch is the means of its signals in bins of phase CV (the
  bins of gold_trend_binned and the envelope; column volume is the maturity axis, so no
  time warping is needed within a phase). Bins are keyed per phase, so phases of different
  length still line up; the bins of a recipe on a unit, in phase order, are unfolded
  batch-wise into one row per batch (bins x signals columns). A bin enters the model when
  at least `min_bin_coverage` of the reference batches reach it (the end of a load that
  follows the feed titer does not always).
* **Model.** Each column is centred and scaled on the reference (released) batches, the
  scale floored per signal as the envelope's is (a bin where every batch agrees to the last
  digit must not turn noise into alarms); principal components by scikit-learn's PCA.
* **Online scoring.** Part-way through a batch only the bins so far are known. The scores
  are estimated by trimmed score regression (Arteaga and Ferrer, 2002): the trimmed scores
  tau_k = sum over observed bins <= k of P_i' x_i are regressed on the full scores over the
  reference batches, one A x A map per bin, so estimating the scores after a new bin costs
  one small update (what lets the live bridge score every bin as it completes).
* **Statistics per bin.** Hotelling's T2 of the estimated scores against their own spread at
  that bin (early estimates are shrunk, so their spread is smaller: Garcia-Munoz, Kourti and
  MacGregor, 2004), and the SPE of the newest bin (the part the model does not explain) per
  signal block (multiblock: Westerhuis, Kourti and MacGregor, 1998): summed over the five
  signals, a pressure shift the instruments resolve easily drowns in a bin where
  conductivity and pH are crossing a buffer front, so each signal's residual has its own
  limit.
* **Limits per bin, cross-validated.** A reference batch scored by a model that was fitted
  on it looks better than a new batch will (its own noise is in the loadings). So the
  limits come from reference batches scored by models fitted without them (`folds`-fold),
  moment-matched to a scaled chi-squared (Box, 1954) over a window of neighbouring bins in
  the same phase, at tail `alpha`.
* **Alarm.** T2 or SPE over its limit for `persistence` consecutive bins (the envelope's
  rule), placed at the end of the bin that completes the run.
* **Diagnosis.** Each alarm lists the signals that contribute most: to the SPE of the bins of
  the run (squared residuals), or to T2 (the part of T2 each signal's observed cells carry,
  exact: the contributions sum to T2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.analytics.envelope import (
    BinnedBatches,
    Floor,
    _quiet,
    align,
    persistent_run,
)
from chrom_platform.lib.core.contracts import SIGNALS

Array = npt.NDArray[np.float64]
Key = tuple[int, str, int]
#: relative size below which a direction of the estimated scores' covariance is left out
COV_RCOND = 1e-6


@dataclass(frozen=True)
class MspcParams:
    #: tail probability of each bin's limit: the shape of the limits along the batch
    alpha: float = 0.001
    #: the share of fault-free batches that may alarm: the limits are scaled so that the
    #: largest persistent ratio of a reference batch scored forward (a maximum over hundreds
    #: of bins, so Gumbel-distributed) exceeds 1 with this probability
    batch_false_alarm: float = 0.01
    #: how many of the newest reference batches are scored forward for that widening (at
    #: most the newer half: each needs batches before it to be scored by)
    forward_batches: int = 12
    #: the limits sit at this one-sided confidence bound of that quantile, not at its
    #: estimate: a 1% quantile estimated from the dozen batches a young model can score
    #: forward is itself uncertain (its standard error is about the maxima's own spread),
    #: and a limit at the point estimate let 6.5% of fault-free batches through on held-out
    #: seeds. None: the point estimate.
    limit_confidence: float | None = 0.9
    #: a model of fewer reference batches than this is young: its alarms are warnings
    #: (its limits rest on few batches), a model this old or older fails a batch
    mature_batches: int = 20
    persistence: int = 2
    max_components: int = 6
    #: a fixed number of components (None: chosen by the broken stick, see `_components`)
    components: int | None = None
    folds: int = 5
    #: below this many reference batches there is no model (the check says so)
    min_batches: int = 12
    min_bin_coverage: float = 0.5
    #: bins either side (same phase) whose reference statistics a bin's limit pools
    limit_window: int = 2
    #: no bin's SPE limit is below what a deviation of this many scale floors (the unit's
    #: instrument accuracy, envelope.Floor) in one signal gives: where the reference
    #: batches agree closer than the
    #: instruments resolve, the cross-validated limit alone would turn a slow trend of a
    #: few thousandths of a bar (column fouling) into alarms
    floor_z: float = 0.5
    #: SPE is averaged over this many bins up to the newest (a level shift that persists is
    #: seen through the bin-to-bin noise sooner)
    spe_window: int = 1
    bin_width_cv: float = 0.1
    signals: tuple[str, ...] = SIGNALS


@dataclass
class MspcModel:
    """One recipe on one unit. Arrays over the model's bins K, signals J, components A."""

    recipe: str
    unit_id: str
    keys: list[Key]
    signals: tuple[str, ...]
    mean: Array  # (K, J)
    scale: Array  # (K, J)
    loadings: Array  # (K, J, A)
    tsr: Array  # (K, A, A): scores estimated after bin k = tau_k @ tsr[k]
    score_cov_inv: Array  # (K, A, A)
    t2_limit: Array  # (K,)
    spe_limit: Array  # (K, J): per signal block
    explained: Array  # (A,) fraction of variance
    batch_ids: list[str]
    params: MspcParams
    version: str = ""
    #: how much the per-bin limits were widened for `batch_false_alarm` (see `fit`)
    limit_factor: float = 1.0

    @property
    def components(self) -> int:
        return int(self.loadings.shape[2])

    def batch(self, group: BinnedBatches, i: int) -> tuple[Array, Array]:
        """Batch i of the group on the model's bins: its values (K, J) and each bin's mean
        batch CV (K,), NaN where the batch has no such bin."""
        values = align(group.keys, group.values[i : i + 1], self.keys)[0]
        cv = align(group.keys, group.batch_cv[i : i + 1, :, None], self.keys)[0, :, 0]
        return values, cv

    def score(self, values: Array) -> MspcTrace:
        """T2, SPE and estimated scores after each bin of one batch (values (K, J))."""
        return _score(self, values[None])[0]


@dataclass
class MspcTrace:
    """One batch's statistics after each model bin (NaN where the bin was not observed)."""

    t2: Array
    spe: Array  # (K, J): per signal block
    scores: Array  # (K, A)
    x: Array  # (K, J) centred and scaled values, 0 where not observed
    observed: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MspcAlarm:
    key: Key
    bin_index: int
    statistic: str  # "t2" or "spe"
    ratio: float  # the statistic over its limit at the alarm
    batch_cv: float
    #: signal -> share of the statistic it carries, largest first
    contributions: dict[str, float] = field(default_factory=dict)

    def top(self, n: int = 3) -> list[str]:
        return list(self.contributions)[:n]


@dataclass(frozen=True)
class MspcJudgement:
    verdict: str  # "alarm", "pass" or "no_model"
    bins_judged: int
    max_ratio: float
    alarm: MspcAlarm | None = None


@dataclass
class _Core:
    mean: Array
    scale: Array
    loadings: Array
    tsr: Array
    score_cov_inv: Array
    explained: Array


def _standardise(values: Array, mean: Array, scale: Array) -> tuple[Array, npt.NDArray[np.bool_]]:
    x = (values - mean) / scale
    observed: npt.NDArray[np.bool_] = np.asarray(np.isfinite(x).all(axis=2))
    return np.where(observed[..., None], x, 0.0), observed


def _fit_core(values: Array, components: int, floor: Floor) -> _Core:
    from sklearn.decomposition import PCA

    with _quiet():
        mean = np.nanmean(values, axis=0)
        sd = np.nanstd(values, axis=0, ddof=1)
    scale = np.fmax(np.nan_to_num(sd), floor.at(mean))
    # a column that never varies (and has no floor) carries no information: centred it is 0
    scale = np.where(scale > 0, scale, 1.0)
    x, _ = _standardise(values, mean, scale)
    n, k, j = x.shape
    pca = PCA(n_components=components, svd_solver="full").fit(x.reshape(n, k * j))
    p = pca.components_.T.reshape(k, j, components)
    t = (x.reshape(n, k * j) - pca.mean_) @ pca.components_.T
    # x is centred by the reference mean already; sklearn's own mean of x is ~0 (imputed
    # cells aside): scoring below uses x directly, as a new batch is scored
    tau = np.cumsum(np.einsum("nkj,kja->nka", x, p), axis=1)  # (n, K, A)
    gram = np.einsum("nka,nkb->kab", tau, tau) + 1e-9 * np.eye(components)
    cross = np.einsum("nka,nb->kab", tau, t)
    tsr = np.linalg.solve(gram, cross)  # (K, A, A)
    est = np.einsum("nka,kab->nkb", tau, tsr)
    cov = np.einsum("nka,nkb->kab", est, est) / max(n - 1, 1)
    # after the first bins the estimated scores span fewer directions than the model has
    # (condition numbers of 1e13 at the first bin): the pseudo-inverse leaves those out
    # rather than turning rounding into T2
    inv = np.linalg.pinv(cov, rcond=COV_RCOND, hermitian=True)
    return _Core(mean, scale, p, tsr, inv, pca.explained_variance_ratio_)


def _window_mean(x: Array, observed: npt.NDArray[np.bool_], w: int) -> Array:
    """Mean over the last w bins of x (b, K, J), of observed bins only."""
    if w <= 1:
        return x
    v = np.where(observed[..., None], x, 0.0)
    c = np.cumsum(v, axis=1)
    n = np.cumsum(observed, axis=1).astype(np.float64)[..., None]
    c[:, w:] = c[:, w:] - c[:, :-w].copy()
    n[:, w:] = n[:, w:] - n[:, :-w].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return c / n


def _stats(
    core: _Core, values: Array, spe_window: int = 1
) -> tuple[Array, Array, Array, Array, npt.NDArray[np.bool_]]:
    """T2 (b, K), SPE (b, K), scores (b, K, A), x (b, K, J), observed (b, K)."""
    x, observed = _standardise(values, core.mean, core.scale)
    tau = np.cumsum(np.einsum("nkj,kja->nka", x, core.loadings), axis=1)
    scores = np.einsum("nka,kab->nkb", tau, core.tsr)
    t2 = np.einsum("nka,kab,nkb->nk", scores, core.score_cov_inv, scores)
    resid = x - np.einsum("kja,nka->nkj", core.loadings, scores)
    spe = _window_mean(resid**2, observed, spe_window)
    t2 = np.where(observed, t2, np.nan)
    spe = np.where(observed[..., None], spe, np.nan)
    return t2, spe, scores, x, observed


def _score(model: MspcModel, values: Array) -> list[MspcTrace]:
    core = _Core(
        model.mean, model.scale, model.loadings, model.tsr, model.score_cov_inv, model.explained
    )
    t2, spe, scores, x, observed = _stats(core, values, model.params.spe_window)
    return [MspcTrace(t2[i], spe[i], scores[i], x[i], observed[i]) for i in range(len(values))]


def _components(explained_of_full: Array, n_batches: int, params: MspcParams) -> int:
    """Components above the broken-stick expectation (Jackson, 1993), at least 1, at most
    `max_components` and a quarter of the reference batches (a model needs batches to
    spare for its limits)."""
    m = explained_of_full.size
    stick = np.array([np.sum(1.0 / np.arange(i, m + 1)) / m for i in range(1, m + 1)])
    above = explained_of_full > stick
    a = int(np.argmin(above)) if not above.all() else m
    return int(max(1, min(a, params.max_components, n_batches // 4)))


def _moment_limit(samples: Array, alpha: float) -> float:
    """The 1 - alpha quantile of g x chi2(h) with the samples' mean and variance (Box)."""
    s = samples[np.isfinite(samples)]
    if s.size < 3:
        return float("nan")
    m, v = float(np.mean(s)), float(np.var(s, ddof=1))
    if m <= 0 or v <= 0:
        return float(np.max(s)) if s.size else float("nan")
    g, h = v / (2 * m), 2 * m * m / v
    from scipy import stats  # imported when a model is fitted (see column.py's savgol)

    return float(g * stats.chi2.ppf(1 - alpha, h))


def _pooled_limits(values: Array, keys: Sequence[Key], params: MspcParams) -> Array:
    """Per bin: the moment-matched limit over the reference statistics of the bins within
    `limit_window` of it in the same phase."""
    k = len(keys)
    out = np.full(k, np.nan)
    w = params.limit_window
    for i in range(k):
        lo, hi = i, i
        while lo - 1 >= 0 and i - (lo - 1) <= w and keys[lo - 1][0] == keys[i][0]:
            lo -= 1
        while hi + 1 < k and (hi + 1) - i <= w and keys[hi + 1][0] == keys[i][0]:
            hi += 1
        out[i] = _moment_limit(values[:, lo : hi + 1].ravel(), params.alpha)
    return out


def fit(
    group: BinnedBatches, reference: Sequence[int], params: MspcParams, floor: Floor
) -> MspcModel | None:
    """The model of one recipe on one unit from its batches `reference` (indices into the
    group: released batches, oldest first), each signal's scale never below the unit's
    instrument `floor` (as the envelope's). None when there are fewer than `min_batches`."""
    ref = list(reference)
    if len(ref) < params.min_batches:
        return None
    values = group.values[ref]
    observed = np.isfinite(values).all(axis=2)
    keep = observed.mean(axis=0) >= params.min_bin_coverage
    keys = [k for k, ok in zip(group.keys, keep, strict=True) if ok]
    values = values[:, keep]
    n = len(ref)
    full = _fit_core(values, min(n - 1, values.shape[1] * values.shape[2]), floor)
    a = params.components or _components(full.explained, n, params)
    core = _fit_core(values, a, floor)
    # cross-validated statistics for the limits: each batch scored by a model without it
    folds = min(params.folds, n)
    t2_cv = np.full((n, len(keys)), np.nan)
    spe_cv = np.full((n, len(keys), len(params.signals)), np.nan)
    order = np.arange(n)
    for f in range(folds):
        held = np.array_split(order, folds)[f]
        train = np.setdiff1d(order, held)
        c = _fit_core(values[train], min(a, len(train) - 1), floor)
        t2_cv[held], spe_cv[held], *_ = _stats(c, values[held], params.spe_window)
    t2_limit = _pooled_limits(t2_cv, keys, params)
    spe_limit = np.fmax(
        np.column_stack(
            [_pooled_limits(spe_cv[:, :, j], keys, params) for j in range(spe_cv.shape[2])]
        ),
        (params.floor_z * floor.at(core.mean) / core.scale) ** 2,
    )
    # the batch-level widening, from batches scored as the platform scores them: each of
    # the newest reference batches by a model of the batches before it (cross-validation,
    # which brackets a batch by its neighbours, rated the next batch too kindly: 20% of
    # fault-free batches alarmed at limits it said would let 1% through)
    ahead = range(max(n // 2, n - params.forward_batches), n)
    t2_f = np.full((len(ahead), len(keys)), np.nan)
    spe_f = np.full((len(ahead), len(keys), len(params.signals)), np.nan)
    for r, k in enumerate(ahead):
        c = _fit_core(values[:k], min(a, k - 1), floor)
        t2_f[r], spe_f[r], *_ = _stats(c, values[k : k + 1], params.spe_window)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        ratio = np.fmax(t2_f / t2_limit, np.nanmax(spe_f / spe_limit, axis=2))
    factor = max(1.0, gumbel_quantile(persistent_max(ratio, params.persistence), params))
    model = MspcModel(
        recipe=group.recipe,
        unit_id=group.unit_id,
        keys=keys,
        signals=params.signals,
        mean=core.mean,
        scale=core.scale,
        loadings=core.loadings,
        tsr=core.tsr,
        score_cov_inv=core.score_cov_inv,
        t2_limit=t2_limit * factor,
        spe_limit=spe_limit * factor,
        limit_factor=factor,
        explained=core.explained,
        batch_ids=[group.batch_ids[i] for i in ref],
        params=params,
    )
    model.version = model_version(model)
    return model


def run_minima(x: Array, persistence: int) -> tuple[npt.NDArray[np.intp], Array]:
    """For one series over bins: each run of `persistence` consecutive observed (finite)
    bins, as the index of its last bin and the run's smallest value (the largest threshold
    the run would alarm at)."""
    idx = np.flatnonzero(np.isfinite(x))
    if idx.size < persistence:
        return idx[:0], np.empty(0)
    v = x[idx]
    m = v[persistence - 1 :].copy()
    for s in range(1, persistence):
        m = np.minimum(m, v[persistence - 1 - s : v.size - s])
    return idx[persistence - 1 :], m


def persistent_max(ratio: Array, persistence: int) -> Array:
    """Per batch (rows of ratio (batches, bins)): the largest threshold it would alarm at."""
    out = np.full(ratio.shape[0], -np.inf)
    for b in range(ratio.shape[0]):
        _, m = run_minima(ratio[b], persistence)
        if m.size:
            out[b] = float(m.max())
    return out


def gumbel_quantile(maxima: Array, params: MspcParams) -> float:
    """The 1 - batch_false_alarm quantile of a Gumbel fitted by moments to per-batch
    maxima (a batch's largest ratio over its bins; Fisher-Tippett), at its upper
    `limit_confidence` bound: the quantile x_T = mean + K sd of m maxima has the standard
    error sd / sqrt(m) * sqrt(1 + 1.1396 K + 1.1 K^2) (Kite, 1977: moments estimator)."""
    x = maxima[np.isfinite(maxima)]
    if x.size < 3:
        return 1.0
    sd = float(np.std(x, ddof=1))
    k = -np.sqrt(6.0) / np.pi * (0.5772156649 + np.log(-np.log(1.0 - params.batch_false_alarm)))
    q = float(np.mean(x)) + k * sd
    if params.limit_confidence is None:
        return q
    se = sd / np.sqrt(x.size) * np.sqrt(1.0 + 1.1396 * k + 1.1 * k * k)
    from scipy import stats

    return q + float(stats.norm.ppf(params.limit_confidence)) * se


def model_version(model: MspcModel) -> str:
    """A short content hash: the same reference batches and parameters, the same version."""
    h = hashlib.sha256()
    h.update(f"{model.recipe}|{model.unit_id}|{model.params}".encode())
    h.update("|".join(model.batch_ids).encode())
    for a in (model.mean, model.scale, model.loadings, model.t2_limit, model.spe_limit):
        h.update(np.ascontiguousarray(np.round(a, 12)).tobytes())
    return h.hexdigest()[:12]


def ratios(model: MspcModel, trace: MspcTrace) -> tuple[Array, Array]:
    """T2 and SPE over their limits per bin (NaN where not observed or no limit); SPE's is
    the largest over the signal blocks."""
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        return trace.t2 / model.t2_limit, np.nanmax(trace.spe / model.spe_limit, axis=1)


def judge(
    model: MspcModel | None,
    trace: MspcTrace | None,
    batch_cv: Array | None = None,
    *,
    threshold: float = 1.0,
) -> MspcJudgement:
    """Alarm when T2 or SPE is over `threshold` x its limit for `persistence` consecutive
    observed bins (see the module docstring); `batch_cv[k]`: the batch's mean CV in bin k."""
    if model is None or trace is None:
        return MspcJudgement("no_model", 0, float("nan"))
    rt, rs = ratios(model, trace)
    r = np.fmax(rt, rs)
    judged = np.isfinite(r)
    if not judged.any():
        return MspcJudgement("no_model", 0, float("nan"))
    outside = judged & (np.nan_to_num(r) > threshold)
    end = persistent_run(outside, judged, model.params.persistence)
    max_ratio = float(np.nanmax(r))
    if end < 0:
        return MspcJudgement("pass", int(judged.sum()), max_ratio)
    run = np.flatnonzero(judged[: end + 1])[-model.params.persistence :]
    statistic = "spe" if np.nansum(rs[run]) >= np.nansum(rt[run]) else "t2"
    cv = float(batch_cv[end]) + model.params.bin_width_cv / 2 if batch_cv is not None else np.nan
    alarm = MspcAlarm(
        key=model.keys[end],
        bin_index=end,
        statistic=statistic,
        ratio=float(r[end]),
        batch_cv=cv,
        contributions=contributions(model, trace, end, statistic, run),
    )
    return MspcJudgement("alarm", int(judged.sum()), max_ratio, alarm)


def contributions(
    model: MspcModel, trace: MspcTrace, k: int, statistic: str, run: npt.NDArray[np.intp]
) -> dict[str, float]:
    """Each signal's share of the statistic behind an alarm at bin k, largest first.

    SPE: each signal block's SPE over its limit, summed over the run. T2: t' S^-1 t with the scores
    estimated from the observed cells, t = sum_i x_i W_i, so T2 = sum over cells of
    x_ij (W_i S^-1 t)_j exactly; summed per signal over the bins observed so far."""
    if statistic == "spe":
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.nansum(trace.spe[run] / model.spe_limit[run], axis=0)
    else:
        per = t2_contributions(model, trace)[k]
    pos = np.fmax(per, 0.0)
    total = float(pos.sum())
    share = pos / total if total > 0 else pos
    order = np.argsort(-share, kind="stable")
    return {model.signals[i]: float(share[i]) for i in order}


def t2_contributions(model: MspcModel, trace: MspcTrace) -> Array:
    """(K, J): after each bin k, the part of T2 each signal's observed cells carry.

    The scores after bin k are t = u' tau_k with tau_k = sum over i <= k of P_i' x_i, so
    T2 = t' S_k^-1 t = sum over i <= k and j of x_ij P_ij (tsr_k S_k^-1 t); the cumulative
    sum of x_ij P_ij over bins makes every bin's split one product."""
    c = np.cumsum(trace.x[:, :, None] * model.loadings, axis=0)  # (K, J, A)
    u = np.einsum("kab,kbc,kc->ka", model.tsr, model.score_cov_inv, trace.scores)
    return np.einsum("kja,ka->kj", c, u)
