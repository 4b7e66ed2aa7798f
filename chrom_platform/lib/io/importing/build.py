"""`chrom import`: a plant's CSV files to the landing zone, validated first, all or nothing.

The batches land exactly as the simulator's and the streaming consumer's do (the same
readings table, event builder, object names), so the warehouse cannot tell an imported batch
from a streamed one, and importing the same files again writes the same objects.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.core.contracts import (
    EVENTS_PREFIX,
    MAX_CLOCK_AHEAD_S,
    SAMPLE_SCHEMA,
    events_key,
    identity_ok,
    import_report_key,
    iso_to_ns,
    revised,
    revision_of,
    samples_key,
    ts_to_iso,
)
from chrom_platform.lib.core.events import PhaseSpan, batch_events
from chrom_platform.lib.core.master_data import MasterData, Recipe, Unit, content_hash
from chrom_platform.lib.core.runs import true_runs
from chrom_platform.lib.core.units import concentration_factor
from chrom_platform.lib.io.importing.mapping import FileSpec, Mapping
from chrom_platform.lib.io.importing.readers import (
    NS,
    BatchData,
    Clock,
    Problems,
    TimeParser,
    mapped_header,
    number,
    parse_times,
    read_long,
    read_wide,
    split_long,
)
from chrom_platform.lib.io.importing.sampling import Notes
from chrom_platform.lib.io.landing import (
    StagedLanding,
    finish_staged,
    json_bytes,
    land_master_data,
    parquet_bytes,
    readings_objects,
    readings_table,
)
from chrom_platform.lib.io.objectstore import ObjectStore


@dataclass(frozen=True)
class BatchRecord:
    """A row of the batches file: the batch record an MES keeps."""

    batch_id: str
    unit_id: str
    recipe: str
    column_cycle: int | None
    planned_load_cv: float | None
    line: int


@dataclass
class ImportReport:
    files: int = 0
    batches: int = 0
    units: int = 0
    readings: int = 0
    lab_results: int = 0
    holds: int = 0
    #: long shape: historian scans outside every batch's phases (idle time), not landed
    scans_outside_batches: int = 0
    objects: list[str] = field(default_factory=list)
    #: batches that superseded a landed revision (`--replace`)
    replaced: list[str] = field(default_factory=list)
    #: objects an earlier, interrupted import had committed and this one published first
    completed_interrupted: int = 0
    #: what the import inferred, or read and did not use, counted with examples
    notes: Notes = field(default_factory=Notes)

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "batches": self.batches,
            "units": self.units,
            "readings": self.readings,
            "holds": self.holds,
            "lab_results": self.lab_results,
            "scans_outside_batches": self.scans_outside_batches,
            "objects_written": len(self.objects),
            "replaced": self.replaced,
            "completed_interrupted": self.completed_interrupted,
            "inferred": self.notes.record(),
        }


def _batches(
    spec: FileSpec, md: MasterData, m: Mapping, problems: Problems
) -> dict[str, BatchRecord]:
    path = spec.path
    got = mapped_header(spec, "batches", m.ignore_columns, problems)
    if got is None:
        return {}
    it, ix, _cols = got
    out: dict[str, BatchRecord] = {}
    for line, cells in it:
        b, u, r = (cells[ix[c]].strip() for c in ("batch_id", "unit_id", "recipe"))
        bad = False
        for col, v in (("batch_id", b), ("unit_id", u), ("recipe", r)):
            if not identity_ok(v):
                problems.add(
                    path,
                    line,
                    col,
                    f"{v!r} is not a valid id (letters, digits, space, _ - . : + ( ))",
                )
                bad = True
        if bad:
            continue
        if u not in md.units:
            problems.add(
                path, line, "unit_id", f"unknown unit {u!r}; equipment has {sorted(md.units)}"
            )
            continue
        if r not in md.recipes:
            problems.add(
                path, line, "recipe", f"unknown recipe {r!r}; recipes has {sorted(md.recipes)}"
            )
            continue
        if b in out:
            problems.add(path, line, "batch_id", f"batch {b!r} twice (also line {out[b].line})")
            continue
        cycle = cv = None
        try:
            if "column_cycle" in ix and cells[ix["column_cycle"]].strip():
                cycle = int(cells[ix["column_cycle"]])
                if cycle < 0:
                    raise ValueError
        except ValueError:
            problems.add(
                path,
                line,
                "column_cycle",
                f"expected a whole number >= 0, got {cells[ix['column_cycle']]!r}",
            )
            continue
        try:
            if "planned_load_cv" in ix and cells[ix["planned_load_cv"]].strip():
                cv = number(cells[ix["planned_load_cv"]])
                if cv <= 0:
                    raise ValueError
        except ValueError:
            problems.add(
                path,
                line,
                "planned_load_cv",
                f"expected a number > 0, got {cells[ix['planned_load_cv']]!r}",
            )
            continue
        out[b] = BatchRecord(b, u, r, cycle, cv, line)
    return out


def _lab_results(
    spec: FileSpec,
    m: Mapping,
    records: dict[str, BatchRecord],
    problems: Problems,
    notes: Notes,
    clock: Clock,
) -> list[dict[str, Any]]:
    """Reportable lab results as chrom.sample.v1 documents (one successful analysis each),
    their sample types mapped to the roles the warehouse reads; types the platform does not
    use are counted in the report, never landed as if they were."""
    path = spec.path
    got = mapped_header(spec, "lab_results", m.ignore_columns, problems)
    if got is None:
        return []
    it, ix, cols = got
    parse_time = TimeParser(m.time, clock)
    docs: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells in it:
        batch, kind = cells[ix["batch_id"]].strip(), cells[ix["sample_point"]].strip()
        point = _sample_point(spec, kind, line, cols, problems, notes)
        if point is None:
            continue
        rec = records.get(batch)
        if rec is None:
            problems.add(
                path, line, cols["batch_id"], f"batch {batch!r} is not in the batches file"
            )
            continue
        if not identity_ok(point):
            problems.add(path, line, cols["sample_point"], f"{point!r} is not a valid sample point")
            continue
        if point not in ("feed", "pool"):
            notes.add(
                "lab_results_other_points",
                "lab results at sample points the warehouse does not read (only feed, pool)",
                example=f"{path}:{line} {point}",
            )
        if (batch, point) in seen:
            problems.add(
                path,
                line,
                cols["sample_point"],
                f"a second {point} result for {batch} (line {seen[(batch, point)]})",
            )
            continue
        values = _lab_values(path, line, cells, ix, cols, parse_time, problems)
        if values is None:
            continue
        seen[(batch, point)] = line
        docs.append(_sample_doc(rec, point, cells, ix, *values))
    return docs


def _sample_point(
    spec: FileSpec,
    kind: str,
    line: int,
    cols: dict[str, str],
    problems: Problems,
    notes: Notes,
) -> str | None:
    """The sample point a row's sample type stands for (its role in `sample_types`, or the
    type itself without them); None for a type the platform does not use (counted) or does
    not know (a problem)."""
    if spec.sample_types is None:
        return kind
    if kind not in spec.sample_types:
        problems.add(
            spec.path,
            line,
            cols["sample_point"],
            f"sample type {kind!r} is not in lab_results.sample_types "
            f"{sorted(spec.sample_types)}: give it a role (feed, pool) or null",
        )
        return None
    role = spec.sample_types[kind]
    if role is None:
        notes.add(
            "lab_results_unused",
            "lab results of sample types the platform does not use (sample_types: null)",
            example=f"{spec.path}:{line} {kind}",
        )
    return role


def _lab_values(
    path: Path,
    line: int,
    cells: list[str],
    ix: dict[str, int],
    cols: dict[str, str],
    parse_time: TimeParser,
    problems: Problems,
) -> tuple[float, int, int] | None:
    """A row's concentration in g/L and its sampled and analysed times (ns), or None and
    a problem naming the column."""
    try:
        f = concentration_factor(cells[ix["unit"]])
    except ValueError as e:
        problems.add(path, line, cols["unit"], str(e))
        return None
    try:
        result = number(cells[ix["result"]]) * f
        if result < 0:
            raise ValueError
    except ValueError:
        problems.add(
            path,
            line,
            cols["result"],
            f"expected a concentration >= 0, got {cells[ix['result']]!r}",
        )
        return None
    try:
        sampled, analyzed = parse_times(parse_time, cells, ix, ("sampled_at", "analyzed_at"), line)
    except ValueError as e:
        problems.add(path, line, f"{cols['sampled_at']}/{cols['analyzed_at']}", str(e))
        return None
    return result, sampled, analyzed


def _sample_doc(
    rec: BatchRecord,
    point: str,
    cells: list[str],
    ix: dict[str, int],
    result: float,
    sampled: int,
    analyzed: int,
) -> dict[str, Any]:
    """One successful analysis as a chrom.sample.v1 document."""
    return {
        "schema": SAMPLE_SCHEMA,
        "sample_id": f"{rec.batch_id}-{point.upper()}",
        "attempt": 1,
        "retest_of": None,
        "unit_id": rec.unit_id,
        "batch_id": rec.batch_id,
        "recipe": rec.recipe,
        "sample_point": point,
        "analyte": cells[ix["analyte"]].strip() if "analyte" in ix else None,
        "method": cells[ix["method"]].strip() if "method" in ix else None,
        "sampled_at": ts_to_iso(sampled),
        "analyzed_at": ts_to_iso(analyzed),
        "status": "ok",
        "failure_reason": None,
        "scan": {"result": result, "unit": "g/L"},
    }


@dataclass(frozen=True)
class Hold:
    first: int
    last: int
    #: isolated scans above the dead band inside it, taken for meter noise
    noise_scans: int


def find_hold(
    flow: np.ndarray, ts: np.ndarray, deadband: float, min_s: float, spike_s: float
) -> Hold | None:
    """The last hold of a phase: flow below the unit's dead band for at least `min_s`, after
    the phase pumped. A flow meter at zero reads noise, and a single scan can cross any dead
    band: runs above it lasting at most `spike_s`, with flow below it on both sides, are
    noise inside the hold, not pumping (a time hysteresis)."""
    below = flow < deadband
    for a, z in zip(*true_runs(~below), strict=True):
        if a > 0 and z < flow.size - 1 and (int(ts[z]) - int(ts[a])) / NS + 1 <= spike_s:
            below[a : z + 1] = True
    found = None
    for a, z in zip(*true_runs(below), strict=True):
        if a > 0 and (int(ts[z]) - int(ts[a])) / NS + 1 >= min_s:
            found = (int(a), int(z))
    if found is None:
        return None
    a, z = found
    # every scan at or above the band inside the hold is one the hysteresis let in
    return Hold(a, z, int(np.count_nonzero(flow[a : z + 1] >= deadband)))


def _place_unlabelled(
    b: BatchData, m: Mapping, problems: Problems, notes: Notes
) -> list[tuple[str, int, int, int]]:
    """The phase runs with scans that carry no label given to a phase: between two labels
    (at most `unlabelled_max_s`) to the phase before them, before the first label to the
    first phase; the same phase either side of them is one run."""
    runs = list(b.phase_runs)
    out: list[tuple[str, int, int, int]] = []
    for k, (name, a, z, line) in enumerate(runs):
        if name:
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1], z, out[-1][3])
            else:
                out.append((name, a, z, line))
            continue
        secs = (int(b.ts[z]) - int(b.ts[a])) / NS + 1
        if not out:
            nxt = next((r for r in runs[k + 1 :] if r[0]), None)
            if nxt is None:
                problems.add(b.file, line, b.phase_column, f"batch {b.batch_id}: no phase label")
                return []
            notes.add(
                "unlabelled_before_first",
                "scans before a batch's first phase label, given to its first phase",
                z - a + 1,
                f"{b.file}:{line} batch {b.batch_id}",
            )
            runs[k + 1] = (runs[k + 1][0], a, runs[k + 1][2], runs[k + 1][3])
            continue
        if secs > m.unlabelled_max_s:
            problems.add(
                b.file,
                line,
                b.phase_column,
                f"batch {b.batch_id}: {secs:.0f} s of scans without a phase after "
                f"{out[-1][0]!r} (more than unlabelled_max_s {m.unlabelled_max_s:g})",
            )
            continue
        notes.add(
            "unlabelled_scans",
            f"scans between two phases (at most {m.unlabelled_max_s:g} s), given to the phase "
            "before them",
            z - a + 1,
            f"{b.file}:{line} batch {b.batch_id}, after {out[-1][0]}",
        )
        out[-1] = (out[-1][0], out[-1][1], z, out[-1][3])
    return out


def _holds(
    b: BatchData, runs: list[tuple[str, int, int, int]], unit: Unit, m: Mapping, notes: Notes
) -> tuple[list[tuple[str, int, int, int]], list[Hold | None]]:
    """Each phase's hold, in order, by the batch's scan index (so a phase start moved later
    leaves it where it is); pumping after a phase's hold under its label (at most
    `label_lag_max_s`) is the next phase's start, labelled at the operator's command: moved
    to it, so the hold ends its phase and the next phase's pump ramp is its own."""
    runs = list(runs)
    flow = b.signals["flow_lpm"]
    holds: list[Hold | None] = []
    for k in range(len(runs)):
        name, a, z, line = runs[k]
        h = find_hold(
            flow[a : z + 1], b.ts[a : z + 1], unit.flow_deadband_lpm, m.hold_min_s, m.hold_spike_s
        )
        if h is not None:
            h = dataclasses.replace(h, first=a + h.first, last=a + h.last)
            notes.add(
                "holds",
                f"holds: flow below the unit's dead band for at least {m.hold_min_s:g} s",
                example=f"batch {b.batch_id} {name}",
            )
            notes.add(
                "hold_noise_scans",
                f"scans above the dead band inside a hold (at most {m.hold_spike_s:g} s in a row), "
                "taken for flow-meter noise",
                h.noise_scans,
                f"batch {b.batch_id} {name}",
            )
            last = h.last
            after = (int(b.ts[z]) - int(b.ts[last + 1])) / NS + 1 if last < z else 0.0
            if last < z and k + 1 < len(runs) and after <= m.label_lag_max_s:
                notes.add(
                    "scans_to_next_phase",
                    f"pumping after a hold under the same label (at most {m.label_lag_max_s:g} s), "
                    "given to the next phase (labels set at the operator's command)",
                    z - last,
                    f"batch {b.batch_id}: {z - last} s of {name} to {runs[k + 1][0]}",
                )
                runs[k] = (name, a, last, line)
                runs[k + 1] = (runs[k + 1][0], last + 1, runs[k + 1][2], runs[k + 1][3])
            elif last < z:
                notes.add(
                    "holds_inside_phase",
                    "holds inside a phase (pumping resumed under its label)",
                    example=f"batch {b.batch_id} {name}",
                )
        holds.append(h)
    return runs, holds


def _pump_moves(
    b: BatchData,
    runs: list[tuple[str, int, int, int]],
    holds: list[Hold | None],
    recipe: Recipe,
    unit: Unit,
    m: Mapping,
    notes: Notes,
) -> list[tuple[str, int, int, int]]:
    """Where two phases pump at set points the recipe tells apart (their flow tolerance
    bands do not overlap), the scans at the end of a phase after its flow has left its own
    band, and ending in the next phase's, are the next phase's pump under a label changed
    later at the operator's command (at most `label_lag_max_s`): moved to it, as pumping
    after a hold is. A phase that ends in a hold is left to `_holds`; a recipe without a
    flow tolerance gives no band to tell the phases apart, and nothing is moved."""
    tol = recipe.flow_tolerance
    if tol is None:
        return runs
    runs = list(runs)
    flow = b.signals["flow_lpm"]
    by_name = {p.name: p for p in recipe.phases}
    for k in range(len(runs) - 1):
        (name, a, z, line), nxt = runs[k], runs[k + 1]
        if holds[k] is not None or nxt[1] != z + 1:
            continue
        sp, sp_next = (unit.flow_lpm(by_name[n].velocity_cm_h) for n in (name, nxt[0]))
        if abs(sp - sp_next) <= tol * (sp + sp_next):
            continue  # the bands overlap: the flow cannot say where one phase ends
        own = np.abs(flow[a : z + 1] - sp) <= tol * sp
        if not own.any() or own[-1]:
            continue
        first = a + int(np.flatnonzero(own)[-1]) + 1  # the first scan after its own band
        lag = (int(b.ts[z]) - int(b.ts[first])) / NS + 1
        if lag > m.label_lag_max_s or abs(flow[z] - sp_next) > tol * sp_next:
            continue
        notes.add(
            "flow_to_next_phase",
            f"scans at the end of a phase pumping at the next phase's set point (at most "
            f"{m.label_lag_max_s:g} s), given to the next phase (labels set at the "
            "operator's command)",
            z - first + 1,
            f"batch {b.batch_id}: {z - first + 1} s of {name} to {nxt[0]}",
        )
        runs[k] = (name, a, first - 1, line)
        runs[k + 1] = (nxt[0], first, nxt[2], nxt[3])
    return runs


@dataclass
class _Checked:
    data: BatchData
    record: BatchRecord
    recipe: Recipe
    unit: Unit
    phase_idx: np.ndarray
    spans: list[PhaseSpan]


def _check_batch(
    b: BatchData,
    rec: BatchRecord | None,
    md: MasterData,
    m: Mapping,
    feed: dict[str, float],
    problems: Problems,
    notes: Notes,
) -> _Checked | None:
    if rec is None:
        problems.add(
            b.file,
            b.line,
            m.batch_column or "batch_id",
            f"batch {b.batch_id!r} is not in the batches file",
        )
        return None
    if b.unit_id is not None and b.unit_id != rec.unit_id:
        problems.add(
            b.file,
            b.line,
            "batch_id",
            f"batch {b.batch_id}'s tags are unit {b.unit_id}, the batches file says {rec.unit_id}",
        )
        return None
    recipe, unit = md.recipes[rec.recipe], md.units[rec.unit_id]
    names = list(recipe.phase_names())
    runs = _place_unlabelled(b, m, problems, notes)
    ok = bool(runs)
    last = -1
    for name, _a, _z, line in runs:
        if name not in names:
            problems.add(
                b.file,
                line,
                b.phase_column,
                f"phase {name!r} is not a phase of recipe {rec.recipe}: {names}",
            )
            ok = False
            continue
        k = names.index(name)
        if k <= last:
            why = (
                f"phase {name!r} again after another phase (a phase's scans are one run)"
                if k == last
                else f"phase {name!r} out of recipe order (after {names[last]!r})"
            )
            problems.add(
                b.file,
                line,
                b.phase_column,
                f"{why} in batch {b.batch_id}; recipe {rec.recipe}: {names}",
            )
            ok = False
            continue
        last = k
    idx = np.empty(b.ts.size, dtype=np.int32)
    spans: list[PhaseSpan] = []
    if ok:
        runs, holds = _holds(b, runs, unit, m, notes)
        runs = _pump_moves(b, runs, holds, recipe, unit, m, notes)
        for (name, a, z, _line), hold in zip(runs, holds, strict=True):
            k = names.index(name)
            idx[a : z + 1] = k
            ph = recipe.phases[k]
            planned = (
                ph.cv if ph.cv is not None else _planned_load_cv(rec, recipe, feed.get(b.batch_id))
            )
            spans.append(
                PhaseSpan(
                    name=name,
                    start_ns=int(b.ts[a]),
                    end_ns=int(b.ts[z]),
                    hold=None if hold is None else (int(b.ts[hold.first]), int(b.ts[hold.last])),
                    details={
                        **({"planned_cv": round(planned, 4)} if planned is not None else {}),
                        "velocity_cm_h": ph.velocity_cm_h,
                        "buffer": ph.buffer,
                    },
                )
            )
    if not identity_ok(b.batch_id):
        problems.add(b.file, b.line, m.batch_column, f"{b.batch_id!r} is not a valid batch id")
        ok = False
    return _Checked(b, rec, recipe, unit, idx, spans) if ok else None


def _planned_load_cv(rec: BatchRecord, recipe: Recipe, feed_titer: float | None) -> float | None:
    """The batch record's planned load volume, else the recipe's target loading over the
    feed titer the lab reported (what the load was planned from)."""
    if rec.planned_load_cv is not None:
        return rec.planned_load_cv
    return recipe.target_loading_g_l / feed_titer if feed_titer else None


def _landed_batches(
    store: ObjectStore, unit_id: str, landed: dict[str, _Landed]
) -> dict[str, tuple[int, int]]:
    """Batches already in the landing zone on a unit, at their latest revision: id ->
    (first, last) event time."""
    out: dict[str, tuple[int, int]] = {}
    for was in landed.values():
        if was.unit_id != unit_id:
            continue
        for raw in store.get(was.key).splitlines():
            try:
                e = json.loads(raw)
                t = iso_to_ns(e["ts"])
                b = str(e["batch_id"])
            except (ValueError, KeyError, TypeError):
                continue  # the warehouse rejects it with its reason; no interval to guard
            lo, hi = out.get(b, (t, t))
            out[b] = (min(lo, t), max(hi, t))
    return out


def _overlaps(
    ready: list[_Ready], store: ObjectStore, landed: dict[str, _Landed], problems: Problems
) -> None:
    by_unit: dict[str, list[tuple[int, int, str, str, int | None]]] = {}
    for r in ready:
        by_unit.setdefault(r.unit_id, []).append(
            (r.first_ns, r.last_ns, r.batch_id, r.file, r.line)
        )
    for unit_id, spans in by_unit.items():
        ours = {s[2] for s in spans}
        for b, (lo, hi) in _landed_batches(store, unit_id, landed).items():
            if b not in ours:  # the same batch again is a re-import, not an overlap
                spans.append((lo, hi, b, "the landing zone", None))
        spans.sort()
        for prev, cur in itertools.pairwise(spans):
            if cur[0] <= prev[1]:
                new, old = (cur, prev) if cur[3] != "the landing zone" else (prev, cur)
                problems.add(
                    new[3],
                    new[4],
                    None,
                    f"batch {new[2]} overlaps batch {old[2]} on unit {unit_id} "
                    f"({ts_to_iso(old[0])} to {ts_to_iso(old[1])}, from {old[3]})",
                )


@dataclass
class _Ready:
    """A checked batch in the form it lands in (Parquet and JSON bytes, first revision's
    names), and what the checks across batches need. Its arrays are dropped once this is
    built: bytes are a tenth of their memory, so an import holds a whole plant export."""

    batch_id: str
    unit_id: str
    first_ns: int
    last_ns: int
    file: str
    line: int | None
    readings: list[tuple[str, bytes]]
    events: tuple[str, bytes]
    n_readings: int
    holds: int

    def objects(self, revision: int) -> list[tuple[str, bytes]]:
        """(key, bytes) of every object, named for `revision`."""
        return [(revised(k, revision), b) for k, b in [*self.readings, self.events]]


def _ready(c: _Checked, feed: dict[str, float]) -> _Ready:
    """What a checked batch lands as: its readings objects and its events object."""
    b, rec = c.data, c.record
    table = readings_table(
        unit_id=rec.unit_id,
        batch_id=b.batch_id,
        recipe=rec.recipe,
        phase_names=list(c.recipe.phase_names()),
        phase_idx=c.phase_idx,
        ts_ns=b.ts,
        signals=b.signals,
    )
    feed_titer = feed.get(b.batch_id)
    load_cv = _planned_load_cv(rec, c.recipe, feed_titer)
    events = batch_events(
        unit_id=rec.unit_id,
        batch_id=b.batch_id,
        recipe=rec.recipe,
        phases=c.spans,
        start_details={
            "column_id": c.unit.column_id,
            **({"column_cycle": rec.column_cycle} if rec.column_cycle is not None else {}),
            **({"feed_titer_g_l": round(feed_titer, 4)} if feed_titer is not None else {}),
            **({"planned_load_cv": round(load_cv, 4)} if load_cv is not None else {}),
            # how finely the record resolves each compressed signal: the analyses judge by it
            **({"record_deadbands": b.deadbands} if b.deadbands else {}),
        },
    )
    return _Ready(
        batch_id=b.batch_id,
        unit_id=rec.unit_id,
        first_ns=int(b.ts[0]),
        last_ns=int(b.ts[-1]),
        file=b.file,
        line=b.line,
        readings=[(k, parquet_bytes(part)) for k, part in readings_objects(table)],
        events=(
            events_key(rec.unit_id, b.batch_id, int(b.ts[0]), "events"),
            b"".join(json_bytes(e) for e in events),
        ),
        n_readings=int(b.ts.size),
        holds=sum(1 for s in c.spans if s.hold is not None),
    )


def _sample_object(doc: dict[str, Any], revision: int) -> tuple[str, bytes]:
    key = samples_key(
        doc["unit_id"], doc["sample_id"], doc["attempt"], iso_to_ns(doc["analyzed_at"])
    )
    return revised(key, revision), json_bytes(doc)


_EVENTS_OBJECT = re.compile(
    rf"^{re.escape(EVENTS_PREFIX)}/unit_id=(?P<unit>[^/]+)/date=[^/]+/"
    r"(?P<batch>.+)-events(?:-r[0-9]+)?\.json$"
)


@dataclass(frozen=True)
class _Landed:
    unit_id: str
    key: str
    revision: int


def _landed_revisions(store: ObjectStore) -> dict[str, _Landed]:
    """Batches in the landing zone by id, at their latest revision (from object names:
    listing, no reads, so the cost does not grow with what the objects hold)."""
    out: dict[str, _Landed] = {}
    for info in store.list(f"{EVENTS_PREFIX}/"):
        m = _EVENTS_OBJECT.match(info.key)
        if m is None:
            continue
        got = _Landed(m["unit"], info.key, revision_of(info.key))
        if m["batch"] not in out or got.revision > out[m["batch"]].revision:
            out[m["batch"]] = got
    return out


def _same_as_landed(
    r: _Ready, labs: list[dict[str, Any]], store: ObjectStore, rev: int
) -> str | None:
    """None if landing this batch at revision `rev` would write what is there already (a
    retried import; objects a killed import did not write yet are not a difference), else
    the first object that differs. Readings compare as tables, not bytes (a newer Parquet
    writer may encode the same values differently)."""
    objs = r.objects(rev)
    key, events = objs[-1]
    if not store.exists(key) or store.get(key) != events:
        return key
    for key, data in objs[:-1]:
        if store.exists(key) and not _table(store.get(key)).equals(_table(data)):
            return key
    for doc in labs:
        if doc["batch_id"] == r.batch_id:
            key, body = _sample_object(doc, rev)
            if store.exists(key) and store.get(key) != body:
                return key
    return None


def _table(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def _revisions(
    ready: list[_Ready],
    labs: list[dict[str, Any]],
    store: ObjectStore,
    landed: dict[str, _Landed],
    replace: bool,
    problems: Problems,
) -> dict[str, int]:
    """The revision each batch lands at: 1 if new, the landed one if the content is the
    same, the next one if it differs and `replace` is given; otherwise a problem naming the
    landed object, so a different batch reusing an id never mixes with the landed one."""
    out: dict[str, int] = {}
    for r in ready:
        was = landed.get(r.batch_id)
        if was is None:
            continue
        same_unit = was.unit_id == r.unit_id
        differs = _same_as_landed(r, labs, store, was.revision) if same_unit else was.key
        if differs is None:
            out[r.batch_id] = was.revision
        elif replace:
            out[r.batch_id] = was.revision + 1
        else:
            where = "" if same_unit else f" on unit {was.unit_id}, not {r.unit_id}"
            problems.add(
                r.file,
                r.line,
                None,
                f"batch {r.batch_id} is already landed{where} with other content "
                f"({differs}): if these files correct it, import them with --replace (the "
                "landed batch is superseded, not deleted); if it is another batch, it needs "
                "its own id",
            )
    return out


def import_files(
    files: Sequence[Path],
    *,
    mapping: Mapping,
    md: MasterData,
    store: ObjectStore,
    on_file: Callable[[int, int, Path], None] | None = None,
    replace: bool = False,
    max_ahead_s: float = MAX_CLOCK_AHEAD_S,
) -> ImportReport:
    """Read and validate every file, then land everything, or raise `ImportRejected`
    listing every problem (file, line, column) with nothing landed. `replace`: batches
    already landed with other content are corrections, landed as their next revision."""
    problems = Problems()
    report = ImportReport(files=len(files))
    if not files:
        problems.add("(command line)", None, None, "no data files given")
        problems.raise_if_any()
    notes = report.notes
    clock = Clock.now(max_ahead_s)  # one reading of the clock for the whole import
    records = _batches(mapping.batches, md, mapping, problems)
    labs = (
        _lab_results(mapping.lab_results, mapping, records, problems, notes, clock)
        if mapping.lab_results
        else []
    )
    feed = {d["batch_id"]: d["scan"]["result"] for d in labs if d["sample_point"] == "feed"}

    def check(data: list[BatchData]) -> Iterator[_Ready]:
        for b in data:
            c = _check_batch(b, records.get(b.batch_id), md, mapping, feed, problems, notes)
            if c is not None:
                yield _ready(c, feed)

    ready: list[_Ready] = []
    if mapping.shape == "wide":
        # batch by batch: a batch's arrays are checked and turned into bytes before the
        # next batch's are made, so memory follows the landed size of the export and one
        # file's rows, not every batch's arrays
        seen: dict[str, str] = {}
        for i, f in enumerate(files, start=1):
            for b in read_wide(f, mapping, problems, notes, clock):
                if b.batch_id in seen:
                    problems.add(
                        f,
                        b.line,
                        mapping.batch_column,
                        f"batch {b.batch_id} is also in {seen[b.batch_id]}",
                    )
                    continue
                seen[b.batch_id] = str(f)
                ready.extend(check([b]))
            if on_file:
                on_file(i, len(files), f)
    else:
        scans = read_long(list(files), mapping, problems, notes, clock)
        if on_file:
            on_file(len(files), len(files), files[-1])
        assert mapping.events is not None
        unit_of = {b: r.unit_id for b, r in records.items()}
        data, report.scans_outside_batches = split_long(
            scans, mapping.events, mapping, unit_of, problems, notes, clock
        )
        del scans
        ready.extend(check(data))
        del data
    # an import killed after its commit is finished first, so the landing it compares with
    # is whole (and a re-run of that very import is then a no-op)
    report.completed_interrupted = len(finish_staged(store))
    landed = _landed_revisions(store)
    _overlaps(ready, store, landed, problems)
    if not ready and not problems:
        problems.add(str(files[0]), None, None, "no scans in the files")
    problems.raise_if_any()

    # Batches already landed: the same content again is a no-op (a retried import); other
    # content is a correction that needs --replace, and lands as the batch's next revision.
    revision = _revisions(ready, labs, store, landed, replace, problems)
    problems.raise_if_any()

    _land(StagedLanding(store), md, ready, labs, revision, report, files)
    return report


def _land(
    staged: StagedLanding,
    md: MasterData,
    ready: list[_Ready],
    labs: list[dict[str, Any]],
    revision: dict[str, int],
    report: ImportReport,
    files: Sequence[Path],
) -> None:
    """Everything valid, landed all or nothing (a build between, or a kill, never sees
    part of an import): master data first, so the warehouse can parse the rest; each batch
    in its revision; the lab results; the report last."""
    report.objects += land_master_data(staged, md)
    for r in sorted(ready, key=lambda r: (r.unit_id, r.first_ns)):
        rev = revision.get(r.batch_id, 1)
        for key, body in r.objects(rev):
            staged.put(key, body)
            report.objects.append(key)
        report.readings += r.n_readings
        report.holds += r.holds
        if rev > 1:
            report.replaced.append(f"{r.batch_id} (revision {rev})")
    for doc in labs:
        key, body = _sample_object(doc, revision.get(doc["batch_id"], 1))
        staged.put(key, body)
        report.objects.append(key)
    report.batches = len(ready)
    report.units = len({r.unit_id for r in ready})
    report.lab_results = len(labs)
    report.objects.append(_land_report(staged, report, files))
    staged.commit()


def _land_report(store: StagedLanding, report: ImportReport, files: Sequence[Path]) -> str:
    """The report kept with what it describes, last (an import that fails lands none): the
    files and what was found, counted with examples. The landing sensor shows the newest in
    the Dagster UI. Keyed by its content, so importing the same files again adds nothing."""
    record = {
        "file_names": sorted(f.name for f in files),
        **{
            k: v
            for k, v in report.summary().items()
            if k not in ("objects_written", "replaced", "completed_interrupted")
        },
    }
    key = import_report_key(content_hash(record))
    if not store.exists(key):
        store.put(key, json_bytes(record))
    return key
