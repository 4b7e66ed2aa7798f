"""Live multivariate scoring: each bin of phase CV a running batch completes is scored against
its unit and recipe's multiway PCA model, and the result goes to InfluxDB (measurement
`mspc`) in the same write request as the readings that completed it.

The models come from the multivariate asset (gold_mspc_models), exported as one Parquet
object in the landing store (MODEL_KEY); the bridge re-reads it when it changes.

Per unit, the running batch's open bin accumulates its readings (holds, flow inside the
dead band, are not binned: the warehouse drops them too); when a reading falls in a new bin,
the finished bin's means are scored exactly as the batch-wise scoring does (mspc.py): the
trimmed scores grow by the bin's cells, the estimated scores follow from one A x A map, T2
against the bin's score spread, and each signal's SPE (mean over the model's SPE window).
One point per finished bin: T2 and SPE over their limits, `ratio` (the larger), `out`,
`alarm` once `persistence` bins running are out, and each signal's share of the statistic
(`share_<signal>`: the top contributions a panel lists). So a reading costs an addition;
a bin, a few small matrix products (see docs/benchmarks.md).

What scoring carries from bin to bin (the open bin's sums, the trimmed scores, the SPE
window, the persistence count) is small and JSON-able (`running`): the Dagster sensor keeps
it in its cursor from tick to tick. A batch the bridge did not see from its first bin (a
restart that lost it) is not scored: the trimmed scores need every bin, and a partial sum
would read as a fault.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.analytics.live import LiveSource
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.core.readings import Readings
from chrom_platform.lib.io.influx import line_protocol
from chrom_platform.lib.io.objectstore import ObjectStore

MSPC_MEASUREMENT = "mspc"
#: where the multivariate asset exports the current models for the bridge
MODEL_KEY = "analytics/mspc_models.parquet"


@dataclass
class _Model:
    version: str
    index: dict[tuple[str, int], int]
    mean: npt.NDArray[np.float64]  # (K, J)
    scale: npt.NDArray[np.float64]
    loadings: npt.NDArray[np.float64]  # (K, J, A)
    tsr: npt.NDArray[np.float64]  # (K, A, A)
    cov_inv: npt.NDArray[np.float64]
    t2_limit: npt.NDArray[np.float64]  # (K,)
    spe_limit: npt.NDArray[np.float64]  # (K, J)
    persistence: int
    spe_window: int

    @property
    def components(self) -> int:
        return int(self.loadings.shape[2])


@dataclass
class LiveModels:
    by_key: dict[tuple[str, str], _Model]
    bin_width_cv: float

    @classmethod
    def from_table(cls, t: pa.Table, bin_width_cv: float) -> LiveModels:
        d = t.to_pydict()
        rows: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(d["recipe"], d["unit_id"], strict=True)):
            rows.setdefault(key, []).append(i)
        out = {}
        j = len(SIGNALS)
        for key, idx in rows.items():
            a = int(d["components"][idx[0]])

            def arr(
                name: str, shape: tuple[int, ...], idx: list[int] = idx
            ) -> npt.NDArray[np.float64]:
                return np.array([d[name][i] for i in idx], dtype=np.float64).reshape(
                    len(idx), *shape
                )

            out[key] = _Model(
                version=str(d["model_version"][idx[0]]),
                index={(d["phase"][i], int(d["cv_bin"][i])): n for n, i in enumerate(idx)},
                mean=arr("mean", (j,)),
                scale=arr("scale", (j,)),
                loadings=arr("loadings", (j, a)),
                tsr=arr("tsr", (a, a)),
                cov_inv=arr("score_cov_inv", (a, a)),
                t2_limit=np.array([d["t2_limit"][i] for i in idx], dtype=np.float64),
                spe_limit=arr("spe_limit", (j,)),
                persistence=int(d["persistence"][idx[0]]),
                spe_window=int(d["spe_window"][idx[0]]),
            )
        return cls(out, bin_width_cv)


@dataclass
class _Running:
    """One unit's running batch: the open bin and what scoring carries from bin to bin."""

    batch_id: str
    version: str
    scored: bool  # seen from its first bin
    code: tuple[str, int] | None = None
    sums: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(SIGNALS)))
    count: int = 0
    cv_sum: float = 0.0
    last_ts: int = 0
    tau: npt.NDArray[np.float64] | None = None
    cells: npt.NDArray[np.float64] | None = None  # (J, A): sum of x_ij P_ij over bins
    spe_recent: list[npt.NDArray[np.float64]] = field(default_factory=list)
    out_run: int = 0


@dataclass
class MspcLines:
    chunks: list[bytes]
    points: int = 0
    alarms: int = 0


class LiveMspc:
    """The live bridge's multivariate scoring, with each unit's running batch in memory."""

    def __init__(self, source: LiveSource[LiveModels], master_data: MasterData) -> None:
        self.source = source
        self._deadband = {u: unit.flow_deadband_lpm for u, unit in master_data.units.items()}
        self._running: dict[str, _Running] = {}

    @property
    def running(self) -> dict[str, dict[str, object]]:
        """Each unit's running batch as scoring left it (JSON-able, for a sensor's cursor)."""
        out: dict[str, dict[str, object]] = {}
        for unit, st in self._running.items():
            out[unit] = {
                "batch_id": st.batch_id,
                "version": st.version,
                "scored": st.scored,
                "code": list(st.code) if st.code else None,
                "sums": st.sums.tolist(),
                "count": st.count,
                "cv_sum": st.cv_sum,
                "last_ts": st.last_ts,
                "tau": None if st.tau is None else st.tau.tolist(),
                "cells": None if st.cells is None else st.cells.tolist(),
                "spe_recent": [x.tolist() for x in st.spe_recent],
                "out_run": st.out_run,
            }
        return out

    @running.setter
    def running(self, value: dict[str, dict[str, Any]]) -> None:
        self._running = {}
        for unit, d in value.items():
            try:
                code = d.get("code")
                self._running[unit] = _Running(
                    batch_id=str(d["batch_id"]),
                    version=str(d["version"]),
                    scored=bool(d["scored"]),
                    code=(str(code[0]), int(code[1])) if code else None,
                    sums=np.asarray(d["sums"], dtype=np.float64),
                    count=int(d["count"]),
                    cv_sum=float(d["cv_sum"]),
                    last_ts=int(d["last_ts"]),
                    tau=None if d["tau"] is None else np.asarray(d["tau"], dtype=np.float64),
                    cells=None if d["cells"] is None else np.asarray(d["cells"], dtype=np.float64),
                    spe_recent=[np.asarray(x, dtype=np.float64) for x in d["spe_recent"]],
                    out_run=int(d["out_run"]),
                )
            except (KeyError, TypeError, ValueError, IndexError):
                continue  # an unreadable cursor entry: that batch is not scored live

    def lines(
        self,
        r: Readings,
        phase_cv: npt.NDArray[np.float64],
        batch_cv: npt.NDArray[np.float64],
    ) -> MspcLines:
        """Points for the bins readings `r` (sorted by unit and seq, as written) complete."""
        models = self.source.get()
        if models is None or not len(r):
            return MspcLines([])
        w = models.bin_width_cv
        values = np.column_stack([r.signals[s] for s in SIGNALS])
        bins = np.floor(phase_cv / w).astype(np.int64)
        points: list[tuple[int, str, str, str, str, npt.NDArray[np.float64]]] = []
        for a, b in r.runs("unit_id", "batch_id"):
            unit, batch, recipe = r.unit_id[a], r.batch_id[a], r.recipe[a]
            model = models.by_key.get((recipe, unit))
            st = self._running.get(unit)
            if model is None:
                self._running.pop(unit, None)
                continue
            if st is None or st.batch_id != batch or st.version != model.version:
                # scored only from the batch's first reading (batch CV 0)
                st = _Running(batch, model.version, scored=bool(batch_cv[a] == 0.0))
                st.tau = np.zeros(model.components)
                st.cells = np.zeros((len(SIGNALS), model.components))
                self._running[unit] = st
            if not st.scored:
                continue
            live = r.signals["flow_lpm"][a:b] > self._deadband[unit]
            ph = np.asarray(r.phase[a:b])
            bn = bins[a:b]
            # runs of readings in the same bin (holds left out)
            idx = np.flatnonzero(live)
            if idx.size == 0:
                continue
            change = (
                np.flatnonzero((bn[idx][1:] != bn[idx][:-1]) | (ph[idx][1:] != ph[idx][:-1])) + 1
            )
            starts = np.concatenate([[0], change])
            ends = np.concatenate([change, [idx.size]])
            sums = np.add.reduceat(values[a:b][idx], starts, axis=0)
            cvs = np.add.reduceat(batch_cv[a:b][idx], starts)
            for s0, e0, sm, cv in zip(starts, ends, sums, cvs, strict=True):
                code = (str(ph[idx[s0]]), int(bn[idx[s0]]))
                if code != st.code:
                    if st.code is not None and st.count:
                        p = self._finish(model, st)
                        if p is not None:
                            points.append((st.last_ts, unit, batch, recipe, st.code[0], p))
                    st.code, st.sums, st.count, st.cv_sum = code, np.zeros(len(SIGNALS)), 0, 0.0
                st.sums = st.sums + sm
                st.count += int(e0 - s0)
                st.cv_sum += float(cv)
                st.last_ts = int(r.ts_ns[a + idx[e0 - 1]])
        return self._chunks(points)

    def _finish(self, model: _Model, st: _Running) -> npt.NDArray[np.float64] | None:
        """Score the running batch's finished bin: [t2 ratio, spe ratio, ratio, out, alarm,
        batch CV, share per signal] (None: the bin is not in the model)."""
        assert st.code is not None
        assert st.tau is not None
        assert st.cells is not None
        k = model.index.get(st.code)
        if k is None:
            return None
        x = (st.sums / st.count - model.mean[k]) / model.scale[k]
        p = model.loadings[k]
        st.tau = st.tau + x @ p
        st.cells = st.cells + x[:, None] * p
        t = st.tau @ model.tsr[k]
        v = model.cov_inv[k] @ t
        t2 = float(t @ v)
        resid = x - p @ t
        st.spe_recent = (
            [*st.spe_recent[-(model.spe_window - 1) :], resid * resid]
            if model.spe_window > 1
            else [resid * resid]
        )
        spe = np.mean(st.spe_recent, axis=0) / model.spe_limit[k]
        rt, rs = t2 / model.t2_limit[k], float(spe.max())
        ratio = max(rt, rs)
        if not np.isfinite(ratio):
            return None  # a bin without limits (line protocol has no NaN)
        out = ratio > 1.0
        st.out_run = st.out_run + 1 if out else 0
        share = spe if rs >= rt else np.fmax(st.cells @ (model.tsr[k] @ v), 0.0)
        total = float(share.sum())
        share = share / total if total > 0 else share
        return np.array(
            [
                rt,
                rs,
                ratio,
                float(out),
                float(st.out_run >= model.persistence),
                st.cv_sum / st.count,
                *share,
            ]
        )

    @staticmethod
    def _chunks(points: list[tuple[int, str, str, str, str, npt.NDArray[np.float64]]]) -> MspcLines:
        if not points:
            return MspcLines([])
        # columns as contiguous arrays (line protocol formats each in one call)
        m = np.asfortranarray(np.array([p[5] for p in points]))
        fields: dict[str, npt.NDArray[np.generic]] = {
            "t2_ratio": m[:, 0],
            "spe_ratio": m[:, 1],
            "ratio": m[:, 2],
            "out": m[:, 3].astype(np.int64),
            "alarm": m[:, 4].astype(np.int64),
            "batch_cv": m[:, 5],
            **{f"share_{s}": m[:, 6 + j] for j, s in enumerate(SIGNALS)},
        }
        tags: dict[str, Sequence[str]] = {
            "unit_id": [p[1] for p in points],
            "batch_id": [p[2] for p in points],
            "recipe": [p[3] for p in points],
            "phase": [p[4] for p in points],
        }
        ts = np.array([p[0] for p in points], dtype=np.int64)
        chunk = line_protocol(MSPC_MEASUREMENT, tags, fields, ts)
        return MspcLines([chunk], len(points), int(m[:, 4].sum()))


def model_source(
    store: ObjectStore, bin_width_cv: float, refresh_s: float = 30.0
) -> LiveSource[LiveModels]:
    """The models from the landing store, re-read when their object changes."""
    return LiveSource(
        store,
        MODEL_KEY,
        lambda data: LiveModels.from_table(pq.read_table(io.BytesIO(data)), bin_width_cv),
        refresh_s=refresh_s,
    )
