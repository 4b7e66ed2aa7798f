"""The contracts other parts rely on: message schema, signal names, store layouts.

Everything that crosses a boundary (simulator -> queue -> bridge -> InfluxDB, simulator ->
landing -> dbt) is named here once. See docs/architecture.md for the prose version.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

READING_SCHEMA = "chrom.reading.v1"
EVENT_SCHEMA = "chrom.event.v1"
SAMPLE_SCHEMA = "chrom.sample.v1"

#: The five 1 Hz process signals, in the order every table and message uses.
SIGNALS: tuple[str, ...] = ("flow_lpm", "pressure_bar", "uv_mau", "cond_ms_cm", "ph")

#: Identity fields of a reading; with SIGNALS, the required fields of chrom.reading.v1.
READING_KEYS: tuple[str, ...] = ("unit_id", "batch_id", "recipe", "phase", "ts", "seq")

#: Identities (unit_id, batch_id, recipe, phase) become InfluxDB tags, landing key parts,
#: SQL and InfluxQL literals and Grafana variable values. They are restricted to letters and
#: digits (any script), space and `_ - . : + ( )`, 1..128 characters, with no space at either
#: end: no quote, backslash, slash, semicolon, comma, equals sign, wildcard or control
#: character, so none can close a literal or a regex, or break line protocol or a key.
IDENTITY_MAX_CHARS = 128
IDENTITY_CHARS = "letters, digits, space and _ - . : + ( )"
_IDENTITY_RE = re.compile(rf"[\w \-.:+()]{{1,{IDENTITY_MAX_CHARS}}}")


def identity_ok(value: str) -> bool:
    """Whether `value` may be a unit, batch, recipe or phase identity (see above)."""
    return (
        _IDENTITY_RE.fullmatch(value) is not None
        and value[0] != " "
        and value[-1] != " "
        and value.isprintable()
    )


@dataclass(frozen=True)
class SignalSpec:
    name: str
    unit: str
    description: str
    #: Physically possible range for the instrument. Values outside it are sensor or transport
    #: faults, not process data, and are rejected by validation (never silently clipped).
    valid_min: float
    valid_max: float


SIGNAL_SPECS: dict[str, SignalSpec] = {
    s.name: s
    for s in (
        SignalSpec("flow_lpm", "L/min", "Column inlet flow", -5.0, 2000.0),
        SignalSpec("pressure_bar", "bar", "Column inlet pressure (gauge)", -1.0, 20.0),
        SignalSpec("uv_mau", "mAU", "UV absorbance at 280 nm, column outlet", -200.0, 6000.0),
        SignalSpec("cond_ms_cm", "mS/cm", "Conductivity, column outlet", -1.0, 300.0),
        SignalSpec("ph", "pH", "pH, column outlet", -1.0, 15.0),
    )
}

#: Arrow schema of landed readings (landing/readings/**.parquet). Strings are dictionary
#: encoded: a batch has a handful of distinct values over ~15k rows.
READING_ARROW_SCHEMA = pa.schema(
    [
        pa.field("unit_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("batch_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("recipe", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("phase", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        *(pa.field(s, pa.float64(), nullable=False) for s in SIGNALS),
        # Unknown extra message fields as a JSON object (kept, never fatal); null if none.
        pa.field("extra", pa.string(), nullable=True),
    ],
    metadata={"schema": READING_SCHEMA},
)

#: The unit's 1 Hz scan counter counts seconds from this instant. Deriving `seq` from the
#: unit clock keeps it monotonic across simulator restarts and makes lost scans visible as
#: gaps in `seq` (what a historian calls a sequence gap).
SEQ_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
SEQ_EPOCH_NS = int(SEQ_EPOCH.timestamp()) * 1_000_000_000


def seq_of(ts_ns: np.ndarray) -> np.ndarray:
    """The unit's scan counter for readings at these times: whole seconds since SEQ_EPOCH."""
    return (np.asarray(ts_ns, dtype=np.int64) - SEQ_EPOCH_NS) // 1_000_000_000


#: One clock rule for everything that lands readings: a reading stamped further ahead of
#: the receiving clock than this is a clock fault, not a reading. Accepted, it would put a
#: unit's live state (or the landing's high-water mark, for an import) in the future, and
#: every later live reading of the unit would look stale or duplicate. The live consumers
#: and `chrom import` both apply it; configurable per deployment (CHROM_MAX_CLOCK_AHEAD_S).
MAX_CLOCK_AHEAD_S = 300.0

# InfluxDB layout (live store).
INFLUX_MEASUREMENT = "chromatography"
INFLUX_DRIFT_MEASUREMENT = "drift"
INFLUX_TAGS: tuple[str, ...] = ("unit_id", "batch_id", "recipe", "phase")
#: `seq` (an integer field) lets a restarted bridge find where it stopped from InfluxDB
#: itself, and dashboards show sequence gaps.
INFLUX_FIELDS: tuple[str, ...] = (*SIGNALS, "batch_cv", "phase_cv", "volume_l", "seq")

# Landing zone layout (object store: a local folder or a GCS bucket, same keys).
LANDING = "landing"
READINGS_PREFIX = f"{LANDING}/readings"
EVENTS_PREFIX = f"{LANDING}/batch_events"
SAMPLES_PREFIX = f"{LANDING}/sample_results"
MASTER_DATA_PREFIX = f"{LANDING}/master_data"
#: what each `chrom import` inferred (the warehouse does not read these; the UI shows them)
IMPORTS_PREFIX = f"{LANDING}/imports"
#: where a writer stages objects it lands all or nothing (landing.StagedLanding): beside
#: `landing/`, never under it, so no glob of the warehouse's and no landing listing sees them
STAGING_PREFIX = "staging"
#: the record naming a staging's objects: once it exists, they are to be published
STAGING_COMMIT = "_commit.json"


def staged_key(staging_id: str, key: str) -> str:
    """Where `key` waits, or its staging's commit record, while staging `staging_id`."""
    return f"{STAGING_PREFIX}/{staging_id}/{key}"


def _date(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d")


#: A batch's objects carry its revision: the first has none in its name, a corrected
#: re-import (`chrom import --replace`) lands revision 2, 3, ... as new objects named
#: `...-r<n>.<ext>`. The warehouse keeps each batch's latest revision and marks the earlier
#: objects superseded; nothing is overwritten or deleted, so lineage stays in the landing.
_REVISION = re.compile(r"-r(?P<rev>[0-9]+)\.(?:parquet|json)$")


def revised(key: str, revision: int) -> str:
    """A first revision's key (no suffix, as the key functions below name objects) as
    revision `revision` names it."""
    stem, dot, ext = key.rpartition(".")
    if revision < 1:
        raise ValueError(f"revision {revision}: revisions count from 1")
    if not dot or _REVISION.search(key):
        raise ValueError(f"{key}: not a first revision's object name")
    return key if revision == 1 else f"{stem}-r{revision}.{ext}"


def revision_of(key: str) -> int:
    """The batch revision an object belongs to, from its name (1 without a suffix)."""
    m = _REVISION.search(key)
    return int(m["rev"]) if m else 1


def readings_key(unit_id: str, first_ts_ns: int, first_seq: int, last_seq: int) -> str:
    """Key of a Parquet object holding one unit's readings with seq in [first_seq, last_seq].

    The name is a function of the readings it holds, so landing the same readings again
    (a redelivery, a re-run backfill) overwrites the same object instead of adding a copy.
    """
    return (
        f"{READINGS_PREFIX}/unit_id={unit_id}/date={_date(first_ts_ns)}/"
        f"{unit_id}-{first_seq:012d}-{last_seq:012d}.parquet"
    )


def events_key(unit_id: str, batch_id: str, first_ts_ns: int, name: str) -> str:
    return f"{EVENTS_PREFIX}/unit_id={unit_id}/date={_date(first_ts_ns)}/{batch_id}-{name}.json"


def samples_key(unit_id: str, sample_id: str, attempt: int, analyzed_ts_ns: int) -> str:
    return (
        f"{SAMPLES_PREFIX}/unit_id={unit_id}/date={_date(analyzed_ts_ns)}/"
        f"{sample_id}-a{attempt}.json"
    )


def import_report_key(content_hash: str) -> str:
    """An import's report, one object per distinct report (the same files again: no new one)."""
    return f"{IMPORTS_PREFIX}/import-{content_hash}.json"


def master_data_key(kind: str, content_hash: str) -> str:
    """Master data snapshots, one object per distinct content (kind: equipment | recipes)."""
    return f"{MASTER_DATA_PREFIX}/{kind}/{kind}-{content_hash}.json"


def ts_to_iso(ts_ns: int) -> str:
    """UTC ISO 8601 with milliseconds, the wire form of `ts`."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(secs, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns // 1_000_000:03d}Z"


def iso_to_ns(ts: str) -> int:
    """Parse a UTC ISO 8601 timestamp (with 'Z' or an offset) to epoch nanoseconds."""
    d = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if d.tzinfo is None:
        raise ValueError(f"timestamp {ts!r} has no time zone")
    return (d - _UNIX_EPOCH) // dt.timedelta(microseconds=1) * 1_000


_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
