"""What the analytics and the checks read from the warehouse in the same shape: master data
(units, recipe phases) and a batch's readings as the verdict judges them, with the deadbands
its record was compressed with. One reader each, so the batch verdict and the checks that
restate its rules (quality.py) never judge different data."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chrom_platform.lib.analytics.batch_metrics import BatchReadings, PhaseInfo, UnitInfo
from chrom_platform.lib.analytics.envelope import EnvelopeParams
from chrom_platform.lib.analytics.scans import record_deadbands
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY, ENVELOPE_SETTINGS, Accuracy
from chrom_platform.lib.core.tables import (
    GOLD_TREND_BY_CV,
    SILVER_BATCHES,
    SILVER_RECIPE_PHASES,
    SILVER_RECIPES,
    SILVER_UNITS,
)
from chrom_platform.lib.io.warehouse import Warehouse


def units(wh: Warehouse) -> dict[str, UnitInfo]:
    out = {}
    for u in wh.query(f"select * from {SILVER_UNITS}"):
        d = float(u["column_diameter_cm"])
        out[u["unit_id"]] = UnitInfo(
            unit_id=u["unit_id"],
            column_id=u["column_id"],
            bed_height_cm=float(u["bed_height_cm"]),
            area_cm2=np.pi * d * d / 4.0,
            column_volume_l=float(u["column_volume_l"]),
            system_bar_per_lpm=float(u["system_pressure_bar_per_lpm"] or 0.0),
            uv_max_mau=float(u["uv_max_mau"]),
            uv_path_length_cm=float(u["uv_path_length_cm"]),
            qualified_hetp_cm=float(u["qualified_hetp_cm"]),
            qualified_asymmetry=float(u["qualified_asymmetry"]),
            accuracy=instrument_accuracy(u.get("instrument_accuracy")),
        )
    return out


def instrument_accuracy(text: str | None) -> dict[str, Accuracy]:
    """silver_units.instrument_accuracy (the landed snapshot's JSON, validated when it was
    landed) over the platform's defaults; the defaults alone for a snapshot landed before
    units declared it."""
    out = dict(DEFAULT_ACCURACY)
    for signal, a in (json.loads(text) if text else {}).items():
        out[signal] = Accuracy(float(a["absolute"]), float(a.get("of_reading") or 0.0))
    return out


def recipe_phases(wh: Warehouse) -> dict[str, dict[str, PhaseInfo]]:
    out: dict[str, dict[str, PhaseInfo]] = defaultdict(dict)
    rows = wh.query(f"select * from {SILVER_RECIPE_PHASES} order by recipe, phase_order")

    def rng(lo: float | None, hi: float | None) -> tuple[float, float] | None:
        return None if lo is None or hi is None else (float(lo), float(hi))

    for r in rows:
        tol = r.get("flow_tolerance_pct")
        out[r["recipe"]][r["phase"]] = PhaseInfo(
            int(r["phase_order"]),
            float(r["buffer_viscosity_mpa_s"]),
            r["phase_kind"],
            float(r.get("gradient_cv") or 0.0),
            velocity_cm_h=float(r["velocity_cm_h"]),
            flow_tolerance=None if tol is None else float(tol) / 100.0,
            cond_range=rng(r.get("buffer_cond_min_ms_cm"), r.get("buffer_cond_max_ms_cm")),
            ph_range=rng(r.get("buffer_ph_min"), r.get("buffer_ph_max")),
        )
    return dict(out)


def deadbands_by_batch(wh: Warehouse, batch_ids: list[str]) -> dict[str, dict[str, float]]:
    """Batch -> signal -> the deadband its record was compressed with (silver_batches), for
    the batches among `batch_ids` whose record is compressed."""
    if not batch_ids:
        return {}
    marks = ", ".join("?" * len(batch_ids))
    return {
        r["batch_id"]: record_deadbands(r["record_deadbands"])
        for r in wh.query(
            f"select batch_id, record_deadbands from {SILVER_BATCHES} "
            f"where batch_id in ({marks}) and record_deadbands is not null",
            batch_ids,
        )
    }


def batch_readings(wh: Warehouse, batch_ids: list[str]) -> dict[str, BatchReadings]:
    if not batch_ids:
        return {}
    marks = ", ".join("?" * len(batch_ids))
    t = wh.query_arrow(
        "select batch_id, ts, phase, batch_cv, phase_cv, is_hold, "
        f"{', '.join(SIGNALS)} from {GOLD_TREND_BY_CV} where batch_id in ({marks}) "
        "order by batch_id, ts",
        batch_ids,
    )
    bid = t.column("batch_id").to_numpy(zero_copy_only=False).astype(str)
    ts = pc.cast(t.column("ts"), pa.timestamp("ns")).cast(pa.int64()).to_numpy()
    phase = t.column("phase").to_numpy(zero_copy_only=False).astype(str)
    cols = {c: t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in SIGNALS}
    bcv = t.column("batch_cv").to_numpy(zero_copy_only=False).astype(np.float64)
    pcv = t.column("phase_cv").to_numpy(zero_copy_only=False).astype(np.float64)
    hold = t.column("is_hold").to_numpy(zero_copy_only=False).astype(bool)
    deadbands = deadbands_by_batch(wh, batch_ids)
    out = {}
    cut = np.flatnonzero(np.r_[True, bid[1:] != bid[:-1], True])
    for a, b in itertools.pairwise(cut):
        out[bid[a]] = BatchReadings(
            batch_id=bid[a],
            ts_ns=ts[a:b],
            phase=phase[a:b],
            batch_cv=bcv[a:b],
            phase_cv=pcv[a:b],
            is_hold=hold[a:b],
            signals={c: v[a:b] for c, v in cols.items()},
            deadbands=deadbands.get(bid[a], {}),
        )
    return out


def recipe_settings(
    wh: Warehouse, section: str, spec: Mapping[str, tuple[bool, float, float]]
) -> dict[str, dict[str, Any]]:
    """Recipe -> the settings of one section of its master data (`envelope`, `multivariate`:
    master_data.ENVELOPE_SETTINGS, MULTIVARIATE_SETTINGS) it gives, from silver_recipes'
    `<section>_<name>` columns, typed as master data types them; absent ones left out."""
    return {
        str(r["recipe"]): {
            name: int(float(r[col])) if whole else float(r[col])
            for name, (whole, _, _) in spec.items()
            if r.get(col := f"{section}_{name}") is not None
        }
        for r in wh.query(f"select * from {SILVER_RECIPES}")
    }


def envelope_params(wh: Warehouse, base: EnvelopeParams) -> dict[str, EnvelopeParams]:
    """Recipe -> how its envelope judges: `base` (the platform's defaults) with what recipe
    master data sets."""
    return {
        recipe: replace(base, **given)
        for recipe, given in recipe_settings(wh, "envelope", ENVELOPE_SETTINGS).items()
    }
