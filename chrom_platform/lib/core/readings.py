"""A batch of decoded readings as columns: what the live consumers decode messages into and
the live analytics (drift, multivariate scoring) read. Shared vocabulary, so the analytics
need nothing from the streaming code that produces it."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from chrom_platform.lib.core.contracts import READING_ARROW_SCHEMA, SIGNALS

T = TypeVar("T")


def _pick(values: list[T], rows: list[int]) -> list[T]:
    """values[rows] for a list, the loop in C."""
    if len(rows) < 2:
        return [values[i] for i in rows]
    return list(operator.itemgetter(*rows)(values))


@dataclass
class Readings:
    """Good readings as columns; `index` maps each row back to its message."""

    index: npt.NDArray[np.int64]
    unit_id: list[str]
    batch_id: list[str]
    recipe: list[str]
    phase: list[str]
    ts_ns: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    signals: dict[str, npt.NDArray[np.float64]]
    extra: list[str | None]

    def __len__(self) -> int:
        return int(self.index.size)

    def take(self, rows: npt.ArrayLike) -> Readings:
        r = np.asarray(rows, dtype=np.int64)
        rl = r.tolist()
        return Readings(
            index=self.index[r],
            unit_id=_pick(self.unit_id, rl),
            batch_id=_pick(self.batch_id, rl),
            recipe=_pick(self.recipe, rl),
            phase=_pick(self.phase, rl),
            ts_ns=self.ts_ns[r],
            seq=self.seq[r],
            signals={s: v[r] for s, v in self.signals.items()},
            extra=_pick(self.extra, rl),
        )

    @staticmethod
    def concat(parts: Sequence[Readings]) -> Readings:
        parts = [p for p in parts if len(p)] or [parts[0]]
        return Readings(
            index=np.concatenate([p.index for p in parts]),
            unit_id=[x for p in parts for x in p.unit_id],
            batch_id=[x for p in parts for x in p.batch_id],
            recipe=[x for p in parts for x in p.recipe],
            phase=[x for p in parts for x in p.phase],
            ts_ns=np.concatenate([p.ts_ns for p in parts]),
            seq=np.concatenate([p.seq for p in parts]),
            signals={s: np.concatenate([p.signals[s] for p in parts]) for s in SIGNALS},
            extra=[x for p in parts for x in p.extra],
        )

    def runs(self, *columns: str) -> list[tuple[int, int]]:
        """[start, end) of the runs of rows with equal values in `columns` (e.g. one unit,
        or one unit and batch, after sorting by unit and seq)."""
        n = len(self)
        if n == 0:
            return []
        change = np.zeros(n, dtype=bool)
        change[0] = True
        for c in columns:
            v = getattr(self, c)
            # compared in C, element by element (no fixed-width string array is built)
            change[1:] |= np.fromiter(map(operator.ne, v[1:], v[:-1]), dtype=bool, count=n - 1)
        starts = np.flatnonzero(change).tolist()
        return list(zip(starts, [*starts[1:], n], strict=True))

    def sorted_by_unit_seq(self) -> Readings:
        if len(self) == 0:
            return self
        codes = {u: i for i, u in enumerate(sorted(set(self.unit_id)))}
        unit_code = np.fromiter(map(codes.__getitem__, self.unit_id), np.int64, len(self))
        return self.take(np.lexsort((self.seq, unit_code)))

    def to_arrow(self) -> pa.Table:
        """As a table in the landing schema (READING_ARROW_SCHEMA)."""
        cols = {
            "unit_id": self.unit_id,
            "batch_id": self.batch_id,
            "recipe": self.recipe,
            "phase": self.phase,
            "ts": self.ts_ns,
            "seq": self.seq,
            **self.signals,
            "extra": self.extra,
        }
        return pa.table(
            {f.name: pa.array(cols[f.name]).cast(f.type) for f in READING_ARROW_SCHEMA},
            schema=READING_ARROW_SCHEMA,
        )


def empty_readings() -> Readings:
    return Readings(
        np.empty(0, np.int64),
        [],
        [],
        [],
        [],
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        {s: np.empty(0) for s in SIGNALS},
        [],
    )
