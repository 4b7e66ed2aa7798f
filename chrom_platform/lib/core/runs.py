"""Runs of True in a boolean series: the one way a flatline, a hold or a gap in the scans
is cut into its stretches."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def true_runs(mask: npt.ArrayLike) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(first, last) index of each run of True, both inclusive, in order."""
    d = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1
