"""Totalized volume and column volumes (CV): the one integration rule of the platform.

The simulator (its ground truth), the streaming bridge (live `batch_cv` in InfluxDB) and the
warehouse (gold trend by CV) all call this module, so "CV" means the same thing everywhere:

* volume advances by the trapezoid rule on flow between consecutive readings of a batch;
* flow below the unit's dead band (a hold, a stopped pump, sensor noise around zero) counts
  as zero, so holds never advance CV;
* `batch_cv` = volume since the batch's first reading / column volume;
* `phase_cv` = volume since the first reading of the current phase segment / column volume.

The functions take a chunk of one batch's readings in time order plus the state left by the
previous chunk, so a live consumer can integrate micro-batch by micro-batch and get exactly
the numbers a whole-batch integration gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NS_PER_MIN = 60_000_000_000


@dataclass(frozen=True)
class CvState:
    """What integration of a batch needs to continue after its last processed reading."""

    ts_ns: int
    flow_eff_lpm: float
    volume_l: float
    phase: str
    phase_start_volume_l: float


@dataclass(frozen=True)
class CvResult:
    volume_l: npt.NDArray[np.float64]
    batch_cv: npt.NDArray[np.float64]
    phase_cv: npt.NDArray[np.float64]
    state: CvState


def effective_flow(flow_lpm: npt.ArrayLike, deadband_lpm: float) -> npt.NDArray[np.float64]:
    """Flow that advances volume: zero inside the dead band (and never negative)."""
    f = np.asarray(flow_lpm, dtype=np.float64)
    return np.where(f < deadband_lpm, 0.0, f)


def integrate(
    ts_ns: npt.ArrayLike,
    flow_lpm: npt.ArrayLike,
    phase: npt.ArrayLike,
    *,
    column_volume_l: float,
    deadband_lpm: float,
    state: CvState | None = None,
) -> CvResult:
    """Totalize one batch's readings (sorted by time, no duplicates) continuing from `state`.

    Returns volume (L), batch CV and phase CV for every reading, and the state to carry on.
    """
    if column_volume_l <= 0:
        raise ValueError(f"column_volume_l must be > 0, got {column_volume_l}")
    t = np.asarray(ts_ns, dtype=np.int64)
    f = effective_flow(flow_lpm, deadband_lpm)
    ph = np.asarray(phase)
    n = t.size
    if n == 0:
        if state is None:
            raise ValueError("cannot start a batch from zero readings")
        empty = np.empty(0)
        return CvResult(empty, empty, empty, state)
    if n > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("readings must be strictly increasing in time within a batch")

    dv = np.empty(n)
    if state is None:
        dv[0] = 0.0
        v0 = 0.0
    else:
        if t[0] <= state.ts_ns:
            raise ValueError("chunk starts at or before the state's last reading")
        dv[0] = 0.5 * (state.flow_eff_lpm + f[0]) * (t[0] - state.ts_ns) / NS_PER_MIN
        v0 = state.volume_l
    if n > 1:
        dv[1:] = 0.5 * (f[1:] + f[:-1]) * (np.diff(t) / NS_PER_MIN)
    volume = v0 + np.cumsum(dv)

    # Phase segments: a new segment starts wherever the phase differs from the one before.
    starts = np.empty(n, dtype=bool)
    starts[0] = state is None or str(ph[0]) != state.phase
    if n > 1:
        starts[1:] = ph[1:] != ph[:-1]
    seg_start_volume = np.where(starts, volume, np.nan)
    if not starts[0]:
        assert state is not None
        seg_start_volume[0] = state.phase_start_volume_l
    # forward-fill the segment start volume
    idx = np.where(~np.isnan(seg_start_volume), np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    seg_start_volume = seg_start_volume[idx]

    new_state = CvState(
        ts_ns=int(t[-1]),
        flow_eff_lpm=float(f[-1]),
        volume_l=float(volume[-1]),
        phase=str(ph[-1]),
        phase_start_volume_l=float(seg_start_volume[-1]),
    )
    return CvResult(
        volume_l=volume,
        batch_cv=volume / column_volume_l,
        phase_cv=(volume - seg_start_volume) / column_volume_l,
        state=new_state,
    )
