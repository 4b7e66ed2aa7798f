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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.contracts import INFLUX_DRIFT_MEASUREMENT, SIGNALS
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.core.readings import Readings
from chrom_platform.lib.io.influx import WRITE_CHUNK, line_protocol
from chrom_platform.lib.io.objectstore import ObjectStore

ENVELOPE_KEY = "analytics/golden_envelope.parquet"
LIVE_PERSISTENCE = 10
T = TypeVar("T")


def envelope_bytes(rows: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    return buf.getvalue()


@dataclass
class _PhaseEnvelope:
    bins: npt.NDArray[np.int64]  # sorted
    centre: npt.NDArray[np.float64]  # (bins, signals), NaN without a limit
    scale: npt.NDArray[np.float64]
    #: the recipe's z limit (master data), or the platform's
    z_limit: float


@dataclass
class LiveEnvelope:
    by_key: dict[tuple[str, str, str], _PhaseEnvelope]
    z_limit: float
    bin_width_cv: float

    @classmethod
    def from_table(cls, t: pa.Table, z_limit: float, bin_width_cv: float) -> LiveEnvelope:
        """From gold_golden_envelope rows; each recipe's own z limit where the rows carry it
        (an export from before they did: `z_limit`, the platform's)."""
        if "z_limit" not in t.column_names:
            t = t.append_column("z_limit", pa.array([z_limit] * t.num_rows, pa.float64()))
        d = t.select(
            ["recipe", "unit_id", "phase", "cv_bin", "signal", "centre", "scale", "z_limit"]
        ).to_pydict()
        groups: dict[tuple[str, str, str], dict[int, dict[str, tuple[float, float]]]] = {}
        limit: dict[tuple[str, str, str], float] = {}
        for r, u, p, b, s, c, sc, zl in zip(*d.values(), strict=True):
            if c is None or sc is None or s not in SIGNALS:
                continue
            groups.setdefault((r, u, p), {}).setdefault(int(b), {})[s] = (c, sc)
            limit[(r, u, p)] = z_limit if zl is None else float(zl)
        out = {}
        for key, bins in groups.items():
            order = np.array(sorted(bins), dtype=np.int64)
            centre = np.full((order.size, len(SIGNALS)), np.nan)
            scale = np.full((order.size, len(SIGNALS)), np.nan)
            for i, b in enumerate(order):
                for j, s in enumerate(SIGNALS):
                    if s in bins[int(b)]:
                        centre[i, j], scale[i, j] = bins[int(b)][s]
            out[key] = _PhaseEnvelope(order, centre, scale, limit[key])
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


class LiveSource(Generic[T]):
    """An object the analytics export to the landing store (the envelope, the multivariate
    models), parsed by `parse` and re-read when it changes, at most every `refresh_s`: the
    bridge never opens the warehouse (DuckDB allows one process at a time; Snowflake is a
    network hop per query)."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        parse: Callable[[bytes], T],
        refresh_s: float = 30.0,
    ) -> None:
        self.store, self.key, self.parse, self.refresh_s = store, key, parse, refresh_s
        self._checked = -1e9
        self._etag: object = None
        self._value: T | None = None

    def get(self) -> T | None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return self._value
        self._checked = now
        folder = self.key.rsplit("/", 1)[0]
        info = next((i for i in self.store.list(folder) if i.key == self.key), None)
        if info is None:
            self._value = None
            return None
        tag = (info.size, info.mtime_ns)
        if tag != self._etag:
            self._value = self.parse(self.store.get(self.key))
            self._etag = tag
        return self._value


def EnvelopeSource(
    store: ObjectStore, z_limit: float, bin_width_cv: float, refresh_s: float = 30.0
) -> LiveSource[LiveEnvelope]:
    """The golden envelope from the landing store (ENVELOPE_KEY)."""
    return LiveSource(
        store,
        ENVELOPE_KEY,
        lambda data: LiveEnvelope.from_table(
            pq.read_table(pa.BufferReader(data)), z_limit, bin_width_cv
        ),
        refresh_s=refresh_s,
    )


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


@dataclass
class DriftLines:
    """Live drift points for a batch of readings, as line-protocol chunks."""

    chunks: list[bytes]
    points: int = 0
    #: points in a persistent drift (alarm = 1)
    alarms: int = 0


class LiveDrift:
    """The live bridge's drift scoring: each applied reading against the golden envelope,
    with the persistence count per unit and signal carried from call to call."""

    def __init__(self, source: LiveSource[LiveEnvelope], master_data: MasterData) -> None:
        self.source = source
        self._deadband = {u: unit.flow_deadband_lpm for u, unit in master_data.units.items()}
        #: per unit: consecutive readings each signal has been outside the envelope
        self._out_runs: dict[str, npt.NDArray[np.int64]] = {}

    @property
    def out_runs(self) -> dict[str, list[int]]:
        """Persistence counts per unit (JSON-able, for a sensor's cursor)."""
        return {u: [int(x) for x in v] for u, v in self._out_runs.items()}

    @out_runs.setter
    def out_runs(self, value: dict[str, list[int]]) -> None:
        self._out_runs = {
            u: np.asarray(v, dtype=np.int64) for u, v in value.items() if len(v) == len(SIGNALS)
        }

    def lines(
        self,
        r: Readings,
        phase_cv: npt.NDArray[np.float64],
        batch_cv: npt.NDArray[np.float64],
    ) -> DriftLines:
        """Drift points for readings `r` (sorted by unit and seq, as written) at their phase
        and batch CVs; none while no envelope has been exported."""
        env = self.source.get()
        if env is None:
            return DriftLines([])
        values = np.column_stack([r.signals[s] for s in SIGNALS])
        z = np.full(values.shape, np.nan)
        limit = np.full(len(r), env.z_limit)  # each recipe's own, where it set one
        for a, b in r.runs("unit_id", "recipe", "phase"):
            zz = env.z(r.recipe[a], r.unit_id[a], r.phase[a], phase_cv[a:b], values[a:b])
            phase_env = env.by_key.get((r.recipe[a], r.unit_id[a], r.phase[a]))
            if phase_env is not None:
                limit[a:b] = phase_env.z_limit
            if zz is not None:
                # holds (flow below the dead band) are not in the envelope: not judged
                zz[r.signals["flow_lpm"][a:b] <= self._deadband[r.unit_id[a]]] = np.nan
                z[a:b] = zz
        # a bin has a limit for every signal or for none (the envelope counts batches per
        # bin); line protocol has no null, so points go out only where all five are judged
        has = np.isfinite(z).all(axis=1)
        out = np.abs(np.nan_to_num(z)) > limit[:, None]
        alarm = np.zeros(len(r), dtype=bool)
        for a, b in r.runs("unit_id"):
            unit = r.unit_id[a]
            counts, self._out_runs[unit] = runs_of_out(
                out[a:b], self._out_runs.get(unit, np.zeros(len(SIGNALS), dtype=np.int64))
            )
            alarm[a:b] = (counts >= LIVE_PERSISTENCE).any(axis=1)
        keep = np.flatnonzero(has)
        if keep.size == 0:
            return DriftLines([])
        chunks = []
        for a in range(0, keep.size, WRITE_CHUNK):
            k = keep[a : a + WRITE_CHUNK]
            fields: dict[str, npt.NDArray[np.generic]] = {}
            for j, s in enumerate(SIGNALS):
                fields[f"z_{s}"] = z[k, j]
                fields[f"out_{s}"] = out[k, j].astype(np.int64)
            fields["n_out"] = out[k].sum(axis=1).astype(np.int64)
            fields["alarm"] = alarm[k].astype(np.int64)
            fields["batch_cv"] = batch_cv[k]
            sub = r.take(k)
            tags = {"unit_id": sub.unit_id, "batch_id": sub.batch_id, "recipe": sub.recipe}
            chunks.append(
                line_protocol(
                    INFLUX_DRIFT_MEASUREMENT, {**tags, "phase": sub.phase}, fields, sub.ts_ns
                )
            )
        return DriftLines(chunks, int(keep.size), int(alarm[keep].sum()))
