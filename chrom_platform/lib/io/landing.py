"""Writing and naming objects in the landing zone, shared by the simulator's backfill and
the streaming landing consumer (so both land readings the same way)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.contracts import readings_key
from chrom_platform.lib.io.objectstore import ObjectStore

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
_NAME = re.compile(r"^(?P<unit>.+)-(?P<first>\d{12,})-(?P<last>\d{12,})\.parquet$")


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def land_readings(store: ObjectStore, table: pa.Table, *, durable: bool = True) -> list[str]:
    """One unit's readings (sorted by seq) as one Parquet object per UTC day, each named by
    the seq range it holds."""
    if table.num_rows == 0:
        return []
    ts = table.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    seq = table.column("seq").combine_chunks().to_numpy()
    unit_id = table.column("unit_id")[0].as_py()
    day = ts // DAY_NS
    cuts = [0, *(np.nonzero(np.diff(day))[0] + 1).tolist(), len(ts)]
    keys = []
    for a, b in itertools.pairwise(cuts):
        key = readings_key(unit_id, int(ts[a]), int(seq[a]), int(seq[b - 1]))
        store.put(key, parquet_bytes(table.slice(a, b - a)), durable=durable)
        keys.append(key)
    return keys


def seq_range_of(key: str) -> tuple[int, int] | None:
    """(first_seq, last_seq) from a readings object's name, None if it is not one."""
    m = _NAME.match(key.rsplit("/", 1)[-1])
    return (int(m["first"]), int(m["last"])) if m else None
