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
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from chrom_platform.lib.core.contracts import SIGNALS, iso_to_ns
from chrom_platform.lib.core.units import UNIT_FACTORS
from simulator.batch import SimBatch
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


def _common_files(out: Path, sims: list[SimBatch], zone: ZoneInfo, fmt: str | None) -> None:
    with open(out / "batches.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_id", "unit_id", "recipe", "column_cycle", "planned_load_cv"])
        for s in sims:
            p = s.plan
            w.writerow([p.batch_id, p.unit.unit_id, p.recipe.recipe, p.cycle, round(p.load_cv, 4)])
    with open(out / "lab_results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "batch_id",
                "sample_point",
                "analyte",
                "method",
                "result",
                "unit",
                "sampled_at",
                "analyzed_at",
            ]
        )
        for s in sims:
            for d in _reportable(s):
                times = _times(
                    np.array([iso_to_ns(d["sampled_at"]), iso_to_ns(d["analyzed_at"])]), zone, fmt
                )
                w.writerow(
                    [
                        d["batch_id"],
                        d["sample_point"],
                        d["analyte"],
                        d["method"],
                        d["scan"]["result"],
                        LAB_UNIT,
                        *times,
                    ]
                )


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
    _common_files(out, sims, zone, WIDE_TIME_FORMAT)
    mapping = {
        "shape": "wide",
        "time": {"column": "Timestamp", "format": WIDE_TIME_FORMAT, "timezone": WIDE_ZONE},
        "batch": {"column": "Batch"},
        "phase": {"column": "Step"},
        "signals": {sig: {"column": c, "unit": u} for sig, (c, u) in WIDE_COLUMNS.items()},
        "ignore_columns": ["Comment"],
        "batches": "batches.csv",
        "lab_results": "lab_results.csv",
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return files


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
    _common_files(out, sims, zone, None)
    mapping = {
        "shape": "long",
        "time": {"column": "timestamp", "format": "iso"},
        "tag_column": "tag",
        "value_column": "value",
        "tags": {
            f"{unit}/{tag}": {"unit_id": unit, "signal": sig, "unit": u}
            for unit in units
            for sig, (tag, u) in LONG_TAGS.items()
        },
        "events": "phases.csv",
        "batches": "batches.csv",
        "lab_results": "lab_results.csv",
    }
    (out / "mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return [path]


def export_csv(out: Path, sims: Iterable[SimBatch], shape: str) -> list[Path]:
    """Write the history in `shape`; returns the readings files (what `chrom import` takes)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {list(SHAPES)}")
    sims = list(sims)
    out.mkdir(parents=True, exist_ok=True)
    return export_wide(out, sims) if shape == "wide" else export_long(out, sims)
