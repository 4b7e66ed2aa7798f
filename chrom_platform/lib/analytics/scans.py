"""Reading-level findings in one batch's 1 Hz data: gaps and flatlined sensors.

A gap is where the unit sent nothing for longer than MAX_GAP_S: the alarm is placed where a
live staleness monitor raises it, MAX_GAP_S seconds into the gap, at the CV the column had
reached by then at the last flow seen. A flatline is a signal repeating the exact same value
for longer than its own habits explain: at least FLATLINE_SCANS readings, and at least
FLATLINE_FACTOR times the longest other run of one value the same signal makes in the batch.
An instrument whose noise is below its resolution (a pH transmitter reporting 0.01 in a
steady buffer) repeats a value for tens of scans without being stuck, and a plant's
instruments are not our simulator's: the signal's own runs say what is usual for it. Readings
at the detector's saturation limit are exempt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.core.runs import true_runs

MAX_GAP_S = 10
FLATLINE_SCANS = 30
FLATLINE_FACTOR = 3.0
NS = 1_000_000_000


@dataclass(frozen=True)
class Finding:
    kind: str  # "gap" or "flatline"
    signal: str | None
    index: int  # the reading where the alarm is raised (gap: the last one before it)
    alarm_cv: float
    detail: str


def gaps(
    ts_ns: npt.NDArray[np.int64],
    batch_cv: npt.NDArray[np.float64],
    flow_lpm: npt.NDArray[np.float64],
    column_volume_l: float,
    max_gap_s: float = MAX_GAP_S,
) -> list[Finding]:
    dt = np.diff(ts_ns) / NS
    out = []
    for i in np.flatnonzero(dt > max_gap_s):
        cv_then = batch_cv[i] + max(float(flow_lpm[i]), 0.0) * max_gap_s / 60.0 / column_volume_l
        out.append(Finding("gap", None, int(i), float(cv_then), f"no readings for {dt[i]:.0f} s"))
    return out


def flatlines(
    values: npt.NDArray[np.float64],
    batch_cv: npt.NDArray[np.float64],
    signal: str,
    scans: int = FLATLINE_SCANS,
    exempt_at_or_above: float | None = None,
) -> list[Finding]:
    """Runs of at least `scans` identical consecutive values (the first of each run)."""
    n = values.size
    if n < scans:
        return []
    same = values[1:] == values[:-1]
    if exempt_at_or_above is not None:
        same &= values[1:] < exempt_at_or_above
    starts, lasts = true_runs(same)
    lengths = lasts - starts + 2  # readings in each run (`same` pairs reading i with i + 1)
    order = np.sort(lengths)
    out = []
    for a, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        if length < scans:
            continue
        # the longest run of the signal besides this one
        others = order[:-1] if order[-1] == length else order
        other = int(others[-1]) if others.size else 0
        needed = max(scans, int(np.ceil(FLATLINE_FACTOR * other)))
        if length >= needed:
            i = a + needed - 1
            out.append(
                Finding(
                    "flatline",
                    signal,
                    i,
                    float(batch_cv[i]),
                    f"{signal} stuck at {values[a]:g} for {length} readings"
                    + (
                        f" (its other runs reach {other}: {needed} needed)"
                        if needed > scans
                        else ""
                    ),
                )
            )
    return out
