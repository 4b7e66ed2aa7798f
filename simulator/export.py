"""`chrom-sim export-csv`: a simulated history as a plant would export it, for `chrom import`.

Two shapes, each with the files a plant keeps beside its readings (the batch list from the
MES, lab results from the LIMS) and the mapping file that tells `chrom import` what is what.
Both shapes differ from the landing contracts on purpose, as a plant's files do: other column
names, engineering units (mL/min, psi, AU, uS/cm in wide; L/h, MPa in long), local times.

  wide:  readings/<batch>.csv   Timestamp (local, no offset), Batch, Step, a column per signal
  long:  historian.csv          timestamp (with offset), tag, value: one row per tag and scan
         phases.csv             batch_id, phase, start, end
  both:  batches.csv, lab_results.csv, mapping.yaml
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from chrom_platform.lib.core.contracts import SIGNALS, iso_to_ns
from chrom_platform.lib.core.units import UNIT_FACTORS
from simulator.batch import SimBatch
from simulator.realism import NO_DATA, PlantRealism, compress, meter_range_lpm, plant_scans
from simulator.samples import sample_results

SHAPES = ("wide", "long")
#: A plant with no daylight saving (naive local times are unambiguous all year round).
WIDE_ZONE = "Asia/Kolkata"
WIDE_TIME_FORMAT = "%d.%m.%Y %H:%M:%S.%f"
#: A plant whose historian writes offsets (daylight saving changes them: still unambiguous).
LONG_ZONE = "America/New_York"
WIDE_COLUMNS: dict[str, tuple[str, str]] = {
    "flow_lpm": ("Flow [mL/min]", "mL/min"),
    "pressure_bar": ("Pressure [psi]", "psi"),
    "uv_mau": ("UV 280nm [AU]", "AU"),
    "cond_ms_cm": ("Conductivity [uS/cm]", "uS/cm"),
    "ph": ("pH", "pH"),
}
LONG_TAGS: dict[str, tuple[str, str]] = {
    "flow_lpm": ("FIT-101.PV", "L/h"),
    "pressure_bar": ("PT-101.PV", "MPa"),
    "uv_mau": ("AT-201.UV280", "mAU"),
    "cond_ms_cm": ("AT-202.COND", "mS/cm"),
    "ph": ("AT-203.PH", "pH"),
}
LAB_UNIT = "mg/mL"


def _times(ts_ns: np.ndarray, zone: ZoneInfo, fmt: str | None) -> list[str]:
    """Local times at ms resolution: naive in `fmt` (wide) or ISO with the offset (long).
    Vectorized: the zone's offset is looked up once per quarter hour (zones change offset on
    quarter hours), not per scan."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    quarters, inverse = np.unique(ts // (900 * 1_000_000_000), return_inverse=True)
    offsets = [
        dt.datetime.fromtimestamp(int(q) * 900, tz=zone).utcoffset() or dt.timedelta(0)
        for q in quarters.tolist()
    ]
    off_ns = np.array([int(o.total_seconds()) * 1_000_000_000 for o in offsets], dtype=np.int64)
    local = (ts + off_ns[inverse]).astype("datetime64[ns]")
    iso = np.datetime_as_string(local.astype("datetime64[ms]"), unit="ms")
    if fmt is None:
        names = [_offset(o) for o in offsets]
        return [f"{t}{names[i]}" for t, i in zip(iso.tolist(), inverse.tolist(), strict=True)]
    if fmt != WIDE_TIME_FORMAT:  # pragma: no cover - one format is exported
        raise ValueError(fmt)
    # 2025-01-02T02:32:29.137 -> 02.01.2025 02:32:29.137
    return [f"{t[8:10]}.{t[5:7]}.{t[0:4]} {t[11:]}" for t in iso.tolist()]


def _offset(o: dt.timedelta) -> str:
    minutes = int(o.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _in_unit(sim: SimBatch, signal: str, unit: str) -> list[str]:
    """The sent readings in `unit`, to 12 significant digits (as an instrument writes them,
    not 11289.999999999998 for 11.29 L/min in mL/min)."""
    return [
        f"{v:.12g}" for v in (sim.signals[signal][sim.keep] / UNIT_FACTORS[signal][unit]).tolist()
    ]


def _reportable(sim: SimBatch) -> list[dict[str, Any]]:
    """The lab results a LIMS reports: each sample's last successful analysis."""
    best: dict[str, dict[str, Any]] = {}
    for doc in sample_results(sim):
        if doc["status"] == "ok":
            best[doc["sample_id"]] = doc
    return list(best.values())


def export_wide(out: Path, sims: list[SimBatch]) -> list[Path]:
    """One file per batch; the mapping takes the batch from its column."""
    zone = ZoneInfo(WIDE_ZONE)
    (out / "readings").mkdir(parents=True, exist_ok=True)
    files = []
    for s in sims:
        p = s.plan
        names = p.recipe.phase_names()
        path = out / "readings" / f"{p.batch_id}.csv"
        cols = [_in_unit(s, sig, WIDE_COLUMNS[sig][1]) for sig in SIGNALS]
        times = _times(s.ts_ns[s.keep], zone, WIDE_TIME_FORMAT)
        steps = [names[i] for i in s.phase_idx[s.keep].tolist()]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "Timestamp",
                    "Batch",
                    "Step",
                    *(WIDE_COLUMNS[sig][0] for sig in SIGNALS),
                    "Comment",
                ]
            )
            w.writerows(
                [t, p.batch_id, st, *vals, ""]
                for t, st, *vals in zip(times, steps, *cols, strict=True)
            )
        files.append(path)
    mapping = {
        "shape": "wide",
        "time": {"column": "Timestamp", "format": WIDE_TIME_FORMAT, "timezone": WIDE_ZONE},
        "batch": {"column": "Batch"},
        "phase": {"column": "Step"},
        "signals": {sig: {"column": c, "unit": u} for sig, (c, u) in WIDE_COLUMNS.items()},
        "ignore_columns": ["Comment"],
        **_mes_lims_files(out, sims, zone, WIDE_TIME_FORMAT, plant=False),
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return files


def _long_tags(
    units: Iterable[str], deadbands: dict[str, dict[str, float]] | None = None
) -> dict[str, dict[str, Any]]:
    """The mapping's tags of a long export: each unit's five, and (a compressed historian)
    the deadband each is stored with, in the tag's own unit."""
    return {
        f"{unit}/{tag}": {
            "unit_id": unit,
            "signal": sig,
            "unit": u,
            **({"deadband": float(f"{deadbands[unit][sig]:.6g}")} if deadbands else {}),
        }
        for unit in units
        for sig, (tag, u) in LONG_TAGS.items()
    }


def export_long(out: Path, sims: list[SimBatch]) -> list[Path]:
    """One historian file for every unit, rows in time order; phases from their own file."""
    zone = ZoneInfo(LONG_ZONE)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "historian.csv"
    rows: list[tuple[int, str, str, str]] = []
    units: dict[str, None] = {}
    for s in sims:
        unit = s.plan.unit.unit_id
        units[unit] = None
        ts = s.ts_ns[s.keep].tolist()
        for sig in SIGNALS:
            tag, u = LONG_TAGS[sig]
            rows.extend(
                zip(
                    ts,
                    [f"{unit}/{tag}"] * len(ts),
                    [""] * len(ts),
                    _in_unit(s, sig, u),
                    strict=True,
                )
            )
    rows.sort(key=lambda r: (r[0], r[1]))
    times = _times(np.array([r[0] for r in rows], dtype=np.int64), zone, None)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "tag", "value"])
        w.writerows((t, r[1], r[3]) for t, r in zip(times, rows, strict=True))
    with open(out / "phases.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_id", "phase", "start", "end"])
        for s in sims:
            starts = {e["phase"]: e["ts"] for e in s.events if e["event_type"] == "phase_start"}
            ends = {e["phase"]: e["ts"] for e in s.events if e["event_type"] == "phase_end"}
            for name in s.plan.recipe.phase_names():
                se = _times(np.array([iso_to_ns(starts[name]), iso_to_ns(ends[name])]), zone, None)
                w.writerow([s.plan.batch_id, name, *se])
    mapping = {
        "shape": "long",
        "time": {"column": "timestamp", "format": "iso"},
        "tag_column": "tag",
        "value_column": "value",
        "tags": _long_tags(units),
        "events": "phases.csv",
        **_mes_lims_files(out, sims, zone, None, plant=False),
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return [path]


def export_csv(
    out: Path, sims: Iterable[SimBatch], shape: str, realism: PlantRealism | None = None
) -> list[Path]:
    """Write the history in `shape`; returns the readings files (what `chrom import` takes).
    With `realism`, as a plant's systems would (simulator/realism.py): its own file layouts,
    names, vocabularies and time zones, and its instruments' and historian's habits."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {list(SHAPES)}")
    sims = list(sims)
    out.mkdir(parents=True, exist_ok=True)
    if realism is not None:
        (out / "realism.json").write_text(json.dumps(realism.record(), indent=1) + "\n")
        if shape == "wide":
            return export_plant_wide(out, sims, realism)
        return export_plant_long(out, sims, realism)
    return export_wide(out, sims) if shape == "wide" else export_long(out, sims)


# --- a plant's exports (--realism plant) -------------------------------------------------

#: The plant's MES batch list, LIMS results and batch-record phases: its own column names.
PLANT_BATCH_COLUMNS = {
    "batch_id": "Batch No.",
    "unit_id": "Equipment",
    "recipe": "Master Recipe",
    "column_cycle": "Column Use #",
    "planned_load_cv": "Planned Load (CV)",
}
PLANT_LAB_COLUMNS = {
    "batch_id": "Batch No.",
    "sample_point": "Sample Type",
    "analyte": "Test",
    "method": "Test Method",
    "result": "Result",
    "unit": "UoM",
    "sampled_at": "Sampled",
    "analyzed_at": "Result Approved",
}
PLANT_EVENT_COLUMNS = {
    "batch_id": "Batch",
    "phase": "Operation",
    "start": "Start Time",
    "end": "End Time",
}
#: the LIMS's sample types: what the platform's roles are called there, and one it ignores
PLANT_SAMPLE_TYPES = {"feed": "Pre-capture", "pool": "Eluate"}
PLANT_UNUSED_SAMPLE_TYPE = "Bioburden"
#: a plant with daylight saving that writes local times without an offset (wide)
PLANT_WIDE_ZONE = "Europe/Berlin"
PLANT_WIDE_FORMAT = "%d.%m.%Y %H:%M:%S.%f"
PLANT_WIDE_COLUMNS: dict[str, tuple[str, str]] = {
    "flow_lpm": ("FIC-110 Flow [L/h]", "L/h"),
    "pressure_bar": ("PIC-120 Pre-column [kPa]", "kPa"),
    "uv_mau": ("AIT-130 UV280 [AU]", "AU"),
    "cond_ms_cm": ("AIT-140 Cond [mS/cm]", "mS/cm"),
    "ph": ("AIT-150 pH", "pH"),
}
#: how the historian's compressed values are meant between two stored ones, and its maximum
#: interval (the importer must not fill further than that)
PLANT_INTERPOLATION = "step"


def _mes_lims_files(
    out: Path, sims: list[SimBatch], zone: ZoneInfo, fmt: str | None, *, plant: bool
) -> dict[str, Any]:
    """The MES batch list and the LIMS results, and their part of the mapping: in the
    platform's own column names and sample points, or (`plant`) in the plant's, with its
    sample types and a test the platform has no use for, as LIMS files carry."""
    batch_cols = PLANT_BATCH_COLUMNS if plant else {c: c for c in PLANT_BATCH_COLUMNS}
    lab_cols = PLANT_LAB_COLUMNS if plant else {c: c for c in PLANT_LAB_COLUMNS}
    lab_file = "lims_results.csv" if plant else "lab_results.csv"
    rng = np.random.default_rng(len(sims))
    with open(out / "batches.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(batch_cols.values())
        for s in sims:
            p = s.plan
            w.writerow([p.batch_id, p.unit.unit_id, p.recipe.recipe, p.cycle, round(p.load_cv, 4)])
    with open(out / lab_file, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(lab_cols.values())
        for s in sims:
            docs = _reportable(s)
            for d in docs:
                times = _times(
                    np.array([iso_to_ns(d["sampled_at"]), iso_to_ns(d["analyzed_at"])]), zone, fmt
                )
                point = d["sample_point"]
                w.writerow(
                    [
                        d["batch_id"],
                        PLANT_SAMPLE_TYPES[point] if plant else point,
                        d["analyte"],
                        d["method"],
                        d["scan"]["result"],
                        LAB_UNIT,
                        *times,
                    ]
                )
            if plant and docs:
                times = _times(np.array([iso_to_ns(docs[0]["sampled_at"])] * 2), zone, fmt)
                w.writerow(
                    [
                        s.plan.batch_id,
                        PLANT_UNUSED_SAMPLE_TYPE,
                        "TAMC",
                        "USP 61",
                        int(rng.integers(0, 5)),
                        "CFU/mL",
                        *times,
                    ]
                )
    if not plant:
        return {"batches": "batches.csv", "lab_results": lab_file}
    return {
        "batches": {"file": "batches.csv", "columns": PLANT_BATCH_COLUMNS},
        "lab_results": {
            "file": lab_file,
            "columns": PLANT_LAB_COLUMNS,
            "sample_types": {
                **{v: k for k, v in PLANT_SAMPLE_TYPES.items()},
                PLANT_UNUSED_SAMPLE_TYPE: None,
            },
        },
    }


def export_plant_wide(out: Path, sims: list[SimBatch], r: PlantRealism) -> list[Path]:
    """One file per batch of raw scans (jitter, extra and missing scans, labels at the
    operator's command, unlabelled gaps), local times without an offset across daylight-
    saving changes, plant units and column names."""
    zone = ZoneInfo(PLANT_WIDE_ZONE)
    (out / "readings").mkdir(parents=True, exist_ok=True)
    files = []
    for s in sims:
        p = s.plan
        sc = plant_scans(s, r)
        path = out / "readings" / f"{p.batch_id}.csv"
        cols = [
            [
                f"{v:.12g}"
                for v in (sc.signals[sig] / UNIT_FACTORS[sig][PLANT_WIDE_COLUMNS[sig][1]]).tolist()
            ]
            for sig in SIGNALS
        ]
        times = _times(sc.ts, zone, PLANT_WIDE_FORMAT)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Time", "Batch ID", "Phase", *(PLANT_WIDE_COLUMNS[g][0] for g in SIGNALS)])
            w.writerows(
                [t, p.batch_id, lab, *vals]
                for t, lab, *vals in zip(times, sc.labels, *cols, strict=True)
            )
        files.append(path)
    mapping = {
        "shape": "wide",
        "time": {"column": "Time", "format": PLANT_WIDE_FORMAT, "timezone": PLANT_WIDE_ZONE},
        "batch": {"column": "Batch ID"},
        "phase": {"column": "Phase"},
        "signals": {sig: {"column": c, "unit": u} for sig, (c, u) in PLANT_WIDE_COLUMNS.items()},
        "sampling": {"interpolation": "linear", "max_gap_s": 5},
        **_mes_lims_files(out, sims, zone, PLANT_WIDE_FORMAT, plant=True),
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return files


def export_plant_long(out: Path, sims: list[SimBatch], r: PlantRealism) -> list[Path]:
    """A compressed historian export (values stored by exception, "No Data" at a dropout)
    with offsets, and the batch record's phases in the plant's names."""
    zone = ZoneInfo(LONG_ZONE)
    rows: list[tuple[int, str, str]] = []
    #: unit -> signal -> the deadband its tag is compressed with (the tag's own unit)
    deadbands: dict[str, dict[str, float]] = {}
    phase_rows: list[list[Any]] = []
    for s in sims:
        unit = s.plan.unit.unit_id
        of_unit = deadbands.setdefault(unit, {})
        sc = plant_scans(s, r)
        for sig in SIGNALS:
            tag, u = LONG_TAGS[sig]
            db = r.compression[sig] * (meter_range_lpm(s) if sig == "flow_lpm" else 1.0)
            of_unit[sig] = max(of_unit.get(sig, 0.0), db / UNIT_FACTORS[sig][u])
            values = sc.signals[sig] / UNIT_FACTORS[sig][u]
            at = compress(sc.ts, sc.signals[sig], db, r.compression_max_s, sc.dropouts)
            rows.extend(
                (t, f"{unit}/{tag}", f"{v:.12g}")
                for t, v in zip(sc.ts[at].tolist(), values[at].tolist(), strict=True)
            )
            rows.extend((t, f"{unit}/{tag}", NO_DATA) for t in sc.dropouts)
        # the batch record: one row per labelled run of scans, first to last scan
        start = 0
        for i in range(1, len(sc.labels) + 1):
            if i == len(sc.labels) or sc.labels[i] != sc.labels[start]:
                if sc.labels[start]:
                    phase_rows.append(
                        [s.plan.batch_id, sc.labels[start], sc.ts[start], sc.ts[i - 1]]
                    )
                start = i
    rows.sort(key=lambda row: (row[0], row[1]))
    times = _times(np.array([row[0] for row in rows], dtype=np.int64), zone, None)
    path = out / "historian.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "tag", "value"])
        w.writerows((t, row[1], row[2]) for t, row in zip(times, rows, strict=True))
    with open(out / "batch_record.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PLANT_EVENT_COLUMNS.values())
        for b, ph, a, z in phase_rows:
            w.writerow([b, ph, *_times(np.array([a, z], dtype=np.int64), zone, None)])
    mapping = {
        "shape": "long",
        "time": {"column": "timestamp", "format": "iso"},
        "tag_column": "tag",
        "value_column": "value",
        "no_data": [NO_DATA],
        "tags": _long_tags(deadbands, deadbands),
        "sampling": {"interpolation": PLANT_INTERPOLATION, "max_gap_s": r.compression_max_s + 5},
        "events": {"file": "batch_record.csv", "columns": PLANT_EVENT_COLUMNS},
        **_mes_lims_files(out, sims, zone, None, plant=True),
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return [path]
