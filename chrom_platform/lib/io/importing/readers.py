"""Reading a plant's CSV files into batches of 1 Hz scans in canonical units.

Nothing here writes: every problem is collected with its file, line and column, and the
caller lands nothing unless there are none. Wide files give the phase per row; a long
historian export gives scans per tag, aligned per unit, and its phases from an events file.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chrom_platform.lib.core import config_files
from chrom_platform.lib.core.contracts import MAX_CLOCK_AHEAD_S, SIGNALS, seq_of
from chrom_platform.lib.core.runs import true_runs
from chrom_platform.lib.io.importing.mapping import (
    FILE_COLUMNS,
    FileSpec,
    Mapping,
    SignalSource,
    TimeSpec,
)
from chrom_platform.lib.io.importing.sampling import Notes, grid, labels_at, resample

NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Scans before this are not plant data from a running historian but a broken clock or a
#: column of something else (Excel serial days, seconds from boot).
PLAUSIBLE_FROM = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
#: Problems listed per import before the rest are only counted.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    column: str | None
    problem: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        col = f" column {self.column!r}:" if self.column is not None else ""
        return f"{where}:{col} {self.problem}"


class ImportRejected(Exception):
    """The files cannot be imported; nothing was landed. Every problem found is listed."""

    def __init__(self, problems: list[Problem], more: int = 0) -> None:
        self.problems, self.more = problems, more
        lines = [str(p) for p in problems]
        if more:
            lines.append(f"... and {more} more problem(s)")
        super().__init__("\n".join(lines))


@dataclass
class Problems:
    found: list[Problem] = field(default_factory=list)
    more: int = 0

    def add(self, file: str | Path, line: int | None, column: str | None, problem: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(str(file), line, column, problem))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.found)

    def about(self, file: str | Path) -> bool:
        """Whether a problem was found in this file."""
        return any(p.file == str(file) for p in self.found)

    def raise_if_any(self) -> None:
        if self.found:
            raise ImportRejected(self.found, self.more)


@dataclass(frozen=True)
class Clock:
    """The receiving clock of one import, read once, and the platform's clock rule: no scan
    or analysis further ahead of it than `max_ahead_s` (the live consumers' rule too)."""

    now_ns: int
    max_ahead_s: float = MAX_CLOCK_AHEAD_S

    @classmethod
    def now(cls, max_ahead_s: float = MAX_CLOCK_AHEAD_S) -> Clock:
        return cls(time.time_ns(), max_ahead_s)

    @property
    def latest_ns(self) -> int:
        return self.now_ns + int(self.max_ahead_s * NS)


class TimeParser:
    """Parses one file's timestamps to epoch ns. A file is either all with offsets or all
    without (then in the mapping's time zone): a mix is an error, never a guess."""

    def __init__(self, spec: TimeSpec, clock: Clock | None = None) -> None:
        self.spec = spec
        self.first: tuple[bool, int] | None = None  # (has offset, line)
        self.clock = clock or Clock.now()
        self.latest = self.clock.latest_ns
        # a historian export repeats each time once per tag, one after the other
        self._last: tuple[str, int] = ("", 0)
        #: local times without an offset that fell in the hour a daylight-saving change
        #: repeats: read as the second pass when the first would go back in time
        self.ambiguous: list[tuple[int, str]] = []
        #: line -> how much later the second pass would be, for those read as the first
        self.first_pass: dict[int, int] = {}
        self._prev_ns = 0

    def __call__(self, text: str, line: int) -> int:
        if text == self._last[0]:
            return self._last[1]
        ns = self._parse(text, line)
        self._last = (text, ns)
        return ns

    def _parse(self, text: str, line: int) -> int:
        s = text.strip()
        try:
            if self.spec.format == "iso":
                d = dt.datetime.fromisoformat(s)
            else:
                d = dt.datetime.strptime(s, self.spec.format)
        except ValueError as e:
            fmt = "ISO 8601" if self.spec.format == "iso" else repr(self.spec.format)
            raise ValueError(f"not a time in {fmt}: {text!r}") from e
        aware = d.tzinfo is not None
        if self.first is None:
            self.first = (aware, line)
        elif self.first[0] != aware:
            has = "has an offset" if aware else "has no offset"
            other = "none" if aware else "one"
            raise ValueError(
                f"mixed time zones: {text!r} {has}, line {self.first[1]}'s time has {other}"
            )
        if not aware:
            if self.spec.timezone is None:
                raise ValueError(
                    f"{text!r} has no UTC offset and the mapping sets no time.timezone"
                )
            d = d.replace(tzinfo=self.spec.timezone)
            later = d.replace(fold=1)
            if later.utcoffset() != d.utcoffset():
                first_ns = (d - _EPOCH) // dt.timedelta(microseconds=1) * 1000
                shift = (later - _EPOCH) // dt.timedelta(microseconds=1) * 1000 - first_ns
                if first_ns < self._prev_ns:
                    d, shift = later, 0
                self.ambiguous.append((line, text))
                if shift:
                    self.first_pass[line] = shift
        if d < PLAUSIBLE_FROM:
            raise ValueError(f"implausible time {text!r}: before {PLAUSIBLE_FROM.date()}")
        ns = (d - _EPOCH) // dt.timedelta(microseconds=1) * 1000
        if ns > self.latest:
            raise ValueError(
                f"implausible time {text!r}: {(ns - self.clock.now_ns) / NS:.0f} s ahead of "
                f"this machine's clock, at most {self.clock.max_ahead_s:g} s "
                "(CHROM_MAX_CLOCK_AHEAD_S, the rule live readings follow: an import never "
                "gets ahead of a unit's live stream); check the mapping's time zone"
            )
        self._prev_ns = ns
        return ns

    def note(self, notes: Notes, path: Path | str) -> None:
        for line, text in self.ambiguous:
            notes.add(
                "time_ambiguous_dst",
                "local times in the hour a daylight-saving change repeats, placed by their order",
                example=f"{path}:{line} {text!r}",
            )


@dataclass
class BatchData:
    """One batch's scans as read, before master data is applied."""

    batch_id: str
    file: str
    line: int
    ts: np.ndarray
    #: (phase name, first scan, last scan, file line of its first scan)
    phase_runs: list[tuple[str, int, int, int]]
    signals: dict[str, np.ndarray]
    phase_column: str | None = None
    #: long shape: the unit the tags belong to
    unit_id: str | None = None
    #: signal -> the deadband its record was compressed with (the mapping's; canonical unit)
    deadbands: dict[str, float] = field(default_factory=dict)


def rows(path: Path, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a CSV file; BOM and Windows line ends accepted. A file that
    is not UTF-8 text, or has a cell beyond the csv module's limit (128 KiB), is a problem
    naming its line, and its reading stops there (the import is rejected)."""
    with open(path, "rb") as raw:
        head = raw.read(_SNIFF_BYTES)
    try:
        config_files.decode_utf8(
            head[: head.rfind(b"\n") + 1] if len(head) == _SNIFF_BYTES else head
        )
    except config_files.ConfigFileError as e:
        problems.add(path, e.line, None, e.problem)
        return
    if b"\0" in head:
        problems.add(path, head.count(b"\n", 0, head.index(b"\0")) + 1, None, _BINARY)
        return
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            for cells in reader:
                if cells and any(c.strip() for c in cells):
                    yield reader.line_num, cells
        except UnicodeDecodeError:
            problems.add(path, _first_bad_line(path), None, "not UTF-8: save the file as UTF-8")
        except csv.Error as e:
            problems.add(path, reader.line_num, None, f"not readable as CSV: {e}")


#: Bytes read up front to tell a text file from a binary or UTF-16 one.
_SNIFF_BYTES = 65_536
_BINARY = "binary content (NUL byte): not a CSV export"
#: Columns in a header. Wide exports carry a batch's tags (tens, a few hundred with unused
#: ones ignored); the bound keeps a broken file from costing minutes of problem listing.
MAX_COLUMNS = 10_000
#: Header names shown in a problem; the rest are counted.
_SHOWN_NAMES = 20


def _first_bad_line(path: Path) -> int:
    """The 1-based line of the first bytes that are not UTF-8 (error path only: a rescan)."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return n
    return 1


def _shown(names: list[str]) -> str:
    more = len(names) - _SHOWN_NAMES
    return str(names[:_SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


def header(
    path: Path, problems: Problems, required: list[tuple[str, str]], ignore: frozenset[str]
) -> tuple[Iterator[tuple[int, list[str]]], dict[str, int]] | None:
    """The file's rows after its header, and the index of each required column. Missing
    and unknown columns are problems (`required`: (column, what the mapping calls it))."""
    it = rows(path, problems)
    first = next(it, None)
    if first is None:
        if not problems.about(path):
            problems.add(path, None, None, "empty file: no header and no rows")
        return None
    line, cells = first
    if len(cells) > MAX_COLUMNS:
        problems.add(path, line, None, f"{len(cells):,} columns; at most {MAX_COLUMNS:,}")
        return None
    names = [c.strip() for c in cells]
    index = {n: i for i, n in enumerate(names)}
    ok = True
    for col, what in required:
        if col not in index:
            problems.add(
                path, line, col, f"missing column ({what}); the header has {_shown(names)}"
            )
            ok = False
    counts = Counter(names)
    for n in sorted(n for n, k in counts.items() if k > 1):
        problems.add(path, line, n, "column appears twice in the header")
        ok = False
    wanted = {c for c, _ in required}
    for n in dict.fromkeys(names):
        if n not in wanted and n not in ignore:
            problems.add(path, line, n, "unknown column: map it or list it in ignore_columns")
            ok = False
    return (_well_formed(it, path, len(names), problems), index) if ok else None


def mapped_header(
    spec: FileSpec, what: str, ignore: frozenset[str], problems: Problems
) -> tuple[Iterator[tuple[int, list[str]]], dict[str, int], dict[str, str]] | None:
    """`header` for one of the plant's other files (mapping `what`: batches, lab_results,
    events): its rows, the index of each column the platform reads under the platform's
    name (its required ones, and the optional ones the file has), and the platform's name
    -> the file's, for naming a column in a problem."""
    required, optional = FILE_COLUMNS[what]
    cols = {c: spec.col(c) for c in required + optional}
    # a first look at the header only: `header` below reads it again and reports problems
    first = next(rows(spec.path, Problems()), None)
    names = {c.strip() for c in first[1]} if first else set()
    want = [(cols[c], f"{what}.columns.{c}") for c in required]
    want += [(cols[c], f"{what}.columns.{c}") for c in optional if cols[c] in names]
    got = header(spec.path, problems, want, ignore)
    if got is None:
        return None
    it, by_name = got
    return it, {c: by_name[f] for c, f in cols.items() if f in by_name}, cols


def _well_formed(
    it: Iterator[tuple[int, list[str]]], path: Path, width: int, problems: Problems
) -> Iterator[tuple[int, list[str]]]:
    """The rows with as many cells as the header; the others are problems."""
    for line, cells in it:
        if len(cells) != width:
            problems.add(path, line, None, f"{len(cells)} cells, the header has {width}")
            continue
        yield line, cells


def parse_times(
    parse: TimeParser, cells: list[str], index: dict[str, int], columns: tuple[str, ...], line: int
) -> list[int]:
    """The times in these columns of a row (ValueError naming the problem)."""
    return [parse(cells[index[c]], line) for c in columns]


def number(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {text!r}")
    return v


def value(text: str, no_data: frozenset[str]) -> float:
    """A cell's number; NaN for the export's own "no value" texts (mapping `no_data`)."""
    if no_data and text.strip() in no_data:
        return math.nan
    return number(text)


def converted(values: np.ndarray, factor: float) -> np.ndarray:
    """Values times a unit factor, to 1e-9 in the canonical unit: far below any instrument's
    resolution, and it undoes the last-bit error of the conversion (0.29 L/min written as
    290 mL/min comes back as 0.29, not 0.29000000000000004), so a reading on a limit (a flow
    on the dead band) stays on the same side of it."""
    if factor == 1.0:
        return values
    return np.round(values * factor * 1e9) / 1e9


def _runs(phases: list[str], lines: list[int]) -> list[tuple[str, int, int, int]]:
    out: list[tuple[str, int, int, int]] = []
    for i, p in enumerate(phases):
        if out and out[-1][0] == p:
            name, a, _, line = out[-1]
            out[-1] = (name, a, i, line)
        else:
            out.append((p, i, i, lines[i]))
    return out


def _same_second(b: BatchData, lines: list[int] | None, problems: Problems) -> None:
    seq = seq_of(b.ts)
    dup = np.nonzero(np.diff(seq) == 0)[0]
    if dup.size:
        i = int(dup[0])
        where = f"lines {lines[i]} and {lines[i + 1]}" if lines else "two scans"
        problems.add(
            b.file,
            lines[i + 1] if lines else b.line,
            None,
            f"batch {b.batch_id}: {where} fall in the same second; the platform takes 1 Hz "
            f"scans (resample first)",
        )


def read_wide(
    path: Path, m: Mapping, problems: Problems, notes: Notes, clock: Clock | None = None
) -> Iterator[BatchData]:
    """A wide file read whole (every problem found now), then its batches one by one."""
    assert m.phase_column is not None
    required = [(m.time.column, "time.column"), (m.phase_column, "phase.column")]
    if m.batch_column:
        required.append((m.batch_column, "batch.column"))
    required += [(s.column or "", f"signals.{s.signal}.column") for s in m.signals]
    got = header(path, problems, required, m.ignore_columns)
    if got is None:
        return iter(())
    it, index = got
    file_batch = None
    if m.batch_from_filename is not None:
        match = m.batch_from_filename.fullmatch(path.name)
        if not match:
            problems.add(
                path,
                None,
                None,
                f"file name does not match batch.filename {m.batch_from_filename.pattern!r}",
            )
            return iter(())
        file_batch = match["batch_id"]
    parse_time = TimeParser(m.time, clock)
    ti, pi = index[m.time.column], index[m.phase_column]
    bi = index[m.batch_column] if m.batch_column else None
    sig_cols = [(s.signal, index[s.column or ""], s.column) for s in m.signals]
    # Typed arrays, not lists of Python objects: a row costs 8 bytes a number instead of
    # ~30, and each phase label is one shared string (a 10M-row export fits in memory).
    acc: dict[str, dict[str, Any]] = {}
    labels: dict[str, str] = {}
    first_line: dict[str, int] = {}
    n = 0
    for line, cells in it:
        n += 1
        batch = file_batch if bi is None else cells[bi].strip()
        if not batch:
            problems.add(path, line, m.batch_column, "empty batch id")
            continue
        try:
            ts = parse_time(cells[ti], line)
        except ValueError as e:
            problems.add(path, line, m.time.column, str(e))
            continue
        phase = cells[pi].strip()  # '' between two labels: placed by the batch check
        phase = labels.setdefault(phase, phase)
        values = []
        for signal, ci, col in sig_cols:
            try:
                values.append(value(cells[ci], m.no_data))
            except ValueError:
                problems.add(path, line, col, f"{signal}: not a finite number: {cells[ci]!r}")
                break
        else:
            a = acc.get(batch)
            if a is None:
                a = acc[batch] = {
                    "ts": array("q"),
                    "phase": [],
                    "line": array("q"),
                    "v": array("d"),
                }
                first_line[batch] = line
            elif ts <= a["ts"][-1]:
                prev = a["line"][-1]
                what = "duplicate time: same as" if ts == a["ts"][-1] else "time goes back: before"
                problems.add(path, line, m.time.column, f"{what} line {prev} (batch {batch})")
                continue
            a["ts"].append(ts)
            a["phase"].append(phase)
            a["line"].append(line)
            a["v"].extend(values)
    if n == 0:
        problems.add(path, None, None, "empty file: a header and no rows")
    parse_time.note(notes, path)
    return _wide_batches(path, acc, first_line, parse_time.first_pass, m, problems, notes)


def _wide_batches(
    path: Path,
    acc: dict[str, dict[str, Any]],
    first_line: dict[str, int],
    first_pass: dict[int, int],
    m: Mapping,
    problems: Problems,
    notes: Notes,
) -> Iterator[BatchData]:
    """Each batch of a file as BatchData, its rows' arrays let go as it is made: a file of
    many batches is held once, as its rows, not as its rows and every batch's arrays."""
    while acc:
        batch = next(iter(acc))
        a = acc.pop(batch)
        yield _wide_batch(path, batch, a, first_line[batch], first_pass, m, problems, notes)


def _wide_batch(
    path: Path,
    batch: str,
    a: dict[str, Any],
    first_line: int,
    first_pass: dict[int, int],
    m: Mapping,
    problems: Problems,
    notes: Notes,
) -> BatchData:
    """One batch's rows of a wide file (`a`: its typed arrays) as BatchData: converted,
    resampled onto whole seconds where the mapping says so, its phase runs by line."""
    _second_pass(a, first_pass)
    v = np.frombuffer(a["v"], dtype=np.float64).reshape(-1, len(SIGNALS)).copy()
    order = [s.signal for s in m.signals]
    times = np.frombuffer(a["ts"], dtype=np.int64).copy()
    signals = {s.signal: converted(v[:, order.index(s.signal)], s.factor) for s in m.signals}
    phases, lines = a["phase"], a["line"]
    if m.sampling is not None:
        at = grid(int(times[0]), int(times[-1]))
        sampled = {
            s: resample(
                times,
                x,
                at,
                interpolation=m.sampling.interpolation,
                max_gap_s=m.sampling.max_gap_s,
            )
            for s, x in signals.items()
        }
        phases = labels_at(times, phases, at, m.sampling.max_gap_s)
        has = np.all([np.isfinite(x) for x in sampled.values()], axis=0)
        _note_resampled(notes, path, batch, times, at, has, m)
        times, signals = at[has], {s: x[has] for s, x in sampled.items()}
        phases = [p for p, h in zip(phases, has.tolist(), strict=True) if h]
        # the grid's lines: the file line of the scan each second is read from
        src = np.clip(np.searchsorted(np.asarray(a["ts"]), times, side="right") - 1, 0, None)
        lines = [a["line"][i] for i in src.tolist()]
    else:
        bad = ~np.all([np.isfinite(x) for x in signals.values()], axis=0)
        for i in np.flatnonzero(bad)[:3].tolist():
            problems.add(
                path,
                a["line"][i],
                None,
                "no value (a no_data text) in a file that is not resampled: set sampling",
            )
    b = BatchData(
        batch_id=batch,
        file=str(path),
        line=first_line,
        ts=times,
        phase_runs=_runs(phases, lines),
        signals=signals,
        phase_column=m.phase_column,
        deadbands=m.deadbands(None),
    )
    if m.sampling is None:
        _same_second(b, a["line"], problems)
    return b


def _second_pass(a: dict[str, list], first_pass: dict[int, int]) -> None:
    """Scans read in the first pass of a repeated local hour (no earlier scan said which)
    that are followed by a jump of that hour to the next scan belong to the second pass: a
    scan series is continuous, an hour missing exactly at the clock change is not."""
    if not first_pass:
        return
    ts, lines = a["ts"], a["line"]
    i = 0
    while i < len(ts):
        shift = first_pass.get(lines[i])
        if not shift:
            i += 1
            continue
        j = i
        while j + 1 < len(ts) and first_pass.get(lines[j + 1]) == shift:
            j += 1
        if j + 1 < len(ts) and ts[j + 1] - ts[j] > shift // 2 and ts[j] + shift < ts[j + 1]:
            for k in range(i, j + 1):
                ts[k] += shift
        i = j + 1


def _note_resampled(
    notes: Notes,
    path: Path | str,
    batch: str,
    ts: np.ndarray,
    at: np.ndarray,
    has: np.ndarray,
    m: Mapping,
) -> None:
    """What resampling a batch's scans onto whole seconds found: scans that were not one a
    second (extra, jittered or compressed) and seconds left without a value (gaps)."""
    assert m.sampling is not None
    sec = ts // NS
    extra = int(sec.size - np.unique(sec).size)
    notes.add(
        "scans_same_second",
        "scans in a second that already had one (resampled onto whole seconds)",
        extra,
        f"{path}: batch {batch}",
    )
    filled = int(at.size - np.isin(at // NS, sec).sum())
    notes.add(
        "seconds_interpolated",
        f"whole seconds without a scan of their own, given a value ({m.sampling.interpolation}, "
        f"at most {m.sampling.max_gap_s:g} s from one)",
        filled,
        f"{path}: batch {batch}",
    )
    note_gaps(notes, path, batch, at, has, m)


@dataclass
class UnitScans:
    """A unit's historian scans, aligned: every signal at every time; or, for an export
    that is resampled (mapping `sampling`), each signal's own irregular series."""

    ts: np.ndarray
    signals: dict[str, np.ndarray]
    file: str
    series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None


@dataclass
class _TagSeries:
    """A tag's scans in the file's order. Typed arrays, as read_wide keeps its rows: 24 bytes a
    historian row instead of ~110 in Python lists of ints and floats (a long export's rows
    are all held while they are cut into batches)."""

    ts: array = field(default_factory=lambda: array("q"))
    v: array = field(default_factory=lambda: array("d"))
    line: array = field(default_factory=lambda: array("q"))


def read_long(
    paths: list[Path], m: Mapping, problems: Problems, notes: Notes, clock: Clock | None = None
) -> dict[str, UnitScans]:
    """A historian export's scans per unit, each tag converted to its signal's unit."""
    assert m.tags is not None
    series: dict[str, _TagSeries] = {t: _TagSeries() for t in m.tags}
    files: dict[str, str] = {}
    for path in paths:
        _read_tag_rows(path, m, problems, notes, clock, series, files)
    out: dict[str, UnitScans] = {}
    for unit_id, by_signal in m.units_with_tags().items():
        tags = {s: series[src.tag or ""] for s, src in by_signal.items()}
        if not any(t.ts for t in tags.values()):
            continue
        file_of = {s: files.get(src.tag or "", str(paths[0])) for s, src in by_signal.items()}
        scans = (
            _sampled_unit(tags, by_signal, file_of, notes)
            if m.sampling is not None
            else _aligned_unit(unit_id, tags, by_signal, file_of, m, problems)
        )
        if scans is not None:
            out[unit_id] = scans
    return out


def _read_tag_rows(
    path: Path,
    m: Mapping,
    problems: Problems,
    notes: Notes,
    clock: Clock | None,
    series: dict[str, _TagSeries],
    files: dict[str, str],
) -> None:
    """One historian file's rows appended to their tags' `series` (and the tag's file to
    `files`); every bad row a problem naming its line."""
    assert m.tags is not None
    assert m.tag_column
    assert m.value_column
    required = [
        (m.time.column, "time.column"),
        (m.tag_column, "tag_column"),
        (m.value_column, "value_column"),
    ]
    got = header(path, problems, required, m.ignore_columns)
    if got is None:
        return
    it, index = got
    parse_time = TimeParser(m.time, clock)
    ti, gi, vi = index[m.time.column], index[m.tag_column], index[m.value_column]
    n = 0
    for line, cells in it:
        n += 1
        tag = cells[gi].strip()
        if tag not in m.tags:
            problems.add(
                path, line, m.tag_column, f"unknown tag {tag!r}: not in the mapping's tags"
            )
            continue
        try:
            ts = parse_time(cells[ti], line)
        except ValueError as e:
            problems.add(path, line, m.time.column, str(e))
            continue
        try:
            v = value(cells[vi], m.no_data)
        except ValueError:
            problems.add(path, line, m.value_column, f"{tag}: not a finite number: {cells[vi]!r}")
            continue
        s = series[tag]
        if s.ts and ts <= s.ts[-1]:
            what = "duplicate time: same as" if ts == s.ts[-1] else "time goes back: before"
            problems.add(path, line, m.time.column, f"{what} line {s.line[-1]} (tag {tag})")
            continue
        s.ts.append(ts)
        s.v.append(v)
        s.line.append(line)
        files[tag] = str(path)
    if n == 0:
        problems.add(path, None, None, "empty file: a header and no rows")
    parse_time.note(notes, path)


def _sampled_unit(
    tags: dict[str, _TagSeries],
    by_signal: dict[str, SignalSource],
    file_of: dict[str, str],
    notes: Notes,
) -> UnitScans:
    """A unit of a resampled export: each signal's own irregular series, converted (the
    batch check puts them on whole seconds)."""
    stored = sum(len(t.ts) for t in tags.values())
    notes.add("historian_values", "historian values read (resampled onto whole seconds)", stored)
    for src in by_signal.values():
        if src.deadband > 0:
            notes.add(
                "compressed_tags",
                "tags stored with a historian deadband (the analyses judge no finer: "
                "a level outside its range only within it, or a flatline, is not judged)",
                1,
                f"{src.tag}: {src.deadband / src.factor:g} {src.unit}",
            )
    return UnitScans(
        ts=np.zeros(0, dtype=np.int64),
        signals={},
        file=file_of["flow_lpm"],
        series={
            s: (
                np.asarray(t.ts, dtype=np.int64),
                converted(np.asarray(t.v, dtype=np.float64), by_signal[s].factor),
            )
            for s, t in tags.items()
        },
    )


def _aligned_unit(
    unit_id: str,
    tags: dict[str, _TagSeries],
    by_signal: dict[str, SignalSource],
    file_of: dict[str, str],
    m: Mapping,
    problems: Problems,
) -> UnitScans | None:
    """A unit of an export that is not resampled: every tag must have a value at each
    scan (None, and a problem naming the first line that lacks one, otherwise)."""
    nan = [s for s, t in tags.items() if np.isnan(np.asarray(t.v, dtype=np.float64)).any()]
    if nan:
        problems.add(
            file_of[nan[0]],
            None,
            m.value_column,
            f"unit {unit_id}: no-data values in an export that is not resampled: set sampling",
        )
        return None
    union = np.unique(np.concatenate([np.asarray(t.ts, dtype=np.int64) for t in tags.values()]))
    aligned = True
    for signal, t in tags.items():
        if len(t.ts) != union.size:
            missing = np.setdiff1d(union, np.asarray(t.ts, dtype=np.int64))
            other = next(o for o in tags.values() if int(missing[0]) in o.ts)
            line = other.line[other.ts.index(int(missing[0]))]
            problems.add(
                file_of[signal],
                line,
                m.value_column,
                f"unit {unit_id}: no {signal} value (tag {by_signal[signal].tag}) at this "
                f"line's time; {missing.size} such time(s): every tag of a unit needs a "
                f"value at each scan",
            )
            aligned = False
    if not aligned:
        return None
    return UnitScans(
        ts=union,
        signals={
            s: converted(np.asarray(t.v, dtype=np.float64), by_signal[s].factor)
            for s, t in tags.items()
        },
        file=file_of["flow_lpm"],
    )


def read_events(
    spec: FileSpec, m: Mapping, problems: Problems, clock: Clock | None = None
) -> dict[str, list[tuple[str, int, int, int]]]:
    """The batch record's phases: batch -> (phase, start, end, line), in the file's order."""
    got = mapped_header(spec, "events", m.ignore_columns, problems)
    if got is None:
        return {}
    it, ix, cols = got
    parse_time = TimeParser(m.time, clock)
    phases: dict[str, list[tuple[str, int, int, int]]] = {}
    for line, cells in it:
        batch, phase = cells[ix["batch_id"]].strip(), cells[ix["phase"]].strip()
        try:
            start, end = parse_times(parse_time, cells, ix, ("start", "end"), line)
        except ValueError as e:
            problems.add(spec.path, line, f"{cols['start']}/{cols['end']}", str(e))
            continue
        if end < start:
            problems.add(spec.path, line, cols["end"], "phase ends before it starts")
            continue
        phases.setdefault(batch, []).append((phase, start, end, line))
    if not phases and not problems:
        problems.add(spec.path, None, None, "empty file: a header and no rows")
    return phases


def _phase_runs(
    ts: np.ndarray,
    spans: list[tuple[str, int, int, int]],
    on_grid: bool,
    unit_id: str,
    batch: str,
    events: FileSpec,
    problems: Problems,
) -> list[tuple[str, int, int, int]]:
    """Each phase of the events file (name, start, end, line) as its first and last scan in
    `ts`. On a resampled (whole-second) grid a phase takes the second it starts in, unless
    the phase before ended within that same second: that second stays with it. A phase
    without scans, or starting before the one before it ends, is a problem."""
    runs: list[tuple[str, int, int, int]] = []
    last_end = 0  # the end stamp of the phase before, as the file gives it
    path = events.path
    for phase, start, end, line in spans:
        a = int(np.searchsorted(ts, start - start % NS if on_grid else start))
        if on_grid and runs and start > last_end:
            a = max(a, runs[-1][2] + 1)
        b = int(np.searchsorted(ts, end, "right")) - 1
        if b < a:
            problems.add(
                path,
                line,
                f"{events.col('start')}/{events.col('end')}",
                f"no scans of {unit_id} in phase {phase} of {batch}",
            )
            continue
        if runs and a <= runs[-1][2]:
            problems.add(
                path,
                line,
                events.col("start"),
                f"phase {phase} starts before the previous phase of {batch} ends",
            )
            continue
        runs.append((phase, a, b, line))
        last_end = end
    return runs


def split_long(
    scans: dict[str, UnitScans],
    events: FileSpec,
    m: Mapping,
    unit_of_batch: dict[str, str],
    problems: Problems,
    notes: Notes,
    clock: Clock | None = None,
) -> tuple[list[BatchData], int]:
    """Cut each unit's scans into batches and phases by the events file (batch_id, phase,
    start, end: inclusive). Scans between two phases of a batch for at most
    `unlabelled_max_s` belong to the phase before them (reported). Returns the batches and
    how many scans fell in no batch."""
    phases = read_events(events, m, problems, clock)
    path = events.path
    used = {u: np.zeros(d.ts.size, dtype=np.bool_) for u, d in scans.items()}
    out = []
    for batch, spans in phases.items():
        unit_id = unit_of_batch.get(batch)
        if unit_id is None:
            problems.add(
                path,
                spans[0][3],
                events.col("batch_id"),
                f"batch {batch!r} is not in the batches file",
            )
            continue
        d = scans.get(unit_id)
        if d is None:
            problems.add(
                path,
                spans[0][3],
                events.col("batch_id"),
                f"no scans of unit {unit_id} (batch {batch})",
            )
            continue
        ts, signals = d.ts, d.signals
        if d.series is not None:
            assert m.sampling is not None
            at = grid(min(sp[1] for sp in spans), max(sp[2] for sp in spans))
            sampled = {
                s: resample(
                    t,
                    v,
                    at,
                    interpolation=m.sampling.interpolation,
                    max_gap_s=m.sampling.max_gap_s,
                )
                for s, (t, v) in d.series.items()
            }
            has = np.all([np.isfinite(x) for x in sampled.values()], axis=0)
            note_gaps(notes, path, batch, at, has, m)
            ts, signals = at[has], {s: x[has] for s, x in sampled.items()}
        runs = _phase_runs(ts, spans, d.series is not None, unit_id, batch, events, problems)
        if not runs:
            continue
        # scans between one phase's end and the next one's start, when the gap is short
        # (labels set at the command), are the batch's unlabelled scans (the batch check
        # gives them to the phase before); a longer gap is not part of the batch
        joined: list[tuple[str, int, int, int]] = []
        for k, (p, a, b, line) in enumerate(runs):
            joined.append((p, a, b, line))
            nxt = runs[k + 1][1] if k + 1 < len(runs) else b + 1
            if nxt > b + 1 and (int(ts[nxt - 1]) - int(ts[b + 1])) / NS + 1 <= m.unlabelled_max_s:
                joined.append(("", b + 1, nxt - 1, line))
        idx = np.concatenate([np.arange(a, b + 1) for _, a, b, _ in joined])
        if d.series is None:
            used[unit_id][idx] = True
        rebased, pos = [], 0
        for p, a, b, line in joined:
            rebased.append((p, pos, pos + b - a, line))
            pos += b - a + 1
        out.append(
            BatchData(
                batch_id=batch,
                file=str(path),
                line=spans[0][3],
                ts=ts[idx],
                phase_runs=rebased,
                signals={s: signals[s][idx] for s in SIGNALS},
                phase_column=events.col("phase"),
                unit_id=unit_id,
                deadbands=m.deadbands(unit_id),
            )
        )
        _same_second(out[-1], None, problems)
    skipped = sum(int(u.size - np.count_nonzero(u)) for u in used.values())
    return out, skipped


def note_gaps(
    notes: Notes, path: Path | str, batch: str, at: np.ndarray, has: np.ndarray, m: Mapping
) -> None:
    """Seconds of the grid left without a value, as runs (a gap each)."""
    assert m.sampling is not None
    firsts, lasts = true_runs(~has)
    if firsts.size:
        notes.add(
            "gaps",
            f"gaps: seconds with no value within {m.sampling.max_gap_s:g} s (or after a no_data "
            f"marker), left without a scan",
            int(firsts.size),
            f"{path}: batch {batch}, {lasts[0] - firsts[0] + 1} s from second "
            f"{int(at[firsts[0]]) // NS}",
        )
