"""The analytics run: read gold, analyse, write the analytics tables back to gold.

Cost follows new data where it can: reading-level analysis (transitions, permeability, the
elution peak, breakthrough, gaps, flatlines) runs only for batches whose gold rows changed
since they were last analysed (new, still running, or rebuilt); the envelope and drift pass
reads the binned trend (about 400 rows a batch) of every batch and judges them in order,
which is numpy work of a few milliseconds a batch.

Tables (schema gold): gold_column_performance (batch x transition), gold_batch_peaks,
gold_golden_envelope, gold_batch_drift (batch x signal), gold_batch_alarms, gold_batch_verdict.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from chrom_platform.lib.analytics.batch_metrics import (
    ASYMMETRY_LIMIT_ABOVE,
    BREAKTHROUGH_ALARM_FRACTION,
    HETP_LIMIT_FACTOR,
    NOT_RELEASED_FOR,
    PERMEABILITY_BASELINE_CYCLES,
    Alarm,
    BatchAnalysis,
    PhaseInfo,
    UnitInfo,
    alarms,
    analyse,
)
from chrom_platform.lib.analytics.column import BREAKTHROUGH_NOISE_K
from chrom_platform.lib.analytics.envelope import (
    BinnedBatches,
    ColumnScale,
    DriftHistory,
    EnvelopeParams,
    Floor,
    SignalDrift,
    causal_drift,
    cross_unit_drift,
    envelope_rows,
)
from chrom_platform.lib.analytics.reads import batch_readings, envelope_params, recipe_phases
from chrom_platform.lib.analytics.reads import units as read_units
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.tables import (
    ANALYTICS_TABLES,
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_DRIFT,
    GOLD_BATCH_PEAKS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_GOLDEN_ENVELOPE,
    GOLD_MONITORING_STATE,
    GOLD_TREND_BINNED,
    SILVER_RECIPES,
    Table,
)
from chrom_platform.lib.io.warehouse import Warehouse

SCHEMA = "gold"
TABLES = ANALYTICS_TABLES
#: what judged a batch's drift (gold_batch_verdict.envelope) -> the monitoring state of a
#: unit and recipe whose newest batch it was (gold_monitoring_state.state): its unit's own
#: envelope; the recipe's across units (too few released batches of its own); or nothing
#: beside the recipe's specifications (too few anywhere)
MONITORING_STATE = {"own": "own_envelope", "cross_unit": "cross_unit", "none": "specs_only"}


@dataclass
class AnalyticsResult:
    batches: int = 0
    analysed: int = 0  # batches whose readings were (re)analysed this run
    judged: int = 0  # batches judged against the envelope this run
    released: int = 0
    drifting: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    envelope_rows: int = 0
    monitoring: list[dict[str, Any]] = field(default_factory=list)
    #: batch ids a pin or exclude names (run config or recipe master data) that gold does
    #: not hold: a typo, or a batch not landed yet; the say is kept and waits for it
    unknown_decisions: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "unknown_pinned_or_excluded": len(self.unknown_decisions),
            "batches_analysed": self.analysed,
            "batches_judged": self.judged,
            "released": self.released,
            "drifting_batches": len(self.drifting),
            "envelope_rows": self.envelope_rows,
            **{f"{k}_s": round(v, 3) for k, v in self.seconds.items()},
        }


def binned_groups(
    wh: Warehouse, batches: list[dict[str, Any]], phases: dict[str, dict[str, PhaseInfo]]
) -> list[BinnedBatches]:
    t = wh.query_arrow(
        f"select batch_id, phase, cv_bin, batch_cv, {', '.join(SIGNALS)} from {GOLD_TREND_BINNED}"
    )
    bid = t.column("batch_id").to_numpy(zero_copy_only=False).astype(str)
    phase = t.column("phase").to_numpy(zero_copy_only=False).astype(str)
    cvbin = t.column("cv_bin").to_numpy(zero_copy_only=False).astype(np.int64)
    bcv = t.column("batch_cv").to_numpy(zero_copy_only=False).astype(np.float64)
    vals = np.column_stack(
        [t.column(s).to_numpy(zero_copy_only=False).astype(np.float64) for s in SIGNALS]
    )
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for b in batches:  # already in start order
        by_group[(b["recipe"], b["unit_id"])].append(b)
    groups = []
    for (recipe, unit_id), members in by_group.items():
        order = {p: i.order for p, i in phases.get(recipe, {}).items()}
        ids = [m["batch_id"] for m in members]
        pos = {b: i for i, b in enumerate(ids)}
        sel = np.flatnonzero(np.isin(bid, ids) & np.isin(phase, list(order)))
        ph_order = np.array([order[p] for p in phase[sel]], dtype=np.int64)
        key_code = ph_order * 1_000_000 + cvbin[sel]
        uniq, inv = np.unique(key_code, return_inverse=True)
        keys = []
        names = {o: p for p, o in order.items()}
        for code in uniq:
            o, k = divmod(int(code), 1_000_000)
            keys.append((o, names[o], k))
        values = np.full((len(ids), len(uniq), len(SIGNALS)), np.nan)
        cvs = np.full((len(ids), len(uniq)), np.nan)
        rows = np.array([pos[b] for b in bid[sel]], dtype=np.int64)
        values[rows, inv] = vals[sel]
        cvs[rows, inv] = bcv[sel]
        groups.append(BinnedBatches(recipe, unit_id, ids, keys, values, cvs))
    return groups


def _f(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def run(
    wh: Warehouse,
    params: EnvelopeParams | None = None,
    *,
    full: bool = False,
    pin: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> AnalyticsResult:
    """Bring the analytics tables up to date with gold (see the module docstring). `full`
    recomputes everything (after a change of parameters); otherwise only what changed.
    `pin` / `exclude`: batches engineers pin into or exclude from the golden envelope for
    this run, beside those recipe master data names (a changed say re-judges the history)."""
    params = params or EnvelopeParams()
    by_recipe = envelope_params(wh, params)

    def params_of(recipe: str) -> EnvelopeParams:
        return by_recipe.get(recipe, params)

    decisions = decisions_of(wh, pin, exclude)
    drift_full = full or decisions != _previous_decisions(wh)
    res = AnalyticsResult()
    t0 = time.perf_counter()
    units = read_units(wh)
    phases = recipe_phases(wh)
    batches = wh.query(
        "select batch_id, unit_id, recipe, column_id, column_cycle, status, started_at, "
        "feed_titer_g_l, alerts, total_cv, pool_end_cv, _source_loaded_at "
        f"from {GOLD_BATCH_RESULTS} order by started_at nulls last, batch_id"
    )
    res.batches = len(batches)
    known = {b["batch_id"] for b in batches}
    res.unknown_decisions = {b: say for b, say in sorted(decisions.items()) if b not in known}
    analyses, res.analysed = _analyse_changed(wh, batches, units, phases, full=full)
    res.seconds["readings"] = time.perf_counter() - t0
    meta = {b["batch_id"]: b for b in batches}
    _write_readings_tables(wh, analyses, meta, units)

    t1 = time.perf_counter()
    batch_alarms = _reading_and_result_alarms(wh, batches, analyses, units, full=full)
    drift = _envelope_and_drift(
        wh,
        batches,
        analyses,
        phases,
        batch_alarms,
        params_of,
        full=drift_full,
        decisions=decisions,
        units=units,
    )
    res.judged = drift.judged
    res.seconds["drift"] = time.perf_counter() - t1

    not_judged = _not_judged(wh, batches, analyses, full=full)
    alarm_rows, verdict_rows = _verdicts(batches, batch_alarms, drift, not_judged, res)
    res.released = len(drift.released)
    res.envelope_rows = len(drift.envelope_rows)
    write_gold(wh, GOLD_GOLDEN_ENVELOPE, drift.envelope_rows, ENVELOPE_SCHEMA)
    write_gold(wh, GOLD_BATCH_DRIFT, drift.drift_rows, DRIFT_SCHEMA)
    write_gold(wh, GOLD_BATCH_ALARMS, alarm_rows, ALARM_SCHEMA)
    write_gold(wh, GOLD_BATCH_VERDICT, verdict_rows, VERDICT_SCHEMA)
    res.monitoring = _monitoring_state(batches, drift, phases, params_of, decisions)
    write_gold(wh, GOLD_MONITORING_STATE, res.monitoring, STATE_SCHEMA)
    res.seconds["total"] = time.perf_counter() - t0
    return res


def _analyse_changed(
    wh: Warehouse,
    batches: list[dict[str, Any]],
    units: dict[str, UnitInfo],
    phases: dict[str, dict[str, PhaseInfo]],
    *,
    full: bool,
) -> tuple[dict[str, BatchAnalysis], int]:
    """Reading-level analysis of the batches that changed since they were last analysed
    (every batch when `full`), 50 batches' readings in memory at a time; and how many
    batches changed."""
    recipes = {
        r["recipe"]: r
        for r in wh.query(
            "select recipe, extinction_l_g_cm, breakthrough_percent_of_feed, "
            f"breakthrough_noise_k from {SILVER_RECIPES}"
        )
    }
    done: dict[str, Any] = {}
    if not full and wh.table_exists(SCHEMA, GOLD_BATCH_PEAKS.name):
        done = {
            r["batch_id"]: r["_source_loaded_at"]
            for r in wh.query(f"select batch_id, _source_loaded_at from {GOLD_BATCH_PEAKS}")
        }
    todo = [
        b
        for b in batches
        if b["batch_id"] not in done or done[b["batch_id"]] != b["_source_loaded_at"]
    ]
    analyses: dict[str, BatchAnalysis] = {}
    for a in range(0, len(todo), 50):
        chunk = todo[a : a + 50]
        readings = batch_readings(wh, [b["batch_id"] for b in chunk])
        for b in chunk:
            got = readings.get(b["batch_id"])
            if got is None or b["unit_id"] not in units:
                continue
            rec = recipes.get(b["recipe"], {})
            analyses[b["batch_id"]] = analyse(
                got,
                units[b["unit_id"]],
                phases.get(b["recipe"], {}),
                feed_titer_g_l=b["feed_titer_g_l"],
                extinction_l_g_cm=rec.get("extinction_l_g_cm"),
                breakthrough_fraction=(
                    rec["breakthrough_percent_of_feed"] / 100.0
                    if rec.get("breakthrough_percent_of_feed") is not None
                    else BREAKTHROUGH_ALARM_FRACTION
                ),
                breakthrough_noise_k=rec.get("breakthrough_noise_k") or BREAKTHROUGH_NOISE_K,
            )
    return analyses, len(todo)


def _stored_alarm(row: dict[str, Any]) -> Alarm:
    return Alarm(
        row["source"],
        row["signal"],
        row["phase"],
        _nan(row["alarm_cv"]),
        row["severity"],
        row["detail"],
    )


def _reading_and_result_alarms(
    wh: Warehouse,
    batches: list[dict[str, Any]],
    analyses: dict[str, BatchAnalysis],
    units: dict[str, UnitInfo],
    *,
    full: bool,
) -> dict[str, list[Alarm]]:
    """Alarms per batch from its readings and its batch result: recomputed for the batches
    analysed now, carried over from gold for the rest."""
    perf = (
        wh.query_arrow(
            "select distinct batch_id, column_id, column_cycle, permeability_m2 "
            f"from {GOLD_COLUMN_PERFORMANCE}"
        ).to_pylist()
        if wh.table_exists(SCHEMA, GOLD_COLUMN_PERFORMANCE.name)
        else []
    )
    baseline = _permeability_baselines(perf)
    batch_alarms: dict[str, list[Alarm]] = {b["batch_id"]: [] for b in batches}
    stored = (
        wh.query(f"select * from {GOLD_BATCH_ALARMS} where source <> 'drift'")
        if not full and wh.table_exists(SCHEMA, GOLD_BATCH_ALARMS.name)
        else []
    )
    for row in stored:
        if row["batch_id"] in batch_alarms and row["batch_id"] not in analyses:
            batch_alarms[row["batch_id"]].append(_stored_alarm(row))
    meta = {b["batch_id"]: b for b in batches}
    for bid, an in analyses.items():
        b = meta[bid]
        batch_alarms[bid].extend(alarms(an, units[b["unit_id"]], baseline.get(b["column_id"])))
        if b["alerts"]:
            at = b["pool_end_cv"] if b["pool_end_cv"] is not None else b["total_cv"]
            for alert in str(b["alerts"]).split(","):
                batch_alarms[bid].append(
                    Alarm(
                        "result", alert, None, float(at or np.nan), "WARN", f"batch result: {alert}"
                    )
                )
    return batch_alarms


@dataclass
class _DriftStage:
    drift_rows: list[dict[str, Any]] = field(default_factory=list)
    envelope_rows: list[dict[str, Any]] = field(default_factory=list)
    #: batches in the envelope each batch was judged against
    reference_size: dict[str, int] = field(default_factory=dict)
    #: which envelope judged each batch: ENVELOPE_KINDS
    envelope_kind: dict[str, str] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    judged: int = 0
    #: unit and recipe -> the batches its current envelope is built from (provenance)
    envelope_ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _envelope_and_drift(
    wh: Warehouse,
    batches: list[dict[str, Any]],
    analyses: dict[str, BatchAnalysis],
    phases: dict[str, dict[str, PhaseInfo]],
    batch_alarms: dict[str, list[Alarm]],
    params_of: Callable[[str], EnvelopeParams],
    *,
    full: bool,
    decisions: Mapping[str, str] | None = None,
    units: Mapping[str, UnitInfo] | None = None,
) -> _DriftStage:
    """The envelope and each batch's drift against the batches before it, in order, per
    unit and recipe; a batch of a unit without its own envelope yet is judged against the
    same recipe on every unit (`_cross_unit`). Adds drift alarms to `batch_alarms`. Batches
    before the first changed one keep what earlier runs judged (see causal_drift)."""
    meta = {b["batch_id"]: b for b in batches}
    groups = binned_groups(wh, batches, phases)
    # released only without a process or data finding: a column or yield finding shared by
    # every batch must not leave a unit without an envelope (batch_metrics.NOT_RELEASED_FOR)
    others = {
        bid: any(a.alarm_class in NOT_RELEASED_FOR for a in al) or meta[bid]["status"] != "complete"
        for bid, al in batch_alarms.items()
    }
    out = _DriftStage()
    prev: dict[str, dict[str, Any]] = {}
    prev_drift: dict[str, list[dict[str, Any]]] = defaultdict(list)
    prev_alarms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not full and wh.table_exists(SCHEMA, GOLD_BATCH_VERDICT.name):
        prev = {r["batch_id"]: r for r in wh.query(f"select * from {GOLD_BATCH_VERDICT}")}
        for r in wh.query(f"select * from {GOLD_BATCH_DRIFT}"):
            prev_drift[r["batch_id"]].append(r)
        for r in wh.query(f"select * from {GOLD_BATCH_ALARMS} where source = 'drift'"):
            prev_alarms[r["batch_id"]].append(r)
    starts: dict[tuple[str, str], int] = {}
    for g in groups:
        changed = [
            i
            for i, b in enumerate(g.batch_ids)
            if b in analyses or b not in prev or b not in prev_drift
        ]
        starts[(g.unit_id, g.recipe)] = min(changed) if changed else len(g.batch_ids)

    def walk(g: BinnedBatches, say: Mapping[str, str] | None) -> DriftHistory:
        start = starts[(g.unit_id, g.recipe)]
        params = params_of(g.recipe)
        return causal_drift(
            g,
            others,
            params,
            floor=unit_floor(units or {}, g.unit_id, params.signals),
            start_at=start,
            released_before=[i for i in range(start) if prev[g.batch_ids[i]]["released"]],
            decisions=say,
        )

    order = {b["batch_id"]: n for n, b in enumerate(batches)}
    hists, cross = walk_units(groups, walk, order, units or {}, params_of, decisions or {})
    for g in groups:
        params = params_of(g.recipe)
        start = starts[(g.unit_id, g.recipe)]
        for kept in g.batch_ids[:start]:
            out.reference_size[kept] = int(prev[kept]["reference_batches"])
            out.envelope_kind[kept] = prev[kept].get("envelope") or (
                "own" if out.reference_size[kept] >= params.min_batches else "none"
            )
            out.drift_rows.extend(prev_drift[kept])
            batch_alarms[kept].extend(_stored_alarm(a) for a in prev_alarms[kept])
        hist = hists[(g.unit_id, g.recipe)]
        out.envelope_ids[(g.unit_id, g.recipe)] = [g.batch_ids[i] for i in hist.current_reference]
        out.judged += len(hist.drift)
        out.released.update(hist.released)
        out.envelope_rows.extend(envelope_rows(g, hist, params))
        for bid, ds in hist.drift.items():
            n, kind = hist.reference_size[bid], "own"
            if bid in cross:
                ds, n = cross[bid]
                kind = "cross_unit"
            elif n < params.min_batches:
                kind = "none"
            out.reference_size[bid] = n
            out.envelope_kind[bid] = kind
            for d in ds:
                out.drift_rows.append(_drift_row(bid, g, d, n, params, kind))
                if d.verdict == "drift":
                    batch_alarms[bid].append(_drift_alarm(d, params, kind))
    return out


def unit_floor(units: Mapping[str, UnitInfo], unit_id: str, signals: Sequence[str]) -> Floor:
    """The unit's instrument accuracy as the limits' floor (Floor.of takes the platform's
    defaults for what is not given, so for a unit the warehouse does not know)."""
    unit = units.get(unit_id)
    return Floor.of(unit.accuracy if unit else {}, signals)


def walk_units(
    groups: list[BinnedBatches],
    walk: Callable[[BinnedBatches, Mapping[str, str] | None], DriftHistory],
    order: Mapping[str, int],
    units: Mapping[str, UnitInfo],
    params_of: Callable[[str], EnvelopeParams],
    decisions: Mapping[str, str],
) -> tuple[dict[tuple[str, str], DriftHistory], dict[str, tuple[list[SignalDrift], int]]]:
    """Each unit's own walk (`walk`: causal_drift over its batches, with engineers' say),
    and the batches judged across units (`_cross_unit`). A unit's first envelope is built
    without what drifted cross-unit; walked again without it, a later batch's own reference
    may fall below min_batches and is judged across units then, and so on until nothing
    more drifts (each round only adds to what drifted)."""
    hists = {(g.unit_id, g.recipe): walk(g, decisions) for g in groups}
    cross, drifting = _cross_unit(groups, hists, order, units, params_of, decisions)
    walked: set[str] = set()
    while drifting - walked:
        walked = set(drifting)
        for g in groups:
            if drifting & set(g.batch_ids):
                hists[(g.unit_id, g.recipe)] = walk(
                    g, {**decisions, **dict.fromkeys(drifting, "exclude")}
                )
        cross, more = _cross_unit(groups, hists, order, units, params_of, decisions)
        drifting |= more
    return hists, cross


def _cross_unit(
    groups: list[BinnedBatches],
    hists: Mapping[tuple[str, str], DriftHistory],
    order: Mapping[str, int],
    units: Mapping[str, UnitInfo],
    params_of: Callable[[str], EnvelopeParams],
    decisions: Mapping[str, str],
) -> tuple[dict[str, tuple[list[SignalDrift], int]], set[str]]:
    """Batches judged this run whose unit has no envelope of its own yet, judged against
    the same recipe's batches released before them on every unit, made unit-free by the
    units' columns (envelope.unit_free): a new unit or a new plant is watched from its
    first batches, not after `min_batches` of its own. Walked in start order across the
    recipe's units, so a batch that drifted this way is in no later batch's reference and
    (unless pinned) is kept out of its own unit's first envelope. Returns the judgements
    (drift per signal, reference batches) and the batches that drifted."""
    column = {
        u: ColumnScale(i.area_cm2, i.bed_height_cm, i.uv_path_length_cm, i.system_bar_per_lpm)
        for u, i in units.items()
    }
    by_recipe: dict[str, list[BinnedBatches]] = defaultdict(list)
    for g in groups:
        if g.unit_id in column:
            by_recipe[g.recipe].append(g)
    cross: dict[str, tuple[list[SignalDrift], int]] = {}
    drifting: set[str] = set()
    for recipe, gs in by_recipe.items():
        params = params_of(recipe)
        walk = sorted(
            ((order.get(b, 0), g, i) for g in gs for i, b in enumerate(g.batch_ids)),
            key=lambda x: x[0],
        )
        pool: list[tuple[BinnedBatches, int, ColumnScale]] = []
        for _, g, i in walk:
            bid, h = g.batch_ids[i], hists[(g.unit_id, g.recipe)]
            if bid in h.drift and h.reference_size[bid] < params.min_batches:
                ds, n = cross_unit_drift(
                    g,
                    i,
                    pool[-params.window :],
                    column[g.unit_id],
                    params,
                    unit_floor(units, g.unit_id, params.signals),
                )
                if n >= params.min_batches:
                    cross[bid] = (ds, n)
                    if any(d.verdict == "drift" for d in ds) and decisions.get(bid) != "pin":
                        drifting.add(bid)
            if bid in h.released and bid not in drifting:
                pool.append((g, i, column[g.unit_id]))
    return cross, drifting


def decisions_of(wh: Warehouse, pin: Sequence[str], exclude: Sequence[str]) -> dict[str, str]:
    """Batch id -> "pin" or "exclude": recipe master data's, then this run's."""
    out: dict[str, str] = {}
    for r in wh.query(f"select envelope_pin, envelope_exclude from {SILVER_RECIPES}"):
        for column, say in (("envelope_pin", "pin"), ("envelope_exclude", "exclude")):
            if r.get(column):
                out.update(dict.fromkeys(json.loads(r[column]), say))
    for name, ids in (("pin", pin), ("exclude", exclude)):
        blank = [i for i, b in enumerate(ids) if not isinstance(b, str) or not b.strip()]
        if blank:
            raise ValueError(f"{name}: item(s) {blank} are not batch ids (empty or blank)")
        padded = [b for b in ids if b != b.strip()]
        if padded:
            raise ValueError(f"{name}: batch ids with surrounding spaces: {padded}")
    both = set(pin) & set(exclude)
    if both:
        raise ValueError(f"batches both pinned and excluded: {sorted(both)}")
    out.update(dict.fromkeys(pin, "pin"))
    out.update(dict.fromkeys(exclude, "exclude"))
    return out


def _previous_decisions(wh: Warehouse) -> dict[str, str] | None:
    """The say the tables were last judged with (None: unknown, judge everything again)."""
    if not wh.table_exists(SCHEMA, GOLD_MONITORING_STATE.name):
        return None
    try:
        rows = wh.query(f"select pinned_batch_ids, excluded_batch_ids from {GOLD_MONITORING_STATE}")
    except Exception:  # a table from before these columns: judge everything again
        return None
    out: dict[str, str] = {}
    for r in rows:
        for column, say in (("pinned_batch_ids", "pin"), ("excluded_batch_ids", "exclude")):
            out.update(dict.fromkeys(filter(None, (r[column] or "").split(",")), say))
    return out


def _monitoring_state(
    batches: list[dict[str, Any]],
    drift: _DriftStage,
    phases: dict[str, dict[str, PhaseInfo]],
    params_of: Callable[[str], EnvelopeParams],
    decisions: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Per unit and recipe: what its newest batch was judged against, and how much of the
    recipe its specifications cover (what a new unit or recipe is watched with)."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for b in batches:  # in start order
        groups[(b["unit_id"], b["recipe"])].append(b["batch_id"])
    rows = []
    for (unit_id, recipe), ids in sorted(groups.items()):
        params = params_of(recipe)
        latest = ids[-1]
        n = drift.reference_size.get(latest, 0)
        released = sum(1 for b in ids if b in drift.released)
        info = phases.get(recipe, {})
        ranged = [p for p, i in info.items() if i.cond_range or i.ph_range]
        flowed = [p for p, i in info.items() if i.flow_tolerance]
        kind = drift.envelope_kind.get(latest, "none")
        own = kind == "own"
        specs = (
            f"specifications: buffer ranges on {len(ranged)} of {len(info)} phases, flow on "
            f"{len(flowed)}"
        )
        state = MONITORING_STATE[kind]
        rows.append(
            {
                "unit_id": unit_id,
                "recipe": recipe,
                "state": state,
                "batches": len(ids),
                "released_batches": released,
                "envelope_batches": n,
                "min_batches": params.min_batches,
                "latest_batch_id": latest,
                "spec_phases": len(ranged),
                "flow_spec_phases": len(flowed),
                "phases": len(info),
                "envelope_batch_ids": ",".join(drift.envelope_ids.get((unit_id, recipe), [])),
                "pinned_batch_ids": ",".join(b for b in ids if decisions.get(b) == "pin"),
                "excluded_batch_ids": ",".join(b for b in ids if decisions.get(b) == "exclude"),
                "detail": (
                    f"own envelope from {n} released batches, and the recipe's {specs}"
                    if own
                    else f"the recipe's envelope across units ({n} released batches of the "
                    f"recipe on every unit, made unit-free by column size): {released} of "
                    f"{params.min_batches} released batches of its own so far; and the "
                    f"recipe's {specs}"
                    if kind == "cross_unit"
                    else f"specs only: {released} of {params.min_batches} released batches "
                    f"needed for an envelope; judged against the recipe's {specs}"
                ),
            }
        )
    return rows


def _drift_row(
    bid: str,
    g: BinnedBatches,
    d: SignalDrift,
    reference_batches: int,
    params: EnvelopeParams,
    envelope: str,
) -> dict[str, Any]:
    return {
        "batch_id": bid,
        "unit_id": g.unit_id,
        "recipe": g.recipe,
        "signal": d.signal,
        "verdict": d.verdict,
        "reference_batches": reference_batches,
        "envelope": envelope,
        "bins_judged": d.bins_judged,
        "bins_outside": d.bins_outside,
        "fraction_outside": _f(d.fraction_outside),
        "max_abs_z": _f(d.max_abs_z),
        "first_out_phase": d.first_out_key[1] if d.first_out_key else None,
        "first_out_phase_cv": (
            d.first_out_key[2] * params.bin_width_cv if d.first_out_key else None
        ),
        "first_out_cv": _f(d.first_out_cv),
        "alarm_cv": _f(d.alarm_cv),
        "alarm_phase": d.alarm_key[1] if d.alarm_key else None,
        "z_at_alarm": _f(d.z_at_alarm),
    }


def _drift_alarm(d: SignalDrift, params: EnvelopeParams, envelope: str = "own") -> Alarm:
    where = d.first_out_key[1] if d.first_out_key else "?"
    at = d.first_out_key[2] * params.bin_width_cv if d.first_out_key else float("nan")
    whose = "the envelope" if envelope == "own" else "the recipe's envelope across units"
    return Alarm(
        "drift",
        d.signal,
        d.alarm_key[1] if d.alarm_key else None,
        d.alarm_cv,
        "ERROR",
        f"{d.signal} outside {whose} from {where} phase CV {at:.1f} "
        f"(batch CV {d.first_out_cv:.2f}), max |z| {d.max_abs_z:.1f}",
    )


def _not_judged(
    wh: Warehouse,
    batches: list[dict[str, Any]],
    analyses: dict[str, BatchAnalysis],
    *,
    full: bool,
) -> dict[str, str | None]:
    """What each batch's record could not judge: from its analysis now, carried over from
    gold for the batches not analysed this run."""
    out: dict[str, str | None] = {}
    if not full and wh.table_exists(SCHEMA, GOLD_BATCH_VERDICT.name):
        for r in wh.query(f"select * from {GOLD_BATCH_VERDICT}"):
            out[r["batch_id"]] = r.get("not_judged")
    out.update({bid: a.not_judged() for bid, a in analyses.items()})
    return {b["batch_id"]: out.get(b["batch_id"]) for b in batches}


def _verdicts(
    batches: list[dict[str, Any]],
    batch_alarms: dict[str, list[Alarm]],
    drift: _DriftStage,
    not_judged: dict[str, str | None],
    res: AnalyticsResult,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each batch's alarms in CV order and its verdict (fail on an ERROR, warn on any other
    alarm, running while incomplete); fills res.verdicts and res.drifting."""
    alarm_rows: list[dict[str, Any]] = []
    verdict_rows: list[dict[str, Any]] = []
    for b in batches:
        bid = b["batch_id"]
        al = sorted(batch_alarms[bid], key=lambda x: np.nan_to_num(x.alarm_cv, nan=1e9))
        alarm_rows.extend(
            {"batch_id": bid, "unit_id": b["unit_id"], **x.record(), "alarm_cv": _f(x.alarm_cv)}
            for x in al
        )
        errors = [x for x in al if x.severity == "ERROR"]
        verdict = "fail" if errors else ("warn" if al else "pass")
        if b["status"] != "complete" and verdict == "pass":
            verdict = "running"
        res.verdicts[bid] = verdict
        if any(x.source == "drift" for x in al):
            res.drifting.append(bid)
        verdict_rows.append(
            {
                "batch_id": bid,
                "unit_id": b["unit_id"],
                "recipe": b["recipe"],
                "status": b["status"],
                "verdict": verdict,
                "released": bid in drift.released,
                "reference_batches": drift.reference_size.get(bid, 0),
                "envelope": drift.envelope_kind.get(bid, "none"),
                "alarm_count": len(al),
                "first_alarm_cv": _f(al[0].alarm_cv) if al else None,
                "first_alarm": f"{al[0].source}:{al[0].signal}" if al else None,
                "alarm_sources": ",".join(sorted({f"{x.source}:{x.signal}" for x in al})) or None,
                "not_judged": not_judged[bid],
            }
        )
    return alarm_rows, verdict_rows


def _nan(x: Any) -> float:
    return float(x) if x is not None else float("nan")


def _permeability_baselines(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per column: median permeability over its first PERMEABILITY_BASELINE_CYCLES cycles."""
    by_col: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["permeability_m2"] is not None and r["column_cycle"] is not None:
            by_col[r["column_id"]].append((int(r["column_cycle"]), float(r["permeability_m2"])))
    out = {}
    for col, xs in by_col.items():
        xs.sort()
        first = [k for _, k in xs[:PERMEABILITY_BASELINE_CYCLES]]
        if len(first) >= 3:
            out[col] = float(np.median(first))
    return out


def _write_readings_tables(
    wh: Warehouse,
    analyses: dict[str, BatchAnalysis],
    meta: dict[str, dict[str, Any]],
    units: dict[str, UnitInfo],
) -> None:
    if not analyses:
        return
    perf, peaks = [], []
    for bid, a in analyses.items():
        b = meta[bid]
        u = units[b["unit_id"]]
        common = {
            "batch_id": bid,
            "unit_id": b["unit_id"],
            "column_id": b["column_id"],
            "column_cycle": b["column_cycle"],
            "recipe": b["recipe"],
        }
        batch_level = {
            "batch_hetp_cm": _f(a.hetp_cm),
            "batch_plates": _f(a.plates),
            "batch_asymmetry": _f(a.asymmetry),
            "permeability_m2": _f(a.permeability_m2),
            "permeability_not_applicable": a.permeability_not_applicable,
            "hetp_limit_cm": u.qualified_hetp_cm * HETP_LIMIT_FACTOR,
            "asymmetry_limit": u.qualified_asymmetry + ASYMMETRY_LIMIT_ABOVE,
        }
        if not a.transitions and not a.not_applicable:
            perf.append({**common, "transition": None, **_no_transition(), **batch_level})
        for name, t in a.transitions.items():
            perf.append(
                {
                    **common,
                    "transition": name,
                    **{k: _f(v) for k, v in t.record().items()},
                    **batch_level,
                }
            )
        # said, never turned into an HETP
        perf.extend(
            {**common, "transition": name, **_no_transition(), **batch_level, "not_applicable": why}
            for name, why in a.not_applicable.items()
        )
        pk = a.peak.record() if a.peak else {}
        peaks.append(
            {
                **common,
                "retention_cv": _f(pk.get("retention_cv")),
                "peak_width_cv": _f(pk.get("width_cv")),
                "peak_asymmetry": _f(pk.get("asymmetry")),
                "peak_area_mau_cv": _f(pk.get("area_mau_cv")),
                "peak_max_mau": _f(pk.get("max_mau")),
                "dbc10_g_l": _f(a.dbc10_g_l),
                "breakthrough_alarm_cv": _f(a.breakthrough_alarm_cv),
                "_source_loaded_at": b["_source_loaded_at"],
            }
        )
    write_gold(wh, GOLD_COLUMN_PERFORMANCE, perf, PERF_SCHEMA, replace_key="batch_id")
    write_gold(wh, GOLD_BATCH_PEAKS, peaks, PEAKS_SCHEMA, replace_key="batch_id")


def _no_transition() -> dict[str, None]:
    return dict.fromkeys(("mean_cv", "variance_cv2", "plates", "hetp_cm", "asymmetry", "step"))


def write_gold(
    wh: Warehouse,
    table: Table,
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    replace_key: str | None = None,
) -> None:
    """Write a gold table the analytics compute: the whole table, or (`replace_key`) the
    rows of the keys in `rows`. No rows for an existing table by key: nothing to change."""
    if replace_key is not None and not rows and wh.table_exists(table.schema, table.name):
        return
    data = pa.Table.from_pylist(rows, schema=schema)
    wh.write_table(table.schema, table.name, data, replace_key=replace_key)


_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_BATCH = [("batch_id", _S), ("unit_id", _S)]
ENVELOPE_SCHEMA = pa.schema(
    [
        ("recipe", _S),
        ("unit_id", _S),
        ("phase_order", _I),
        ("phase", _S),
        ("cv_bin", _I),
        ("phase_cv_start", _F),
        ("signal", _S),
        ("n_batches", _I),
        ("mean", _F),
        ("std", _F),
        ("q05", _F),
        ("q50", _F),
        ("q95", _F),
        ("centre", _F),
        ("scale", _F),
        ("lower", _F),
        ("upper", _F),
        ("z_limit", _F),
    ]
)
DRIFT_SCHEMA = pa.schema(
    [
        *_BATCH,
        ("recipe", _S),
        ("signal", _S),
        ("verdict", _S),
        ("reference_batches", _I),
        ("envelope", _S),
        ("bins_judged", _I),
        ("bins_outside", _I),
        ("fraction_outside", _F),
        ("max_abs_z", _F),
        ("first_out_phase", _S),
        ("first_out_phase_cv", _F),
        ("first_out_cv", _F),
        ("alarm_cv", _F),
        ("alarm_phase", _S),
        ("z_at_alarm", _F),
    ]
)
ALARM_SCHEMA = pa.schema(
    [
        *_BATCH,
        ("source", _S),
        ("signal", _S),
        ("phase", _S),
        ("alarm_cv", _F),
        ("severity", _S),
        ("alarm_class", _S),
        ("detail", _S),
    ]
)
VERDICT_SCHEMA = pa.schema(
    [
        *_BATCH,
        ("recipe", _S),
        ("status", _S),
        ("verdict", _S),
        ("released", _B),
        ("reference_batches", _I),
        ("envelope", _S),
        ("alarm_count", _I),
        ("first_alarm_cv", _F),
        ("first_alarm", _S),
        ("alarm_sources", _S),
        ("not_judged", _S),
    ]
)
STATE_SCHEMA = pa.schema(
    [
        ("unit_id", _S),
        ("recipe", _S),
        ("state", _S),
        ("batches", _I),
        ("released_batches", _I),
        ("envelope_batches", _I),
        ("min_batches", _I),
        ("latest_batch_id", _S),
        ("spec_phases", _I),
        ("flow_spec_phases", _I),
        ("phases", _I),
        ("envelope_batch_ids", _S),
        ("pinned_batch_ids", _S),
        ("excluded_batch_ids", _S),
        ("detail", _S),
    ]
)
_BATCH_META = [*_BATCH, ("column_id", _S), ("column_cycle", _I), ("recipe", _S)]
PERF_SCHEMA = pa.schema(
    [
        *_BATCH_META,
        ("transition", _S),
        ("mean_cv", _F),
        ("variance_cv2", _F),
        ("plates", _F),
        ("hetp_cm", _F),
        ("asymmetry", _F),
        ("step", _F),
        ("batch_hetp_cm", _F),
        ("batch_plates", _F),
        ("batch_asymmetry", _F),
        ("permeability_m2", _F),
        ("permeability_not_applicable", _S),
        ("hetp_limit_cm", _F),
        ("asymmetry_limit", _F),
        ("not_applicable", _S),
    ]
)
PEAKS_SCHEMA = pa.schema(
    [
        *_BATCH_META,
        ("retention_cv", _F),
        ("peak_width_cv", _F),
        ("peak_asymmetry", _F),
        ("peak_area_mau_cv", _F),
        ("peak_max_mau", _F),
        ("dbc10_g_l", _F),
        ("breakthrough_alarm_cv", _F),
        ("_source_loaded_at", pa.timestamp("us")),
    ]
)
