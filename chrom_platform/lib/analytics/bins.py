"""A batch's signals averaged over bins of phase CV, in Python.

The warehouse does this in SQL (gold_trend_binned: holds removed, bin = floor(phase CV /
width), keyed by phase); this is the same rule for readings that never reach the
warehouse: the severity sweep's simulated batches and the live bridge's multivariate
scoring. CV comes from the platform's one integration rule (lib/core/cv.py), so the bins
agree with the warehouse's (tested against gold_trend_binned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.analytics.envelope import BinnedBatches
from chrom_platform.lib.core import cv

#: key code = phase order x KEY_BASE + bin (phase order: the recipe's, from 1)
KEY_BASE = 1_000_000


@dataclass
class BatchBins:
    """One batch: bins in phase then CV order."""

    codes: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]  # (bins, signals)
    batch_cv: npt.NDArray[np.float64]  # the bin's mean batch CV


def bin_codes(
    phase_order: npt.ArrayLike, phase_cv: npt.ArrayLike, width: float
) -> npt.NDArray[np.int64]:
    """Each reading's bin as one integer (see KEY_BASE)."""
    b = np.floor(np.asarray(phase_cv, dtype=np.float64) / width).astype(np.int64)
    return np.asarray(phase_order, dtype=np.int64) * KEY_BASE + b


def bin_means(
    codes: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    batch_cv: npt.NDArray[np.float64],
) -> BatchBins:
    """Mean of each signal and of batch CV per bin code."""
    uniq, inv = np.unique(codes, return_inverse=True)
    counts = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    means = (
        np.column_stack(
            [
                np.bincount(inv, weights=values[:, j], minlength=uniq.size)
                for j in range(values.shape[1])
            ]
        )
        / counts[:, None]
    )
    cvs = np.bincount(inv, weights=batch_cv, minlength=uniq.size) / counts
    return BatchBins(uniq, means, cvs)


def batch_bins(
    *,
    ts_ns: npt.ArrayLike,
    phase_idx: npt.ArrayLike,
    hold: npt.ArrayLike,
    values: npt.NDArray[np.float64],
    flow_lpm: npt.ArrayLike,
    column_volume_l: float,
    deadband_lpm: float,
    width: float,
) -> BatchBins:
    """A whole batch's bins from its readings in time order (phase_idx from 0, as the
    recipe's phases; `hold`: inside a hold event, not binned), as gold_trend_binned."""
    ph = np.asarray(phase_idx, dtype=np.int64)
    res = cv.integrate(
        ts_ns, flow_lpm, ph, column_volume_l=column_volume_l, deadband_lpm=deadband_lpm
    )
    keep = ~np.asarray(hold, dtype=bool)
    codes = bin_codes(ph[keep] + 1, res.phase_cv[keep], width)
    return bin_means(codes, values[keep], res.batch_cv[keep])


def binned_batches(
    recipe: str,
    unit_id: str,
    batch_ids: Sequence[str],
    batches: Sequence[BatchBins],
    phase_names: Sequence[str],
) -> BinnedBatches:
    """Batches of one recipe on one unit over the union of their bins (the envelope's and
    the multivariate model's input)."""
    allc = np.unique(np.concatenate([b.codes for b in batches])) if batches else np.array([])
    pos = {int(c): i for i, c in enumerate(allc)}
    j = batches[0].values.shape[1] if batches else 0
    values = np.full((len(batches), allc.size, j), np.nan)
    cvs = np.full((len(batches), allc.size), np.nan)
    for i, b in enumerate(batches):
        idx = np.array([pos[int(c)] for c in b.codes], dtype=np.int64)
        values[i, idx] = b.values
        cvs[i, idx] = b.batch_cv
    keys = []
    for c in allc:
        o, k = divmod(int(c), KEY_BASE)
        keys.append((o, phase_names[o - 1], k))
    return BinnedBatches(recipe, unit_id, list(batch_ids), keys, values, cvs)
