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

A record compressed by a historian (a value stored only when it moves beyond a deadband,
declared in the import's mapping and landed with the batch) repeats one value for as long as
the signal stays within the deadband. Where the deadband is finer than the signal's noise the
record still moves all the time and its runs are judged as any; where it hides the noise
(the record holds one value over HELD_SHARE of the batch) a steady and a stuck transmitter
look alike, so no flatline is judged (`flatline_judgeable`) and the analysis says so, except
inside a recipe's gradient that moves the signal past the deadband every so many CV, where a
run must also span FLATLINE_FACTOR times that (batch_metrics.batch_flatlines).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
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
    min_span_cv: float = 0.0,
) -> list[Finding]:
    """Runs of at least `scans` identical consecutive values (the first of each run), and
    FLATLINE_FACTOR times the signal's longest other run; `min_span_cv`: and at least this
    many column volumes long (where the recipe says how far the signal must move per CV)."""
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
        if min_span_cv > 0:  # the first reading a full span after the run's start
            far = a + int(np.searchsorted(batch_cv[a : a + length], batch_cv[a] + min_span_cv))
            needed = max(needed, far - a + 1)
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


def record_deadbands(text: str | None) -> dict[str, float]:
    """Signal -> the deadband a batch's record was compressed with, from the JSON object
    landed with it (silver_batches.record_deadbands); {} for an uncompressed record. A value
    that is not a finite number >= 0 is a ValueError naming it: judging by it silently as
    "uncompressed" would raise the false alarms it exists to prevent."""
    if not text:
        return {}
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError(f"record_deadbands {text[:80]!r}: expected a JSON object")
    out = {}
    for signal, v in doc.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"record_deadbands.{signal} = {v!r}: expected a number >= 0")
        out[str(signal)] = float(v)
    return out


#: why no flatline is judged on a signal whose record is compressed
FLATLINE_NOT_JUDGED = (
    "its record holds one value while the signal stays within the historian's deadband, so a "
    "steady and a stuck transmitter look alike"
)
#: a compressed record that holds one value for runs of at least FLATLINE_SCANS over more
#: than this share of its scans does not resolve the signal's noise: there steady looks
#: stuck. Below it (noise larger than the deadband) its runs say what is usual, as uncompressed.
HELD_SHARE = 0.2


def flatline_judgeable(
    signal: str, deadbands: Mapping[str, float], values: npt.NDArray[np.float64]
) -> bool:
    """Whether a flatline of `signal` can be judged throughout this record: yes unless it is
    compressed with a deadband that hides the signal's noise (HELD_SHARE)."""
    if deadbands.get(signal, 0.0) <= 0 or values.size == 0:
        return True
    starts, lasts = true_runs(values[1:] == values[:-1])
    lengths = lasts - starts + 2
    held = int(lengths[lengths >= FLATLINE_SCANS].sum())
    return held <= HELD_SHARE * values.size
