"""Writing and naming objects in the landing zone, shared by the simulator's backfill and
the streaming landing consumer (so both land readings the same way)."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.contracts import (
    MASTER_DATA_PREFIX,
    READING_ARROW_SCHEMA,
    SIGNALS,
    STAGING_COMMIT,
    STAGING_PREFIX,
    master_data_key,
    readings_key,
    seq_of,
    staged_key,
)
from chrom_platform.lib.core.master_data import MasterData, content_hash, parse_master_data
from chrom_platform.lib.io.objectstore import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

#: Measured on this machine (docs/benchmarks.md): dictionary encoding only for the string
#: columns and delta encoding for the monotonic ts/seq write ~6x faster than dictionary
#: encoding every column, and smaller (~12 bytes per reading). Statistics are kept on the
#: columns readers filter on.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": ["unit_id", "batch_id", "recipe", "phase"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED", "seq": "DELTA_BINARY_PACKED"},
    "write_statistics": ["unit_id", "batch_id", "phase", "ts", "seq"],
}
DAY_NS = 86_400 * 1_000_000_000
#: seqs are written with at least 12 digits; a longer one (seq 10^15, say) is still a name
_NAME = re.compile(r"^(?P<unit>.+)-(?P<first>\d{12,})-(?P<last>\d{12,})(?:-r\d+)?\.parquet$")


def readings_table(
    *,
    unit_id: str,
    batch_id: str,
    recipe: str,
    phase_names: list[str],
    phase_idx: np.ndarray,
    ts_ns: np.ndarray,
    signals: dict[str, np.ndarray],
) -> pa.Table:
    """One batch's readings in the landing schema; `seq` follows from the unit clock."""
    n = int(ts_ns.size)

    def const(value: str) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))

    cols = [
        const(unit_id),
        const(batch_id),
        const(recipe),
        pa.DictionaryArray.from_arrays(
            pa.array(np.asarray(phase_idx).astype(np.int32)), pa.array(phase_names)
        ),
        pa.array(ts_ns, type=pa.timestamp("ns", tz="UTC")),
        pa.array(seq_of(ts_ns)),
        *(pa.array(signals[s], type=pa.float64()) for s in SIGNALS),
        pa.nulls(n, pa.string()),  # extra: no unknown fields
    ]
    return pa.Table.from_arrays(cols, schema=READING_ARROW_SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def readings_objects(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """One unit's readings (sorted by seq) as (key, slice): one Parquet object per UTC day,
    each named by the seq range it holds."""
    if table.num_rows == 0:
        return []
    ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    seq = table.column("seq").combine_chunks().to_numpy()
    unit_id = table.column("unit_id")[0].as_py()
    day = ts // DAY_NS
    cuts = [0, *(np.nonzero(np.diff(day))[0] + 1).tolist(), len(ts)]
    return [
        (
            readings_key(unit_id, int(ts[a]), int(seq[a]), int(seq[b - 1])),
            table.slice(a, b - a),
        )
        for a, b in itertools.pairwise(cuts)
    ]


def land_readings(store: ObjectStore, table: pa.Table, *, durable: bool = True) -> list[str]:
    """Land `readings_objects`; the keys written."""
    keys = []
    for key, part in readings_objects(table):
        store.put(key, parquet_bytes(part), durable=durable)
        keys.append(key)
    return keys


class StagedLanding:
    """Many objects landed all or nothing, as the warehouse sees them: each is written under
    `staging/<id>/` (outside every prefix the warehouse or a listing of `landing/` reads),
    then one commit record naming them all, then each is moved into place. A writer killed
    before its commit leaves nothing visible; one killed after it leaves a commit that
    `finish_staged` completes (the importer runs it first, the warehouse build before dbt).
    Object stores have no multi-object transaction; this is the write-ahead record instead."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        self.keys: list[str] = []
        self._staged: set[str] = set()

    def put(self, key: str, data: bytes) -> None:
        self.store.put(staged_key(self.id, key), data)
        if key not in self._staged:
            self.keys.append(key)
            self._staged.add(key)

    def exists(self, key: str) -> bool:
        return key in self._staged or self.store.exists(key)

    def commit(self) -> list[str]:
        """Publish everything put, in the order put; the keys."""
        self.store.put(staged_key(self.id, STAGING_COMMIT), json_bytes({"keys": self.keys}))
        _publish(self.store, self.id, self.keys)
        return self.keys


def _publish(store: ObjectStore, staging_id: str, keys: list[str]) -> None:
    for key in keys:
        # gone: moved already, by the writer before it was killed or by another finisher
        with contextlib.suppress(FileNotFoundError):
            store.move(staged_key(staging_id, key), key)
    store.delete(staged_key(staging_id, STAGING_COMMIT))


def finish_staged(store: ObjectStore, *, abandoned_after_s: float = 86_400.0) -> list[str]:
    """Complete what killed writers staged: every committed staging is published (its
    objects moved into place); an uncommitted one older than `abandoned_after_s` (a writer
    still staging is younger) is deleted. The keys published."""
    published: list[str] = []
    cutoff = time.time_ns() - int(abandoned_after_s * 1e9)
    for staging_id in store.children(STAGING_PREFIX):
        commit = staged_key(staging_id, STAGING_COMMIT)
        try:
            keys = json.loads(store.get(commit))["keys"]
        except FileNotFoundError:
            objs = list(store.list(f"{STAGING_PREFIX}/{staging_id}"))
            if objs and max(o.mtime_ns for o in objs) < cutoff:
                for o in objs:
                    store.delete(o.key)
            continue
        log.warning(
            "completing staged landing %s (%d objects) a writer left", staging_id, len(keys)
        )
        _publish(store, staging_id, keys)
        published += keys
    return published


def land_master_data(store: ObjectStore | StagedLanding, md: MasterData) -> list[str]:
    """Equipment and recipe snapshots, one object per distinct content."""
    keys = []
    for kind, record in (("equipment", md.equipment_record()), ("recipes", md.recipes_record())):
        key = master_data_key(kind, content_hash(record))
        if not store.exists(key):  # content-addressed: an existing object is this very content
            store.put(key, json_bytes(record))
        keys.append(key)
    return keys


def seq_range_of(key: str) -> tuple[int, int] | None:
    """(first_seq, last_seq) from a readings object's name, None if it is not one."""
    m = _NAME.match(key.rsplit("/", 1)[-1])
    return (int(m["first"]), int(m["last"])) if m else None


class LandedMasterData:
    """The master data the warehouse judges with, for the consumers: the newest landed
    snapshot of each kind, picked as dbt's `latest_master_data` picks it (newest landing
    time to the second, as DuckDB reads a file's time, then the greatest key), parsed with
    the same validation, and re-read when that snapshot changes, at most every `refresh_s`.
    Until a kind has a snapshot in the landing zone, `fallback` (the configured files)."""

    KINDS = ("equipment", "recipes")

    def __init__(
        self, store: ObjectStore, fallback: Callable[[], MasterData], refresh_s: float = 30.0
    ) -> None:
        self.store, self.fallback, self.refresh_s = store, fallback, refresh_s
        self._checked = -1e9
        self._picked: tuple[ObjectInfo | None, ...] | None = None
        self._value: MasterData | None = None
        #: how often a snapshot (or the fallback) was parsed
        self.loads = 0

    def newest(self) -> tuple[ObjectInfo | None, ...]:
        """Per kind, the snapshot object dbt would pick (None: none landed)."""
        out = []
        for kind in self.KINDS:
            infos = [
                i
                for i in self.store.list(f"{MASTER_DATA_PREFIX}/{kind}")
                if i.key.rsplit("/", 1)[-1].startswith(f"{kind}-") and i.key.endswith(".json")
            ]
            out.append(max(infos, key=lambda i: (i.mtime_ns // 10**9, i.key), default=None))
        return tuple(out)

    def get(self) -> MasterData:
        now = time.monotonic()
        if self._value is not None and now - self._checked < self.refresh_s:
            return self._value
        self._checked = now
        picked = self.newest()
        if self._value is None or picked != self._picked:
            try:
                value = self._load(picked)
            except ValueError as e:  # ConfigError naming file, key and problem; bad JSON
                # a bad snapshot never stops a consumer: it keeps judging with what it had
                # (the warehouse's silver master data tests fail on the same snapshot)
                log.error("master data snapshot not taken up, judging as before: %s", e)
                value = self._value if self._value is not None else self.fallback()
            self._value, self._picked = value, picked
            self.loads += 1
        return self._value

    def _load(self, picked: tuple[ObjectInfo | None, ...]) -> MasterData:
        if all(p is None for p in picked):
            return self.fallback()
        if any(p is None for p in picked):  # one kind landed: the other from the files
            files = self.fallback()
            docs = {"equipment": files.equipment_record(), "recipes": files.recipes_record()}
        else:
            docs = {}
        sources = dict.fromkeys(self.KINDS, "(configured files)")
        for kind, info in zip(self.KINDS, picked, strict=True):
            if info is not None:
                docs[kind] = json.loads(self.store.get(info.key))
                sources[kind] = f"{self.store.uri}/{info.key}"
        return parse_master_data(
            docs["equipment"],
            docs["recipes"],
            equipment_source=sources["equipment"],
            recipes_source=sources["recipes"],
        )
