"""Live drift: each reading the bridge writes is compared with the golden envelope, and the
result goes to InfluxDB beside it (measurement `drift`), in the same write request as the
reading, so dashboards and alerts see it as soon as the reading itself.

The envelope comes from the analytics run (gold_golden_envelope), exported as one Parquet
object in the landing store (`analytics/golden_envelope.parquet`), so the bridge never opens
the warehouse (DuckDB allows one process at a time; Snowflake is a network hop per query).
The bridge re-reads it when it changes, at most every `refresh_s`.

Per reading and signal: z against the reading's phase-CV bin with one bin of tolerance either
side (as the batch drift in envelope.py), `out` when |z| > z_limit, and `alarm` when a
signal has been out for LIVE_PERSISTENCE readings running on that unit (the live form of the
persistence rule; the count is in memory, so a restarted bridge re-counts from zero, which
delays an alarm by at most that many readings).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.contracts import SIGNALS
from chrom_platform.lib.objectstore import ObjectStore

ENVELOPE_KEY = "analytics/golden_envelope.parquet"
DRIFT_MEASUREMENT = "drift"
LIVE_PERSISTENCE = 10


def envelope_bytes(rows: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    return buf.getvalue()


@dataclass
class _PhaseEnvelope:
    bins: npt.NDArray[np.int64]  # sorted
    centre: npt.NDArray[np.float64]  # (bins, signals), NaN without a limit
    scale: npt.NDArray[np.float64]


@dataclass
class LiveEnvelope:
    by_key: dict[tuple[str, str, str], _PhaseEnvelope]
    z_limit: float
    bin_width_cv: float

    @classmethod
    def from_table(cls, t: pa.Table, z_limit: float, bin_width_cv: float) -> LiveEnvelope:
        d = t.select(
            ["recipe", "unit_id", "phase", "cv_bin", "signal", "centre", "scale"]
        ).to_pydict()
        groups: dict[tuple[str, str, str], dict[int, dict[str, tuple[float, float]]]] = {}
        for r, u, p, b, s, c, sc in zip(*d.values(), strict=True):
            if c is None or sc is None or s not in SIGNALS:
                continue
            groups.setdefault((r, u, p), {}).setdefault(int(b), {})[s] = (c, sc)
        out = {}
        for key, bins in groups.items():
            order = np.array(sorted(bins), dtype=np.int64)
            centre = np.full((order.size, len(SIGNALS)), np.nan)
            scale = np.full((order.size, len(SIGNALS)), np.nan)
            for i, b in enumerate(order):
                for j, s in enumerate(SIGNALS):
                    if s in bins[int(b)]:
                        centre[i, j], scale[i, j] = bins[int(b)][s]
            out[key] = _PhaseEnvelope(order, centre, scale)
        return cls(out, z_limit, bin_width_cv)

    def z(
        self,
        recipe: str,
        unit_id: str,
        phase: str,
        phase_cv: npt.NDArray[np.float64],
        values: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64] | None:
        """z[n, signals] for readings of one recipe, unit and phase (NaN where no limit);
        None when the envelope has nothing for them.

        A reading is not a bin mean: the envelope's centre and scale are interpolated
        between bin centres at the reading's phase CV (a front or a ramp moves a lot
        within one bin), the reading is compared at its own position and one bin either
        side (the tolerance of the batch drift), and readings in a phase's first bin (the
        pump ramping to its new set point) are not judged."""
        env = self.by_key.get((recipe, unit_id, phase))
        if env is None:
            return None
        w = self.bin_width_cv
        best = np.full(values.shape, np.inf)
        picked = np.full(values.shape, np.nan)
        for shift in (0.0, -1.0, 1.0):
            c, sc = self._at(env, phase_cv / w - 0.5 + shift)
            with np.errstate(invalid="ignore", divide="ignore"):
                zz = (values - c) / sc
            better = np.isfinite(zz) & (np.abs(zz) < best)
            best = np.where(better, np.abs(zz), best)
            picked = np.where(better, zz, picked)
        picked[phase_cv < w] = np.nan
        return picked

    @staticmethod
    def _at(
        env: _PhaseEnvelope, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Centre and scale at fractional bin positions x (bin k's centre is at k), linear
        between neighbouring bins that both have a limit, else the nearest bin's."""
        lo = np.floor(x).astype(np.int64)
        frac = (x - lo)[:, None]
        i0 = np.clip(np.searchsorted(env.bins, lo), 0, env.bins.size - 1)
        i1 = np.clip(np.searchsorted(env.bins, lo + 1), 0, env.bins.size - 1)
        has0 = (env.bins[i0] == lo)[:, None] & np.isfinite(env.centre[i0])
        has1 = (env.bins[i1] == lo + 1)[:, None] & np.isfinite(env.centre[i1])
        c0, c1 = env.centre[i0], env.centre[i1]
        s0, s1 = env.scale[i0], env.scale[i1]
        both = has0 & has1
        c = np.where(both, c0 + frac * (c1 - c0), np.where(has0, c0, np.where(has1, c1, np.nan)))
        sc = np.where(both, s0 + frac * (s1 - s0), np.where(has0, s0, np.where(has1, s1, np.nan)))
        return c, sc


@dataclass
class EnvelopeSource:
    """The envelope from the landing store, re-read when its object changes."""

    store: ObjectStore
    z_limit: float
    bin_width_cv: float
    refresh_s: float = 30.0
    key: str = ENVELOPE_KEY
    _checked: float = field(default=-1e9, repr=False)
    _etag: object = field(default=None, repr=False)
    _env: LiveEnvelope | None = field(default=None, repr=False)

    def get(self) -> LiveEnvelope | None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return self._env
        self._checked = now
        folder = self.key.rsplit("/", 1)[0]
        info = next((i for i in self.store.list(folder) if i.key == self.key), None)
        if info is None:
            self._env = None
            return None
        tag = (info.size, info.mtime_ns)
        if tag != self._etag:
            t = pq.read_table(pa.BufferReader(self.store.get(self.key)))
            self._env = LiveEnvelope.from_table(t, self.z_limit, self.bin_width_cv)
            self._etag = tag
        return self._env


def runs_of_out(
    out: npt.NDArray[np.bool_], carried: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Consecutive-out counts per reading and signal, continuing from `carried` (count per
    signal before the first reading). Returns (counts[n, signals], carried after)."""
    n, k = out.shape
    counts = np.empty((n, k), dtype=np.int64)
    for j in range(k):
        o = out[:, j].astype(np.int64)
        # index of the last False at or before each row (-1: none in this chunk)
        idx = np.where(o == 0, np.arange(n), -1)
        last_false = np.maximum.accumulate(idx)
        run = np.arange(n) - last_false
        counts[:, j] = np.where(last_false < 0, run + carried[j], run) * o
    after = counts[-1] if n else carried.copy()
    return counts, after
