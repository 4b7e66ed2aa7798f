"""Data-quality checks that SQL tests do not express well, as pure functions of a warehouse.

Each looks at the batches the latest warehouse load touched (`_source_loaded_at` equal to
the newest one), so its cost follows new data, and returns a `QualityResult`: passed or
not, the severity a failure carries, and the offending batches with what was found where.
The SQL is plain (window functions, median) so the same check runs on DuckDB and Snowflake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chrom_platform.lib.analytics.batch_metrics import batch_flatlines
from chrom_platform.lib.analytics.reads import (
    batch_readings,
    deadbands_by_batch,
    recipe_phases,
)
from chrom_platform.lib.analytics.reads import units as read_units
from chrom_platform.lib.analytics.scans import FLATLINE_FACTOR, FLATLINE_NOT_JUDGED, FLATLINE_SCANS
from chrom_platform.lib.analytics.specs import MIN_WINDOW_CV, SETTLE_CV, guard_band
from chrom_platform.lib.core.contracts import ts_to_iso
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_TREND_BY_CV,
    SILVER_READINGS_CHECKED,
    SILVER_RECIPE_PHASES,
)
from chrom_platform.lib.io.warehouse import Row, Warehouse

#: A gap in a batch's 1 Hz readings longer than this many seconds is a data gap.
MAX_GAP_S = 10
#: Duplicate readings above this fraction of a load point at a double-publishing source.
MAX_DUPLICATE_RATE = 0.001


_LATEST_LOAD = f"_source_loaded_at = (select max(_source_loaded_at) from {GOLD_TREND_BY_CV})"


@dataclass(frozen=True)
class QualityResult:
    passed: bool
    severity: str  # "WARN" or "ERROR": what a failure means
    description: str
    batches_checked: int
    offending: list[Row] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def offending_batches(self) -> list[str]:
        return sorted({str(r["batch_id"]) for r in self.offending if r.get("batch_id")})


def _batches_in_latest_load(wh: Warehouse) -> int:
    return int(
        wh.query(
            f"select count(distinct batch_id) as n from {GOLD_TREND_BY_CV} where {_LATEST_LOAD}"
        )[0]["n"]
    )


def flatlined_signals(wh: Warehouse, chunk: int = 50) -> QualityResult:
    """A signal repeating one value for longer than its own habits explain, judged by the
    rule the batch verdict raises its flatline alarms by (batch_metrics.batch_flatlines: at
    least FLATLINE_SCANS readings and FLATLINE_FACTOR times the signal's longest other run in
    the batch; UV at its detector's saturation limit exempt; on a compressed record only
    inside a gradient that moves the signal past its deadband), on the same readings
    (reads.batch_readings), so the check and the verdict never disagree on what is stuck."""
    latest = wh.query(
        f"select distinct batch_id, unit_id, recipe from {GOLD_TREND_BY_CV} where {_LATEST_LOAD} "
        "order by batch_id"
    )
    saturation = {u: info.uv_max_mau for u, info in read_units(wh).items()}
    phases = recipe_phases(wh)
    rows: list[Row] = []
    not_judged: dict[str, list[str]] = {}
    for k in range(0, len(latest), chunk):
        part = latest[k : k + chunk]
        readings = batch_readings(wh, [str(b["batch_id"]) for b in part])
        for b in part:
            r = readings.get(str(b["batch_id"]))
            if r is None:
                continue
            found, compressed = batch_flatlines(
                r, phases.get(b["recipe"], {}), saturation.get(b["unit_id"], np.inf)
            )
            for s in compressed:
                not_judged.setdefault(s, []).append(r.batch_id)
            rows.extend(
                {
                    "batch_id": r.batch_id,
                    "signal": f.signal,
                    "phase": str(r.phase[f.index]),
                    "flat_since_at": ts_to_iso(int(r.ts_ns[f.index])),
                    "alarm_batch_cv": round(f.alarm_cv, 3),
                    "detail": f.detail,
                }
                for f in found
            )
    rule = f"at least {FLATLINE_SCANS} scans and {FLATLINE_FACTOR:g}x its longest other run"
    unjudged = (
        f"; not judged ({FLATLINE_NOT_JUDGED}) but inside gradients: "
        + ", ".join(f"{s} in {len(b)} batch(es)" for s, b in sorted(not_judged.items()))
        if not_judged
        else ""
    )
    return QualityResult(
        passed=not rows,
        severity="WARN",
        description=(
            f"no signal repeats one value longer than its own runs explain ({rule})"
            if not rows
            else f"{len(rows)} flatlined signal segment(s) in "
            f"{len({r['batch_id'] for r in rows})} batch(es): a stuck or frozen sensor ({rule})"
        )
        + unjudged,
        batches_checked=len(latest),
        offending=rows,
        metadata={
            "flatline_min_scans": FLATLINE_SCANS,
            "flatline_factor": FLATLINE_FACTOR,
            "cannot_judge": {s: sorted(b) for s, b in sorted(not_judged.items())},
        },
    )


def gaps_in_readings(wh: Warehouse, max_gap_s: int = MAX_GAP_S) -> QualityResult:
    """Gaps in a batch's 1 Hz scans (by the unit's scan counter) longer than `max_gap_s`."""
    rows = wh.query(
        f"""
        with scoped as (
            select batch_id, phase, ts, batch_cv, seq,
                seq - lag(seq) over (partition by batch_id order by ts) - 1 as missing_scans
            from {GOLD_TREND_BY_CV} where {_LATEST_LOAD}
        )
        select batch_id, phase, ts as resumed_at, batch_cv as resumed_batch_cv,
            missing_scans
        from scoped
        where missing_scans > {max_gap_s}
        order by batch_id, ts
        """
    )
    return QualityResult(
        passed=not rows,
        severity="WARN",
        description=(
            f"no gap longer than {max_gap_s} s in 1 Hz readings"
            if not rows
            else f"{len(rows)} gap(s) longer than {max_gap_s} s, longest "
            f"{max(int(r['missing_scans']) for r in rows)} scans"
        ),
        batches_checked=_batches_in_latest_load(wh),
        offending=rows,
        metadata={"max_gap_s": max_gap_s},
    )


def phase_sensor_ranges(
    wh: Warehouse, settle_cv: float = SETTLE_CV, min_window_cv: float = MIN_WINDOW_CV
) -> QualityResult:
    """Each phase's settled conductivity and pH (the median from `settle_cv` after its
    buffer reaches the inlet: after the recipe's ramp, if any) within its buffer's spec
    ranges in master data. The same settled level the analytics judge from a unit's first
    batch (specs.py); this check judges it as soon as dbt has built the load. Phases without
    ranges or that never settle (a gradient elution) are counted, not passed."""
    rows = wh.query(
        f"""
        with scoped as (
            select batch_id, recipe, phase, phase_cv, is_hold, cond_ms_cm, ph
            from {GOLD_TREND_BY_CV} where {_LATEST_LOAD}
        ),
        phase_extent as (
            select scoped.batch_id, scoped.recipe, scoped.phase, max(scoped.phase_cv) as phase_cv_end,
                min(rp.gradient_cv) + {settle_cv} as settled_from
            from scoped
            inner join {SILVER_RECIPE_PHASES} as rp
                on scoped.recipe = rp.recipe and scoped.phase = rp.phase
            group by scoped.batch_id, scoped.recipe, scoped.phase
        ),
        settled as (
            select scoped.batch_id, scoped.recipe, scoped.phase,
                median(scoped.cond_ms_cm) as cond_ms_cm, median(scoped.ph) as ph,
                min(scoped.phase_cv) as from_phase_cv, count(*) as scans
            from scoped
            inner join phase_extent
                on scoped.batch_id = phase_extent.batch_id and scoped.phase = phase_extent.phase
            where not scoped.is_hold and scoped.phase_cv >= phase_extent.settled_from
                and phase_extent.phase_cv_end - phase_extent.settled_from >= {min_window_cv}
            group by scoped.batch_id, scoped.recipe, scoped.phase
        )
        select settled.batch_id, settled.phase, settled.from_phase_cv, settled.scans,
            settled.cond_ms_cm, rp.buffer_cond_min_ms_cm, rp.buffer_cond_max_ms_cm,
            settled.ph, rp.buffer_ph_min, rp.buffer_ph_max, rp.buffer
        from settled
        inner join {SILVER_RECIPE_PHASES} as rp
            on settled.recipe = rp.recipe and settled.phase = rp.phase
        where settled.cond_ms_cm < rp.buffer_cond_min_ms_cm
            or settled.cond_ms_cm > rp.buffer_cond_max_ms_cm
            or settled.ph < rp.buffer_ph_min
            or settled.ph > rp.buffer_ph_max
        order by settled.batch_id, settled.phase
        """
    )
    # a compressed record resolves a level no finer than its deadband: outside the range
    # only within it is not judged (specs.py, the same guard band)
    deadbands = deadbands_by_batch(wh, sorted({str(r["batch_id"]) for r in rows}))
    beyond = [_beyond_deadband(r, deadbands.get(str(r["batch_id"]), {})) for r in rows]
    within = [r for r, out in zip(rows, beyond, strict=True) if not out]
    rows = [r for r, out in zip(rows, beyond, strict=True) if out]
    unjudged = wh.query(
        f"""
        select count(*) as n from {SILVER_RECIPE_PHASES}
        where buffer_cond_min_ms_cm is null and buffer_ph_min is null
        """
    )[0]["n"]
    return QualityResult(
        passed=not rows,
        severity="ERROR",
        description=(
            "every settled phase within its buffer's spec ranges"
            if not rows
            else f"{len(rows)} phase(s) outside their buffer's spec ranges: wrong or mis-made "
            "buffer, or a failing sensor"
        )
        + (
            f"; {unjudged} recipe phase(s) without ranges in master data not judged"
            if unjudged
            else ""
        )
        + (
            f"; {len(within)} phase(s) outside their range only within the record's "
            "historian deadband not judged"
            if within
            else ""
        ),
        batches_checked=_batches_in_latest_load(wh),
        offending=rows,
        metadata={
            "settled_from_cv_after_the_buffer": settle_cv,
            "phases_without_ranges": int(unjudged),
            "cannot_judge": [{"batch_id": r["batch_id"], "phase": r["phase"]} for r in within],
        },
    )


def _beyond_deadband(r: Row, deadbands: dict[str, float]) -> bool:
    """A settled phase's level outside its buffer's range by more than the deadband its
    record was compressed with (no deadband: outside at all)."""
    for signal, lo, hi in (
        ("cond_ms_cm", "buffer_cond_min_ms_cm", "buffer_cond_max_ms_cm"),
        ("ph", "buffer_ph_min", "buffer_ph_max"),
    ):
        v = r[signal]
        if v is None or r[lo] is None or r[hi] is None:
            continue
        low, high = guard_band((float(r[lo]), float(r[hi])), deadbands.get(signal, 0.0))
        if float(v) < low or float(v) > high:
            return True
    return False


def duplicate_rate(wh: Warehouse, max_rate: float = MAX_DUPLICATE_RATE) -> QualityResult:
    """Readings of the latest load that repeat an earlier (unit_id, ts), and other rejects."""
    rows = wh.query(
        f"""
        select batch_id, reject_reason, count(*) as n
        from {SILVER_READINGS_CHECKED}
        where _loaded_at = (select max(_loaded_at) from {SILVER_READINGS_CHECKED})
        group by batch_id, reject_reason
        order by batch_id, reject_reason
        """
    )
    total = sum(int(r["n"]) for r in rows)
    dup = sum(int(r["n"]) for r in rows if r["reject_reason"] == "duplicate")
    by_reason: dict[str, int] = {}
    for r in rows:
        if r["reject_reason"] is not None:
            by_reason[r["reject_reason"]] = by_reason.get(r["reject_reason"], 0) + int(r["n"])
    rate = dup / total if total else 0.0
    offending = [
        {"batch_id": r["batch_id"], "duplicates": int(r["n"])}
        for r in rows
        if r["reject_reason"] == "duplicate"
    ]
    return QualityResult(
        passed=rate <= max_rate,
        severity="WARN",
        description=f"{dup:,} of {total:,} readings in the latest load are duplicates "
        f"({rate:.3%}; limit {max_rate:.3%})",
        batches_checked=len({r["batch_id"] for r in rows}),
        offending=offending if rate > max_rate else [],
        metadata={
            "readings_loaded": total,
            "duplicates": dup,
            "duplicate_rate": rate,
            "rejected_by_reason": by_reason,
        },
    )


def latest_per_unit(wh: Warehouse) -> list[dict[str, Any]]:
    """Each unit's latest batch by start time (never by id: "9" sorts after "48")."""
    return wh.query(
        f"""
        with ranked as (
            select batch_id, unit_id, recipe, status, row_number() over (
                partition by unit_id order by started_at desc nulls last, batch_id desc
            ) as rn
            from {GOLD_BATCH_RESULTS}
        )
        select batch_id, unit_id, recipe, status from ranked where rn = 1 order by unit_id
        """
    )


def latest_ids(wh: Warehouse) -> tuple[list[dict[str, Any]], list[str], str]:
    """Each unit's latest batch, their ids, and the `?` marks of an `in (...)` over them."""
    latest = latest_per_unit(wh)
    ids = [r["batch_id"] for r in latest]
    return latest, ids, ", ".join("?" * len(ids)) or "''"
