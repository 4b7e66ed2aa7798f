"""Golden-batch envelope and drift of a batch against it.

The envelope is kept per recipe, unit, phase and bin of phase CV (phase CV, so phases of
different length still line up; per unit, because flow and pressure scale with the column:
the same recipe runs at 53 L/min on a 120 cm column and 37 L/min on a 100 cm one). It is
built from the most recent `window` released batches of that recipe on that unit. Released
is the platform's own verdict (see `causal_drift`), never the simulator's truth.

Limits are robust: centre = median; scale = the standard deviation of the reference batches
within 3.5 standard deviations of the centre (robust ones, 1.4826 x MAD, or plain ones if
more: a tight core of 5 of 8 batches within 0.01 pH made the MAD a fifth of the spread), so
the odd bad batch that slipped into a long history does not drag it, times sqrt(1 + 1/n) (a new batch varies around a
centre that is itself estimated from n batches) and by Student's t over the normal
(`small_sample_factor`: the spread is estimated too), never below a floor per signal: the
unit's instrument accuracy from equipment master data (`Floor`; a bin where every batch
agrees to the last digit must not turn noise into alarms). Not the MAD itself: it is a
third as efficient as the standard deviation on
normal data, and from 23 batches it once came out at 0.57 of the spread, turning a buffer
3.3 sd off its mean into z = 6.6 and a good batch into a failed one. A bin with fewer
than `min_batches` batches has no limit at all rather than a false one. Mean, standard
deviation and quantiles are reported beside them for the dashboards.

Drift: z = (value - centre) / scale per bin; a bin is outside when |z| > z_limit, and a
signal drifts when `persistence` consecutive bins with a limit are outside (one noisy bin
is not an alarm). The alarm is placed where it could first have been raised: at the end of
the last bin of that run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY, Accuracy

MAD_TO_SD = 1.4826
#: reference values farther than this many robust sd from the centre do not enter the scale
TRIM_MADS = 3.5
#: the tail probability at which the small-sample factor matches Student's t to the normal
TAIL = 0.001
QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class Floor:
    """The smallest scale a limit may have, per signal: absolute + |centre| x of_reading,
    the unit's instrument accuracy (equipment master data, `instrument_accuracy`)."""

    absolute: npt.NDArray[np.float64]
    of_reading: npt.NDArray[np.float64]

    @classmethod
    def of(cls, accuracy: Mapping[str, Accuracy], signals: Sequence[str] = SIGNALS) -> Floor:
        """A unit's floor; a signal it does not declare takes the platform's default, and
        one the platform does not know has none."""
        acc = [accuracy.get(s) or DEFAULT_ACCURACY.get(s) or Accuracy(0.0) for s in signals]
        return cls(
            np.array([a.absolute for a in acc], dtype=np.float64),
            np.array([a.of_reading for a in acc], dtype=np.float64),
        )

    def at(self, centre: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The floor at each centre (the signal axis last)."""
        return self.absolute + np.abs(centre) * self.of_reading


#: a unit that declares no accuracy (and the tests' constructed groups)
DEFAULT_FLOOR = Floor.of(DEFAULT_ACCURACY)


@dataclass(frozen=True)
class EnvelopeParams:
    min_batches: int = 5
    window: int = 40
    z_limit: float = 6.0
    persistence: int = 2
    bin_width_cv: float = 0.1
    signals: tuple[str, ...] = SIGNALS


@dataclass
class BinnedBatches:
    """One recipe on one unit: batches in start order over a shared, ordered set of bins.

    values[b, k, s]: batch b's mean of signal s in bin k (NaN where the batch has no data);
    batch_cv[b, k]: the bin's mean batch CV in batch b; keys[k] = (phase order, phase, bin).
    """

    recipe: str
    unit_id: str
    batch_ids: list[str]
    keys: list[tuple[int, str, int]]
    values: npt.NDArray[np.float64]
    batch_cv: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Limits:
    """Robust limits over one reference set (arrays of shape (bins, signals))."""

    n: npt.NDArray[np.int64]
    centre: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]


def limits(ref: npt.NDArray[np.float64], params: EnvelopeParams, floor: Floor) -> Limits:
    """Limits from reference batches ref[b, k, s], never tighter than `floor`."""
    if floor.absolute.shape != (ref.shape[-1],):
        raise ValueError(
            f"a floor of {floor.absolute.shape[0]} signals for {ref.shape[-1]}: build it with "
            "Floor.of(accuracy, params.signals)"
        )
    n = np.sum(np.isfinite(ref), axis=0)
    with np.errstate(all="ignore"), _quiet():
        centre = np.nanmedian(ref, axis=0)
        mad = np.nanmedian(np.abs(ref - centre), axis=0) * MAD_TO_SD
        # trim at 3.5 x the larger of the two spreads: a tight core of a few batches (5 of 8
        # within 0.01 pH) makes the MAD alone a fifth of the spread and would trim good
        # batches away
        spread = np.fmax(mad, np.nanstd(ref, axis=0, ddof=1))
        inside = np.where(np.abs(ref - centre) <= TRIM_MADS * spread, ref, np.nan)
        sd = np.nanstd(inside, axis=0, ddof=1) * small_sample_factor(n)
    scale = np.fmax(np.fmax(sd, 0.0), floor.at(centre))
    valid = (n >= params.min_batches) & np.isfinite(centre)
    return Limits(n=n, centre=centre, scale=scale, valid=valid)


def small_sample_factor(n: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """How much wider a limit from n reference batches must be than one from a known
    spread: a new batch varies around an estimated centre (sqrt(1 + 1/n)), and the spread
    itself is estimated (Student's t over the normal quantile at the 0.1% tail): together
    1.64 at n = 8, 1.19 at 20, 1.09 at 40. Without it, a young envelope raised most false alarms:
    from 8 batches the standard deviation is below 0.6 of the true spread one time in 20."""
    # imported here: scipy.stats costs ~1 s to import, and every process that reads the
    # settings (the bridge, each of its restarts, the CLI) imports this module, most never
    # fitting an envelope
    from scipy import stats

    m = np.maximum(np.asarray(n, dtype=np.float64), 2.0)
    return np.asarray(
        np.sqrt(1.0 + 1.0 / m) * stats.t.ppf(1 - TAIL, m - 1) / stats.norm.ppf(1 - TAIL)
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """numpy warns on all-NaN slices (bins no reference batch reached): expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def neighbours(keys: Sequence[tuple[int, str, int]]) -> npt.NDArray[np.intp]:
    """For each bin, the index of the bin before and after it in the same phase (or itself):
    shape (bins, 3) as [previous, self, next]."""
    n = len(keys)
    out = np.tile(np.arange(n)[:, None], (1, 3))
    for k in range(n):
        if k > 0 and keys[k - 1][0] == keys[k][0] and keys[k - 1][2] == keys[k][2] - 1:
            out[k, 0] = k - 1
        if k + 1 < n and keys[k + 1][0] == keys[k][0] and keys[k + 1][2] == keys[k][2] + 1:
            out[k, 2] = k + 1
    return out


def zscores(
    values: npt.NDArray[np.float64],
    lim: Limits,
    near: npt.NDArray[np.intp] | None = None,
) -> npt.NDArray[np.float64]:
    """z per bin and signal for one batch (NaN where no limit or no data).

    With `near` (see `neighbours`), each bin is compared with its own limits and those of
    the bins either side in the same phase, and keeps the z smallest in size: on a steep
    front (a buffer transition, the elution peak) a shift of a few hundredths of a CV, well
    inside normal variation, changes a bin's mean a lot; one bin of tolerance in position
    keeps that from reading as drift, while a level or shape change still does."""
    z = np.where(lim.valid, (values - lim.centre) / lim.scale, np.nan)
    if near is None:
        return z
    cand = np.stack(
        [
            np.where(
                lim.valid[near[:, j]],
                (values - lim.centre[near[:, j]]) / lim.scale[near[:, j]],
                np.nan,
            )
            for j in range(3)
        ]
    )
    with _quiet():
        best = np.nanargmin(np.where(np.isfinite(cand), np.abs(cand), np.inf), axis=0)
    picked = np.take_along_axis(cand, best[None], axis=0)[0]
    return np.where(np.isfinite(z), picked, np.nan)


@dataclass(frozen=True)
class SignalDrift:
    signal: str
    verdict: str  # "drift", "watch", "pass" or "no_envelope"
    bins_judged: int
    bins_outside: int
    max_abs_z: float
    first_out_key: tuple[int, str, int] | None = None
    first_out_cv: float = float("nan")
    #: batch CV at which the persistence rule was met (where the alarm goes)
    alarm_cv: float = float("nan")
    alarm_key: tuple[int, str, int] | None = None
    z_at_alarm: float = float("nan")

    @property
    def fraction_outside(self) -> float:
        return self.bins_outside / self.bins_judged if self.bins_judged else float("nan")


def persistent_run(outside: npt.NDArray[np.bool_], judged: npt.NDArray[np.bool_], k: int) -> int:
    """Index (into the full bin order) of the bin that completes the first run of `k`
    consecutive judged bins outside; bins without a limit are skipped, not counted as in.
    -1 when there is none."""
    idx = np.flatnonzero(judged)
    if idx.size < k:
        return -1
    o = outside[idx].astype(np.int64)
    c = np.concatenate([[0], np.cumsum(o)])
    full = np.flatnonzero(c[k:] - c[:-k] == k)
    return int(idx[full[0] + k - 1]) if full.size else -1


def judge(
    z: npt.NDArray[np.float64],
    batch_cv: npt.NDArray[np.float64],
    keys: Sequence[tuple[int, str, int]],
    params: EnvelopeParams,
) -> list[SignalDrift]:
    """Drift of one batch per signal from its z[k, s] (see the module docstring)."""
    out: list[SignalDrift] = []
    for j, s in enumerate(params.signals):
        zs = z[:, j]
        judged = np.isfinite(zs)
        if not judged.any():
            out.append(SignalDrift(s, "no_envelope", 0, 0, float("nan")))
            continue
        outside = judged & (np.abs(np.where(judged, zs, 0.0)) > params.z_limit)
        max_z = float(np.nanmax(np.abs(zs)))
        end = persistent_run(outside, judged, params.persistence)
        if end < 0:
            verdict = "watch" if outside.any() else "pass"
            out.append(SignalDrift(s, verdict, int(judged.sum()), int(outside.sum()), max_z))
            continue
        # the run's first bin: walk back over judged bins
        run = np.flatnonzero(judged[: end + 1])[-params.persistence :]
        first = int(run[0])
        out.append(
            SignalDrift(
                s,
                "drift",
                int(judged.sum()),
                int(outside.sum()),
                max_z,
                first_out_key=keys[first],
                first_out_cv=float(batch_cv[first]),
                alarm_cv=float(batch_cv[end]) + params.bin_width_cv / 2,
                alarm_key=keys[end],
                z_at_alarm=float(zs[end]),
            )
        )
    return out


@dataclass
class DriftHistory:
    """What `causal_drift` found for one recipe on one unit."""

    drift: dict[str, list[SignalDrift]] = field(default_factory=dict)
    reference_size: dict[str, int] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)
    #: the envelope as it stands after the last batch (for gold_golden_envelope)
    current: Limits | None = None
    current_reference: list[int] = field(default_factory=list)


def causal_drift(
    group: BinnedBatches,
    other_findings: dict[str, bool],
    params: EnvelopeParams,
    *,
    floor: Floor,
    start_at: int = 0,
    released_before: Sequence[int] = (),
    decisions: Mapping[str, str] | None = None,
) -> DriftHistory:
    """Judge every batch against the envelope of the batches released before it, in order,
    as the platform would have at the time; a batch is released when it has no drift and
    no other finding (`other_findings[batch_id]`: batch-result alerts, data gaps, flatlined
    sensors, column performance) and it is complete.

    Before `min_batches` batches are released there is no envelope: those batches are
    judged by their other findings alone (the robust limits tolerate the odd bad one).

    Incremental: batches before `start_at` were judged by an earlier run and did not change
    since; `released_before` lists which of them were released, and judging resumes at
    `start_at` (so a run costs the new batches, not the history).

    `decisions` are the engineers' say (batch id -> "pin" or "exclude"): a pinned batch is
    released whatever the platform found, an excluded one never."""
    decisions = decisions or {}
    hist = DriftHistory()
    released: list[int] = [i for i in released_before if i < start_at]
    hist.released = [group.batch_ids[i] for i in released]
    near = neighbours(group.keys)
    for i in range(start_at, len(group.batch_ids)):
        bid = group.batch_ids[i]
        ref = released[-params.window :]
        if ref:
            lim = limits(group.values[ref], params, floor)
            z = zscores(group.values[i], lim, near)
        else:
            z = np.full(group.values.shape[1:], np.nan)
        d = judge(z, group.batch_cv[i], group.keys, params)
        hist.drift[bid] = d
        hist.reference_size[bid] = len(ref)
        clean = not other_findings.get(bid, True) and not any(x.verdict == "drift" for x in d)
        say = decisions.get(bid)
        if say == "pin" or (clean and say != "exclude"):
            released.append(i)
            hist.released.append(bid)
    ref = released[-params.window :]
    hist.current_reference = ref
    hist.current = limits(group.values[ref], params, floor) if ref else None
    return hist


def align(
    keys: Sequence[tuple[int, str, int]],
    values: npt.NDArray[np.float64],
    to: Sequence[tuple[int, str, int]],
) -> npt.NDArray[np.float64]:
    """values[b, k, s] over `keys` re-indexed to the bins `to` (NaN where absent)."""
    pos = {k: i for i, k in enumerate(keys)}
    out = np.full((values.shape[0], len(to), values.shape[2]), np.nan)
    src = [pos.get(k, -1) for k in to]
    have = np.array([s >= 0 for s in src], dtype=bool)
    if have.any():
        out[:, have] = values[:, [s for s in src if s >= 0]]
    return out


#: bins at a batch's start whose median column pressure drop the cross-unit envelope
#: divides by (`unit_free`)
PRESSURE_START_BINS = 10


@dataclass(frozen=True)
class ColumnScale:
    """What makes one recipe's signals comparable between columns (equipment master data)."""

    area_cm2: float
    bed_height_cm: float
    uv_path_length_cm: float
    system_bar_per_lpm: float


def unit_free(
    values: npt.NDArray[np.float64], column: ColumnScale, signals: Sequence[str] = SIGNALS
) -> npt.NDArray[np.float64]:
    """values[b, k, s] of one unit made comparable with other units' of the same recipe
    (bins k in batch order): flow as linear velocity (a recipe sets velocity; flow scales
    with the column's area), UV per cm of flow-cell path (Beer-Lambert), pressure as the
    column's own drop (the skid's pressure at that flow removed) over its median in the
    batch's first `PRESSURE_START_BINS` bins (at one velocity and buffer the drop scales
    with bed height and the packing's permeability, which differ column to column: a
    pressure rise shows as the course through the batch, not the level); pH and
    conductivity as they are (the recipe's buffers)."""
    out = np.array(values, dtype=np.float64, copy=True)
    idx = {s: j for j, s in enumerate(signals)}
    if "pressure_bar" in idx:
        j = idx["pressure_bar"]
        drop, start = _pressure_drop(values, column, idx)
        out[..., j] = drop / np.where(start > 0, start, np.nan)[..., None]
    for s, per in _PER_COLUMN.items():
        if s in idx:
            out[..., idx[s]] = values[..., idx[s]] / getattr(column, per)
    return out


#: the signals made comparable by dividing by a property of the column (unit_free)
_PER_COLUMN = {"flow_lpm": "area_cm2", "uv_mau": "uv_path_length_cm"}


def _pressure_drop(
    values: npt.NDArray[np.float64], column: ColumnScale, idx: Mapping[str, int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The column's own pressure drop (bins k in batch order, signals last) and its median
    over each batch's first `PRESSURE_START_BINS` bins: columns of one resin differ in
    packing and fouling (cycles run), so the drop's level does not carry from one to another;
    its course through the batch does."""
    flow = values[..., idx["flow_lpm"]] if "flow_lpm" in idx else 0.0
    drop = values[..., idx["pressure_bar"]] - column.system_bar_per_lpm * flow
    with np.errstate(all="ignore"), _quiet():
        start = np.nanmedian(drop[..., :PRESSURE_START_BINS], axis=-1)
    return drop, start


def unit_free_floor(
    floor: Floor,
    values: npt.NDArray[np.float64],
    column: ColumnScale,
    signals: Sequence[str] = SIGNALS,
) -> Floor:
    """A unit's floor where `unit_free` puts the batch `values[k, s]` of that unit: the
    absolute parts divided as the signals are (flow by the column's area, UV by the path
    length, pressure by the batch's starting drop), the shares of the reading unchanged."""
    idx = {s: j for j, s in enumerate(signals)}
    absolute = floor.absolute.copy()
    for s, per in _PER_COLUMN.items():
        if s in idx:
            absolute[idx[s]] /= getattr(column, per)
    if "pressure_bar" in idx:
        _, start = _pressure_drop(values, column, idx)
        if np.isfinite(start) and start > 0:
            absolute[idx["pressure_bar"]] /= float(start)
    return Floor(absolute, floor.of_reading)


def cross_unit_drift(
    group: BinnedBatches,
    i: int,
    pool: Sequence[tuple[BinnedBatches, int, ColumnScale]],
    column: ColumnScale,
    params: EnvelopeParams,
    floor: Floor,
) -> tuple[list[SignalDrift], int]:
    """Batch i of a unit without an envelope of its own, judged against the same recipe's
    released batches on every unit (its own among them): `pool` lists them (group, batch
    index, column), the caller keeping the newest `window`; all made unit-free, and the
    limits floored by the judged unit's instruments (`floor`, made unit-free too). Returns
    the drift per signal and how many batches the limits rest on (below `min_batches`
    there is no limit: every signal is `no_envelope`)."""
    if len(pool) < params.min_batches:
        z = np.full(group.values.shape[1:], np.nan)
        return judge(z, group.batch_cv[i], group.keys, params), len(pool)
    ref = np.concatenate(
        [
            align(g.keys, unit_free(g.values[j : j + 1], col, params.signals), group.keys)
            for g, j, col in pool
        ]
    )
    lim = limits(ref, params, unit_free_floor(floor, group.values[i], column, params.signals))
    z = zscores(unit_free(group.values[i], column, params.signals), lim, neighbours(group.keys))
    return judge(z, group.batch_cv[i], group.keys, params), len(pool)


def envelope_rows(
    group: BinnedBatches, hist: DriftHistory, params: EnvelopeParams
) -> list[dict[str, object]]:
    """gold_golden_envelope rows for one recipe on one unit: per phase, bin and signal."""
    if hist.current is None:
        return []
    ref = group.values[hist.current_reference]
    lim = hist.current
    with np.errstate(all="ignore"), _quiet():
        mean = np.nanmean(ref, axis=0)
        sd = np.nanstd(ref, axis=0, ddof=1) if ref.shape[0] > 1 else np.full_like(mean, np.nan)
        qs = np.nanquantile(ref, QUANTILES, axis=0)
    rows: list[dict[str, object]] = []
    for k, (order, phase, cv_bin) in enumerate(group.keys):
        for j, s in enumerate(params.signals):
            n = int(lim.n[k, j])
            if n == 0:
                continue
            ok = bool(lim.valid[k, j])
            c, sc = float(lim.centre[k, j]), float(lim.scale[k, j])
            rows.append(
                {
                    "recipe": group.recipe,
                    "unit_id": group.unit_id,
                    "phase_order": order,
                    "phase": phase,
                    "cv_bin": cv_bin,
                    "phase_cv_start": cv_bin * params.bin_width_cv,
                    "signal": s,
                    "n_batches": n,
                    "mean": _f(mean[k, j]),
                    "std": _f(sd[k, j]),
                    "q05": _f(qs[0, k, j]),
                    "q50": _f(qs[1, k, j]),
                    "q95": _f(qs[2, k, j]),
                    "centre": c if ok else None,
                    "scale": sc if ok else None,
                    "lower": c - params.z_limit * sc if ok else None,
                    "upper": c + params.z_limit * sc if ok else None,
                    # the recipe's own limit: what the live drift judges by too
                    "z_limit": params.z_limit,
                }
            )
    return rows


def _f(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
