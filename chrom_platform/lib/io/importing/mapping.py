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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from chrom_platform.lib.core import units
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import ConfigError

SHAPES = ("wide", "long")


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


@dataclass(frozen=True)
class Mapping:
    source: str
    shape: str
    time: TimeSpec
    batches: Path
    lab_results: Path | None
    hold_min_s: float
    ignore_columns: frozenset[str]
    # wide
    batch_column: str | None = None
    batch_from_filename: re.Pattern[str] | None = None
    phase_column: str | None = None
    signals: tuple[SignalSource, ...] = ()
    # long
    tag_column: str | None = None
    value_column: str | None = None
    tags: dict[str, SignalSource] | None = None
    events: Path | None = None

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
        if not p.is_file():
            raise self.fail(name, f"file not found: {p}")
        return p


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


def _source(rd: _Reader, doc: Any, key: str, signal: str) -> tuple[str, float]:
    doc = rd.mapping(doc, key)
    unit = str(doc.get("unit", ""))
    try:
        return unit, units.factor(signal, unit)
    except ValueError as e:
        raise rd.fail(f"{key}.unit", str(e)) from e


def parse_mapping(doc: Any, source: str, base: Path) -> Mapping:
    rd = _Reader(source)
    root = rd.mapping(doc, "(top level)")
    shape = root.get("shape")
    if shape not in SHAPES:
        raise rd.fail("shape", f"expected one of {list(SHAPES)}, got {shape!r}")
    ignore = root.get("ignore_columns", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise rd.fail("ignore_columns", "expected a list of column names")
    hold_min_s = root.get("hold_min_s", 10)
    if not isinstance(hold_min_s, int | float) or hold_min_s < 1:
        raise rd.fail("hold_min_s", f"expected seconds >= 1, got {hold_min_s!r}")
    batches = rd.path(root, "batches", base, required=True)
    assert batches is not None
    common: dict[str, Any] = {
        "source": source,
        "shape": shape,
        "time": _time(rd, root),
        "batches": batches,
        "lab_results": rd.path(root, "lab_results", base, required=False),
        "hold_min_s": float(hold_min_s),
        "ignore_columns": frozenset(ignore),
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
        unit, f = _source(rd, sigs[s], f"signals.{s}", s)
        sources.append(
            SignalSource(s, unit, f, column=rd.string(sigs[s], "column", f"signals.{s}"))
        )
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
        unit, f = _source(rd, spec, key, signal)
        tags[str(tag)] = SignalSource(signal, unit, f, tag=str(tag), unit_id=unit_id)
    m = Mapping(
        **common,
        tag_column=rd.string(root, "tag_column", "", default="tag"),
        value_column=rd.string(root, "value_column", "", default="value"),
        tags=tags,
        events=rd.path(root, "events", base, required=True),
    )
    for unit_id, by_signal in m.units_with_tags().items():
        missing = [s for s in SIGNALS if s not in by_signal]
        if missing:
            raise rd.fail("tags", f"unit {unit_id} has no tag for {missing}")
    return m


def load_mapping(path: Path | str) -> Mapping:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError as e:
        raise ConfigError(str(p), "(file)", "not found") from e
    except yaml.YAMLError as e:
        raise ConfigError(str(p), "(file)", f"not valid YAML: {e}") from e
    return parse_mapping(doc, str(p), p.parent)
