"""The mapping file of `chrom import`: how a plant's CSV files map onto the platform's
contracts (which column or historian tag is which signal, in which unit, which time zone,
where the batch list, phase events and lab results are).

Validated at load like master data: a bad mapping raises `ConfigError` naming the file, the
key path and the problem, before any data file is read.

    shape: wide                      # wide: one row per scan, a column per signal
    time: {column: Time, format: iso, timezone: Europe/Berlin}
    batch: {column: Batch}           # or {filename: '(?P<batch_id>[^_]+)_export\\.csv'}
    phase: {column: Phase}
    signals:
      flow_lpm: {column: "Flow [mL/min]", unit: mL/min}
      ...
    ignore_columns: [Operator]
    batches: batches.csv             # batch_id, unit_id, recipe[, column_cycle, planned_load_cv]
    lab_results: lab_results.csv     # optional
    hold_min_s: 10                   # flow below the unit's dead band this long ends a phase

    shape: long                      # long: historian export, one row per tag and time
    time: {column: timestamp, format: iso, timezone: UTC}
    tag_column: tag
    value_column: value
    tags:
      "SKID01.FIT101.PV": {unit_id: SKID-01, signal: flow_lpm, unit: L/h}
    events: phases.csv               # batch_id, phase, start, end

A plant's own files keep their own names: `batches`, `lab_results` and `events` also take
{file: F, columns: {batch_id: "Batch No.", ...}} (the platform's name -> the file's), and
lab results a vocabulary of sample types, each the role it plays (feed: the titer before the
column, pool: the eluate after it) or null for a test the platform does not use:

    lab_results:
      file: lims.csv
      columns: {batch_id: "Batch No.", sample_point: "Sample Type", result: Result, ...}
      sample_types: {Pre-capture: feed, Eluate: pool, Bioburden: null}

Exports that are not one scan a second (a historian's values stored by exception, jittered,
extra or missing scans) are resampled onto whole seconds as the historian means them:

    sampling: {interpolation: step, max_gap_s: 125}   # step: held until the next value
    no_data: ["No Data", "Bad"]                       # (long) the tag had no value from here

A historian that stores a value only when it moves beyond a deadband records a signal no
finer than that deadband: a tag or column declares it (`deadband`, in its own unit), it lands
with each batch, and the analyses judge with it (a specification is violated only beyond the
deadband; a steady and a stuck transmitter look alike, so no flatline is judged on it):

    tags:
      "SKID01.AT202.COND": {unit_id: SKID-01, signal: cond_ms_cm, unit: mS/cm, deadband: 0.05}

Holds: flow below the unit's dead band for at least `hold_min_s`, where isolated scans above
it lasting at most `hold_spike_s` are meter noise, not pumping; pumping after a phase's hold
under the same label for at most `label_lag_max_s` is the next phase's start (labels set at
the operator's command). Scans between two phase labels for at most `unlabelled_max_s` belong
to the phase before them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chrom_platform.lib.core import units
from chrom_platform.lib.core.config_files import ConfigFileError, load_yaml_file
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import ConfigError

SHAPES = ("wide", "long")
INTERPOLATIONS = ("step", "linear")
#: the sample-point roles the warehouse reads (silver_batch_lab_results)
SAMPLE_ROLES = ("feed", "pool")
#: every key a mapping may have: a misspelled one is an error, never silently ignored
_KEYS = {
    "common": {
        "shape",
        "time",
        "batches",
        "lab_results",
        "hold_min_s",
        "hold_spike_s",
        "label_lag_max_s",
        "unlabelled_max_s",
        "ignore_columns",
        "sampling",
        "no_data",
    },
    "wide": {"batch", "phase", "signals"},
    "long": {"tag_column", "value_column", "tags", "events"},
}
#: the columns of the plant's other files, as the platform names them (required, optional)
FILE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "batches": (("batch_id", "unit_id", "recipe"), ("column_cycle", "planned_load_cv")),
    "lab_results": (
        ("batch_id", "sample_point", "result", "unit", "sampled_at", "analyzed_at"),
        ("analyte", "method"),
    ),
    "events": (("batch_id", "phase", "start", "end"), ()),
}


@dataclass(frozen=True)
class FileSpec:
    """One of the plant's other files and what its columns are called there."""

    path: Path
    #: the platform's name -> the file's (every known column; the file's own name if unmapped)
    columns: dict[str, str]
    #: lab results: sample type -> role ("feed", "pool") or None (not used); None: the types
    #: are the roles themselves
    sample_types: dict[str, str | None] | None = None

    def col(self, name: str) -> str:
        return self.columns.get(name, name)


@dataclass(frozen=True)
class Sampling:
    """How values between two exported ones are meant, and how far one may be carried."""

    interpolation: str
    max_gap_s: float


@dataclass(frozen=True)
class TimeSpec:
    column: str
    #: "iso" (ISO 8601, with or without an offset) or a strptime format
    format: str
    #: the zone of timestamps written without an offset (None: such timestamps are an error)
    timezone: ZoneInfo | None


@dataclass(frozen=True)
class SignalSource:
    """Where one signal comes from: a column (wide) or a tag (long), and its unit."""

    signal: str
    unit: str
    factor: float
    column: str | None = None
    tag: str | None = None
    unit_id: str | None = None
    #: the historian's compression deadband in the signal's canonical unit (0: none)
    deadband: float = 0.0


@dataclass(frozen=True)
class Mapping:
    source: str
    shape: str
    time: TimeSpec
    batches: FileSpec
    lab_results: FileSpec | None
    hold_min_s: float
    ignore_columns: frozenset[str]
    hold_spike_s: float = 3.0
    label_lag_max_s: float = 120.0
    unlabelled_max_s: float = 60.0
    sampling: Sampling | None = None
    no_data: frozenset[str] = frozenset()
    # wide
    batch_column: str | None = None
    batch_from_filename: re.Pattern[str] | None = None
    phase_column: str | None = None
    signals: tuple[SignalSource, ...] = ()
    # long
    tag_column: str | None = None
    value_column: str | None = None
    tags: dict[str, SignalSource] | None = None
    events: FileSpec | None = None

    def deadbands(self, unit_id: str | None) -> dict[str, float]:
        """Signal -> the deadband its record was compressed with (canonical unit), for the
        signals that declare one: a wide export's columns, or (long) the unit's tags."""
        sources = self.signals if unit_id is None else self.units_with_tags()[unit_id].values()
        return {s.signal: s.deadband for s in sources if s.deadband > 0}

    def units_with_tags(self) -> dict[str, dict[str, SignalSource]]:
        """Long shape: unit id -> signal -> its tag."""
        out: dict[str, dict[str, SignalSource]] = {}
        for src in (self.tags or {}).values():
            assert src.unit_id is not None
            out.setdefault(src.unit_id, {})[src.signal] = src
        return out


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def mapping(self, doc: Any, key: str) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise self.fail(key, f"expected a mapping, got {type(doc).__name__}")
        return doc

    def string(self, doc: dict[str, Any], name: str, key: str, default: str | None = None) -> str:
        value = doc.get(name, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key}.{name}".lstrip("."), "expected a non-empty string")
        return value

    def path(self, doc: dict[str, Any], name: str, base: Path, *, required: bool) -> Path | None:
        if name not in doc and not required:
            return None
        p = Path(self.string(doc, name, ""))
        p = p if p.is_absolute() else base / p
        # A mapping names files in its own folder only: one written by someone else must
        # not make `chrom import` read (and quote in its problems) a file elsewhere, as a
        # path like /etc/shadow or a symlink out of the folder would.
        folder = base.resolve()
        if not p.resolve().is_relative_to(folder):
            raise self.fail(
                name,
                f"{p} is outside the mapping's folder {folder} (or a link out of it): "
                "put the file beside the mapping",
            )
        if not p.is_file():
            raise self.fail(name, f"file not found: {p}")
        return p


def _file(
    rd: _Reader, root: dict[str, Any], name: str, base: Path, *, required: bool
) -> FileSpec | None:
    """`name: path` or `name: {file: path, columns: {...}[, sample_types: {...}]}`."""
    doc = root.get(name)
    if doc is None and not required:
        return None
    if not isinstance(doc, dict):
        path = rd.path(root, name, base, required=True)
        assert path is not None
        return FileSpec(path, {})
    unknown = (
        set(doc) - {"file", "columns"} - ({"sample_types"} if name == "lab_results" else set())
    )
    if unknown:
        raise rd.fail(name, f"unknown keys {sorted(unknown)}")
    path = rd.path(doc, "file", base, required=True)
    assert path is not None
    required_cols, optional_cols = FILE_COLUMNS[name]
    cols = rd.mapping(doc.get("columns", {}), f"{name}.columns")
    for k, v in cols.items():
        if k not in required_cols + optional_cols:
            raise rd.fail(
                f"{name}.columns.{k}",
                f"not a column the platform reads; known: {list(required_cols + optional_cols)}",
            )
        if not isinstance(v, str) or not v.strip():
            raise rd.fail(f"{name}.columns.{k}", "expected the file's column name")
    types = None
    if "sample_types" in doc:
        t = rd.mapping(doc["sample_types"], f"{name}.sample_types")
        types = {}
        for k, v in t.items():
            if v is not None and v not in SAMPLE_ROLES:
                raise rd.fail(
                    f"{name}.sample_types.{k}",
                    f"expected a role {list(SAMPLE_ROLES)} or null (not used), got {v!r}",
                )
            types[str(k)] = v
        for role in SAMPLE_ROLES:
            if list(types.values()).count(role) > 1:
                raise rd.fail(f"{name}.sample_types", f"two sample types play the role {role!r}")
    return FileSpec(path, {str(k): str(v).strip() for k, v in cols.items()}, types)


def _seconds(rd: _Reader, root: dict[str, Any], name: str, default: float, low: float) -> float:
    v = root.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v < 1e7:
        raise rd.fail(name, f"expected seconds >= {low:g}, got {v!r}")
    return float(v)


def _sampling(rd: _Reader, root: dict[str, Any]) -> Sampling | None:
    if "sampling" not in root:
        return None
    doc = rd.mapping(root["sampling"], "sampling")
    unknown = set(doc) - {"interpolation", "max_gap_s"}
    if unknown:
        raise rd.fail("sampling", f"unknown keys {sorted(unknown)}")
    how = doc.get("interpolation")
    if how not in INTERPOLATIONS:
        raise rd.fail(
            "sampling.interpolation",
            f"expected one of {list(INTERPOLATIONS)} (how the export means values between "
            f"two of its rows), got {how!r}",
        )
    return Sampling(str(how), _seconds(rd, doc, "max_gap_s", 5, 1))


def _time(rd: _Reader, doc: dict[str, Any]) -> TimeSpec:
    t = rd.mapping(doc.get("time"), "time")
    tz_name = t.get("timezone")
    zone = None
    if tz_name is not None:
        try:
            zone = ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise rd.fail("time.timezone", f"unknown time zone {tz_name!r}") from e
    fmt = rd.string(t, "format", "time", default="iso")
    if fmt != "iso" and "%" not in fmt:
        raise rd.fail("time.format", f"expected 'iso' or a strptime format, got {fmt!r}")
    return TimeSpec(column=rd.string(t, "column", "time"), format=fmt, timezone=zone)


#: the keys of one signal's source: a wide export's column, or a long export's tag
_SOURCE_KEYS = {
    "wide": {"column", "unit", "deadband"},
    "long": {"unit_id", "signal", "unit", "deadband"},
}


def _source(rd: _Reader, doc: Any, key: str, signal: str, shape: str) -> SignalSource:
    """One signal's source, its unit's factor and its deadband (converted): the caller
    fills in where it comes from."""
    doc = rd.mapping(doc, key)
    unknown = set(doc) - _SOURCE_KEYS[shape]
    if unknown:
        raise rd.fail(key, f"unknown keys {sorted(unknown)}; known: {sorted(_SOURCE_KEYS[shape])}")
    unit = str(doc.get("unit", ""))
    try:
        f = units.factor(signal, unit)
    except ValueError as e:
        raise rd.fail(f"{key}.unit", str(e)) from e
    db = doc.get("deadband", 0.0)
    if isinstance(db, bool) or not isinstance(db, int | float) or not 0 <= db < 1e9:
        raise rd.fail(
            f"{key}.deadband",
            f"expected the historian's deadband, a number >= 0 in {unit or 'its unit'}, got {db!r}",
        )
    return SignalSource(signal, unit, f, deadband=float(db) * f)


def parse_mapping(doc: Any, source: str, base: Path) -> Mapping:
    rd = _Reader(source)
    root = rd.mapping(doc, "(top level)")
    shape = root.get("shape")
    if shape not in SHAPES:
        raise rd.fail("shape", f"expected one of {list(SHAPES)}, got {shape!r}")
    ignore = root.get("ignore_columns", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise rd.fail("ignore_columns", "expected a list of column names")
    unknown = set(root) - _KEYS["common"] - _KEYS[shape]
    if unknown:
        raise rd.fail(
            "(top level)",
            f"unknown keys {sorted(unknown)}; a {shape} mapping has "
            f"{sorted(_KEYS['common'] | _KEYS[shape])}",
        )
    no_data = root.get("no_data", [])
    if not isinstance(no_data, list) or not all(isinstance(c, str) for c in no_data):
        raise rd.fail("no_data", "expected a list of the texts the export writes for no value")
    batches = _file(rd, root, "batches", base, required=True)
    assert batches is not None
    common: dict[str, Any] = {
        "source": source,
        "shape": shape,
        "time": _time(rd, root),
        "batches": batches,
        "lab_results": _file(rd, root, "lab_results", base, required=False),
        "hold_min_s": _seconds(rd, root, "hold_min_s", 10, 1),
        "hold_spike_s": _seconds(rd, root, "hold_spike_s", 3, 0),
        "label_lag_max_s": _seconds(rd, root, "label_lag_max_s", 120, 0),
        "unlabelled_max_s": _seconds(rd, root, "unlabelled_max_s", 60, 0),
        "ignore_columns": frozenset(ignore),
        "sampling": _sampling(rd, root),
        "no_data": frozenset(s.strip() for s in no_data),
    }
    if shape == "wide":
        return _wide(rd, root, common)
    return _long(rd, root, base, common)


def _wide(rd: _Reader, root: dict[str, Any], common: dict[str, Any]) -> Mapping:
    batch = rd.mapping(root.get("batch"), "batch")
    batch_column = batch_re = None
    if "column" in batch:
        batch_column = rd.string(batch, "column", "batch")
    elif "filename" in batch:
        try:
            batch_re = re.compile(rd.string(batch, "filename", "batch"))
        except re.error as e:
            raise rd.fail("batch.filename", f"not a regular expression: {e}") from e
        if "batch_id" not in batch_re.groupindex:
            raise rd.fail("batch.filename", "needs a named group (?P<batch_id>...)")
    else:
        raise rd.fail("batch", "expected {column: NAME} or {filename: REGEX}")
    phase = rd.mapping(root.get("phase"), "phase")
    sigs = rd.mapping(root.get("signals"), "signals")
    sources = []
    for s in SIGNALS:
        if s not in sigs:
            raise rd.fail(f"signals.{s}", f"missing: every signal needs a column ({list(SIGNALS)})")
        src = _source(rd, sigs[s], f"signals.{s}", s, "wide")
        sources.append(replace(src, column=rd.string(sigs[s], "column", f"signals.{s}")))
    unknown = set(sigs) - set(SIGNALS)
    if unknown:
        raise rd.fail("signals", f"unknown signals {sorted(unknown)}; known: {list(SIGNALS)}")
    return Mapping(
        **common,
        batch_column=batch_column,
        batch_from_filename=batch_re,
        phase_column=rd.string(phase, "column", "phase"),
        signals=tuple(sources),
    )


def _long(rd: _Reader, root: dict[str, Any], base: Path, common: dict[str, Any]) -> Mapping:
    tags_doc = rd.mapping(root.get("tags"), "tags")
    tags: dict[str, SignalSource] = {}
    seen: dict[tuple[str, str], str] = {}
    for tag, spec in tags_doc.items():
        key = f"tags.{tag}"
        spec = rd.mapping(spec, key)
        signal = rd.string(spec, "signal", key)
        if signal not in SIGNALS:
            raise rd.fail(f"{key}.signal", f"unknown signal {signal!r}; known: {list(SIGNALS)}")
        unit_id = rd.string(spec, "unit_id", key)
        if (unit_id, signal) in seen:
            raise rd.fail(key, f"{unit_id} {signal} is already tag {seen[(unit_id, signal)]!r}")
        seen[(unit_id, signal)] = str(tag)
        src = _source(rd, spec, key, signal, "long")
        tags[str(tag)] = replace(src, tag=str(tag), unit_id=unit_id)
    m = Mapping(
        **common,
        tag_column=rd.string(root, "tag_column", "", default="tag"),
        value_column=rd.string(root, "value_column", "", default="value"),
        tags=tags,
        events=_file(rd, root, "events", base, required=True),
    )
    for unit_id, by_signal in m.units_with_tags().items():
        missing = [s for s in SIGNALS if s not in by_signal]
        if missing:
            raise rd.fail("tags", f"unit {unit_id} has no tag for {missing}")
    return m


def load_mapping(path: Path | str) -> Mapping:
    p = Path(path)
    try:
        doc = load_yaml_file(p)
    except FileNotFoundError as e:
        raise ConfigError(str(p), "(file)", "not found") from e
    except OSError as e:
        raise ConfigError(str(p), "(file)", f"cannot read: {e.strerror}") from e
    except ConfigFileError as e:
        raise ConfigError(str(p), "(file)", str(e)) from e
    return parse_mapping(doc, str(p), p.parent)
