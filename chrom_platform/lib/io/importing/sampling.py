"""Irregular exports onto the platform's scan grid (one scan a whole second), as the export
means its values, and the import's inferences, counted with examples.

A historian stores by exception: between two stored values the tag is held ("step") or, for
a swinging-door store, on the line between them ("linear"). Raw scans come jittered, now and
then two in one second or one missing. Either way the platform takes one scan per second,
so the importer resamples onto whole seconds, carrying a value no further than the mapping's
`max_gap_s` (beyond it, and after a "no data" marker, there is no value: a gap, reported,
never invented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NS = 1_000_000_000


def grid(first_ns: int, last_ns: int) -> np.ndarray:
    """The whole seconds from the first to the last time (inclusive)."""
    a = -(-int(first_ns) // NS)
    z = int(last_ns) // NS
    return np.arange(a, z + 1, dtype=np.int64) * NS


def resample(
    ts: np.ndarray, v: np.ndarray, at: np.ndarray, *, interpolation: str, max_gap_s: float
) -> np.ndarray:
    """Values of the series (ts increasing; NaN = no value from there) at the times `at`;
    NaN where it has none."""
    ts = np.asarray(ts, dtype=np.int64)
    v = np.asarray(v, dtype=np.float64)
    out = np.full(at.size, np.nan)
    if ts.size == 0:
        return out
    gap = int(max_gap_s * NS)
    i = np.searchsorted(ts, at, side="right") - 1
    ok = i >= 0
    ic = np.clip(i, 0, ts.size - 1)
    if interpolation == "step":
        ok &= at - ts[ic] <= gap
        out[ok] = v[ic[ok]]
        return out
    j = np.clip(ic + 1, 0, ts.size - 1)
    exact = ok & (ts[ic] == at)
    span = ts[j] - ts[ic]
    inner = ok & ~exact & (j > ic) & (span <= gap)
    out[exact] = v[ic[exact]]
    w = (at[inner] - ts[ic[inner]]) / span[inner]
    out[inner] = v[ic[inner]] + (v[j[inner]] - v[ic[inner]]) * w
    return out


def labels_at(ts: np.ndarray, labels: list[str], at: np.ndarray, max_gap_s: float) -> list[str]:
    """The label of the last scan at or before each time ('' where none within the gap)."""
    i = np.searchsorted(np.asarray(ts, dtype=np.int64), at, side="right") - 1
    ic = np.clip(i, 0, len(labels) - 1)
    ok = (i >= 0) & (at - np.asarray(ts)[ic] <= int(max_gap_s * NS))
    return [labels[k] if good else "" for k, good in zip(ic.tolist(), ok.tolist(), strict=True)]


@dataclass
class Inference:
    what: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class Notes:
    """What the import inferred or did not use, counted, with the first few examples: the
    import report prints them and lands them beside the data."""

    found: dict[str, Inference] = field(default_factory=dict)
    MAX_EXAMPLES = 3

    def add(self, key: str, what: str, count: int = 1, example: str | None = None) -> None:
        if count <= 0:
            return
        inf = self.found.setdefault(key, Inference(what))
        inf.count += count
        if example is not None and len(inf.examples) < self.MAX_EXAMPLES:
            inf.examples.append(example)

    def record(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"what": i.what, "count": i.count, "examples": i.examples}
            for k, i in sorted(self.found.items())
        }
