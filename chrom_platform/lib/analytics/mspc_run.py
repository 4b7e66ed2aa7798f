"""The multivariate monitor over the warehouse: models, per-bin statistics and verdicts.

Per recipe and unit (flow and pressure scale with the column, so a model is the unit's),
batches are walked in start order, as the platform would have met them: each batch is
scored against the model of the batches eligible before it, and is eligible itself when
the platform released it (gold_batch_verdict: no drift, no process or data finding) and
the multivariate monitor found nothing either, or engineers pinned it. A model is refitted
once `refit_every` new eligible batches have come in (a plant refits as batches are
released: the column's fouling trend would otherwise read as a fault in every later
batch), on the newest `window` of them. A run resumes at the first batch it has not
judged before (or whose status or release changed), so it costs the new batches.

Tables (gold): gold_mspc_models (each unit and recipe's current model: version, components,
the batches it is built from), gold_mspc_limits (its T2 and per-signal SPE limits by CV
bin), gold_mspc_scores (per batch and bin: T2, SPE per signal, their limits and each
signal's share of T2) and gold_mspc_verdict (per batch: alarm / pass / no_model, where the
alarm fired, its statistic and top-3 signals). The current models go to the landing store
too (MODEL_KEY), where the live bridge scores each bin as it completes.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chrom_platform.lib.analytics import mspc
from chrom_platform.lib.analytics.envelope import BinnedBatches, Floor
from chrom_platform.lib.analytics.pipeline import (
    binned_groups,
    decisions_of,
    unit_floor,
    write_gold,
)
from chrom_platform.lib.analytics.reads import recipe_phases, recipe_settings, units
from chrom_platform.lib.core.master_data import MULTIVARIATE_SETTINGS
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_MSPC_LIMITS,
    GOLD_MSPC_MODELS,
    GOLD_MSPC_SCORES,
    GOLD_MSPC_VERDICT,
    MSPC_TABLES,
)
from chrom_platform.lib.io.warehouse import Warehouse

SCHEMA = "gold"
TABLES = MSPC_TABLES
TOP = 3


@dataclass(frozen=True)
class MspcRunParams:
    model: mspc.MspcParams = field(default_factory=mspc.MspcParams)
    window: int = 40
    refit_every: int = 5
    #: this many batches in a row that the platform released (no finding of the envelope,
    #: specifications or results) but the model alarmed on: the process has moved where
    #: the model has not (resin ageing, a new buffer lot), so they enter its reference and
    #: it is refitted. Without it a unit's model stays stuck red: 21 of 24 batches alarmed
    #: on one held-out unit, good and faulty alike, its reference never growing again.
    follow_after: int = 2


@dataclass
class MspcRunResult:
    batches: int = 0
    judged: int = 0
    models_fitted: int = 0
    alarms: list[str] = field(default_factory=list)
    current: dict[tuple[str, str], mspc.MspcModel] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "judged": self.judged,
            "models_fitted": self.models_fitted,
            "current_models": len(self.current),
            "alarming_batches": len(self.alarms),
            "seconds": round(self.seconds, 2),
        }


def run(wh: Warehouse, params: MspcRunParams | None = None, *, full: bool = False) -> MspcRunResult:
    params = params or MspcRunParams()
    t0 = time.perf_counter()
    res = MspcRunResult()
    batches = wh.query(
        f"select batch_id, unit_id, recipe, status, started_at from {GOLD_BATCH_RESULTS} "
        "order by started_at nulls last, batch_id"
    )
    res.batches = len(batches)
    released = {
        r["batch_id"]: bool(r["released"])
        for r in wh.query(f"select batch_id, released from {GOLD_BATCH_VERDICT}")
    }
    status = {b["batch_id"]: b["status"] for b in batches}
    pinned = {b for b, say in decisions_of(wh, (), ()).items() if say == "pin"}
    prev: dict[str, dict[str, Any]] = {}
    if not full and wh.table_exists(SCHEMA, GOLD_MSPC_VERDICT.name):
        prev = {r["batch_id"]: r for r in wh.query(f"select * from {GOLD_MSPC_VERDICT}")}
    verdict_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    by_recipe = recipe_params(wh, params)
    unit_info = units(wh)
    for g in binned_groups(wh, batches, recipe_phases(wh)):
        group_params = by_recipe.get(g.recipe, params)
        rows, bins = judge_group(
            g,
            group_params,
            res,
            floor=unit_floor(unit_info, g.unit_id, group_params.model.signals),
            status=status,
            released=released,
            pinned=pinned,
            prev=prev,
        )
        verdict_rows += rows
        score_rows += bins
    by_batch = None if full else "batch_id"
    write_gold(wh, GOLD_MSPC_VERDICT, verdict_rows, VERDICT_SCHEMA, by_batch)
    write_gold(wh, GOLD_MSPC_SCORES, score_rows, SCORE_SCHEMA, by_batch)
    models = list(res.current.values())
    write_gold(wh, GOLD_MSPC_MODELS, [_model_row(m) for m in models], MODEL_SCHEMA)
    write_gold(wh, GOLD_MSPC_LIMITS, [r for m in models for r in _limit_rows(m)], LIMIT_SCHEMA)
    res.seconds = time.perf_counter() - t0
    return res


#: the multivariate settings that belong to the model (the rest to the walk around it)
_MODEL_SETTINGS = ("min_batches", "mature_batches", "batch_false_alarm", "persistence")


def recipe_params(wh: Warehouse, base: MspcRunParams) -> dict[str, MspcRunParams]:
    """Recipe -> how its multivariate model judges: `base` (the platform's defaults) with
    what recipe master data sets."""
    out = {}
    for recipe, given in recipe_settings(wh, "multivariate", MULTIVARIATE_SETTINGS).items():
        model = {k: v for k, v in given.items() if k in _MODEL_SETTINGS}
        walk = {k: v for k, v in given.items() if k not in _MODEL_SETTINGS}
        out[recipe] = replace(base, model=replace(base.model, **model), **walk)
    return out


def judge_group(
    g: BinnedBatches,
    params: MspcRunParams,
    res: MspcRunResult,
    *,
    floor: Floor,
    status: dict[str, str],
    released: dict[str, bool],
    pinned: set[str],
    prev: dict[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One unit and recipe's batches walked in start order from the first not judged
    before (or whose status or release changed): each judged by the model of the eligible
    batches before it, scaled no finer than the unit's instruments (`floor`). Returns verdict rows (earlier rows whose eligibility changed among
    them) and score rows; the current model goes to `res.current`."""
    verdict_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    start = next(
        (
            i
            for i, b in enumerate(g.batch_ids)
            if b not in prev
            or prev[b]["status"] != status[b]
            or bool(prev[b]["released"]) != released.get(b, False)
        ),
        len(g.batch_ids),
    )
    eligible = [i for i in range(start) if prev[g.batch_ids[i]]["eligible"]]
    # the run of released batches the model alarmed on that ends where this run starts
    streak: list[dict[str, Any]] = []
    for i in range(start - 1, -1, -1):
        if not _outvoted(prev[g.batch_ids[i]]):
            break
        streak.insert(0, prev[g.batch_ids[i]])
    walk = _Walk(g, params, res, floor)
    for i in range(start, len(g.batch_ids)):
        bid = g.batch_ids[i]
        model = walk.model_for(eligible[-params.window :])
        row, bins = _judge(g, i, model, walk)
        ok = row["verdict"] != "alarm" or bid in pinned
        row.update(
            status=status[bid],
            released=released.get(bid, False),
            eligible=bool(released.get(bid, False) and ok and status[bid] == "complete")
            or bid in pinned,
        )
        streak = [*streak, row] if _outvoted(row) else []
        if len(streak) >= params.follow_after:
            for r in streak:  # earlier ones may be rows of an earlier run: rewritten
                r["eligible"] = True
                r["detail"] += (
                    f"; admitted to the model: {len(streak)} released batches in a row "
                    "alarmed, the process has moved"
                )
                if r["batch_id"] in prev and r is prev[r["batch_id"]]:
                    verdict_rows.append(r)
            eligible = sorted({*eligible, *(g.batch_ids.index(r["batch_id"]) for r in streak)})
            walk.refit = True
            streak = []
        elif row["eligible"]:
            eligible.append(i)
        if row["verdict"] == "alarm":
            res.alarms.append(bid)
        verdict_rows.append(row)
        score_rows.extend(bins)
        res.judged += 1
    current = walk.model_for(eligible[-params.window :])
    if current is not None:
        res.current[(g.unit_id, g.recipe)] = current
    return verdict_rows, score_rows


class _Walk:
    """The model a group's batches are judged by, refitted as eligible batches come in."""

    def __init__(
        self, g: BinnedBatches, params: MspcRunParams, res: MspcRunResult, floor: Floor
    ) -> None:
        self.g, self.params, self.res, self.floor = g, params, res, floor
        self.model: mspc.MspcModel | None = None
        self.ref: list[int] = []
        #: refit at the next batch whatever the cadence (the model follows the process)
        self.refit = False

    def model_for(self, ref: list[int]) -> mspc.MspcModel | None:
        if len(ref) < self.params.model.min_batches:
            return None
        new = len(set(ref) - set(self.ref))
        if self.model is None or new >= self.params.refit_every or (self.refit and new):
            self.refit = False
            self.model = mspc.fit(self.g, ref, self.params.model, self.floor)
            self.ref = list(ref)
            self.res.models_fitted += 1
        return self.model


def _outvoted(row: dict[str, Any]) -> bool:
    """A batch the platform released but the model alarmed on and kept out."""
    return (
        row["verdict"] == "alarm"
        and bool(row["released"])
        and row["status"] == "complete"
        and not row["eligible"]
    )


def verdict_severity(model: mspc.MspcModel | None, verdict: str) -> str | None:
    """What the check shows for a batch: a mature model's alarm fails it; a young model's
    alarm, or no model at all, is a warning (said, never passed)."""
    if verdict == "pass":
        return None
    if verdict == "alarm" and model is not None:
        return "ERROR" if len(model.batch_ids) >= model.params.mature_batches else "WARN"
    return "WARN"


def _judge(
    g: BinnedBatches, i: int, model: mspc.MspcModel | None, walk: _Walk
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bid = g.batch_ids[i]
    base = {"batch_id": bid, "unit_id": g.unit_id, "recipe": g.recipe}
    if model is None:
        return {
            **base,
            "verdict": "no_model",
            "severity": verdict_severity(None, "no_model"),
            "model_version": None,
            "reference_batches": len(walk.ref) if walk.model else 0,
            "bins_judged": 0,
            "detail": f"fewer than {walk.params.model.min_batches} eligible batches before it",
        }, []
    values, cvs = model.batch(g, i)
    trace = model.score(values)
    j = mspc.judge(model, trace, cvs)
    rt, rs = mspc.ratios(model, trace)
    contrib = mspc.t2_contributions(model, trace)
    with np.errstate(invalid="ignore", divide="ignore"):
        spe_ratio = trace.spe / model.spe_limit
    bins = []
    for k in np.flatnonzero(trace.observed):
        order, phase, cv_bin = model.keys[k]
        r: dict[str, Any] = {
            **base,
            "model_version": model.version,
            "phase_order": order,
            "phase": phase,
            "cv_bin": cv_bin,
            "batch_cv": _f(cvs[k]),
            "t2": _f(trace.t2[k]),
            "t2_limit": _f(model.t2_limit[k]),
            "spe_ratio": _f(rs[k]),
            "ratio": _f(max(rt[k], rs[k])),
            "outside": bool(max(rt[k], rs[k]) > 1.0),
        }
        for jj, s in enumerate(model.signals):
            r[f"spe_{s}"] = _f(trace.spe[k, jj])
            r[f"spe_limit_{s}"] = _f(model.spe_limit[k, jj])
            r[f"spe_ratio_{s}"] = _f(spe_ratio[k, jj])
            r[f"t2_share_{s}"] = _f(contrib[k, jj] / trace.t2[k]) if trace.t2[k] > 0 else None
        bins.append(r)
    row: dict[str, Any] = {
        **base,
        "verdict": j.verdict,
        "severity": verdict_severity(model, j.verdict),
        "model_version": model.version,
        "reference_batches": len(model.batch_ids),
        "bins_judged": j.bins_judged,
        "max_ratio": _f(j.max_ratio),
    }
    if j.alarm is not None:
        a = j.alarm
        top = a.top(TOP)
        row.update(
            alarm_phase=a.key[1],
            alarm_cv_bin=a.key[2],
            alarm_cv=_f(a.batch_cv),
            alarm_statistic=a.statistic,
            alarm_ratio=_f(a.ratio),
            top_signals=",".join(top),
            contributions=json.dumps({s: round(v, 4) for s, v in a.contributions.items()}),
            detail=(
                f"{a.statistic.upper()} {a.ratio:.1f}x its limit from {a.key[1]} "
                f"(batch CV {a.batch_cv:.2f}); top: "
                + ", ".join(f"{s} {100 * a.contributions[s]:.0f}%" for s in top)
                + (
                    f"; a young model ({len(model.batch_ids)} of the "
                    f"{model.params.mature_batches} reference batches a mature one has): a "
                    "warning"
                    if row["severity"] == "WARN"
                    else ""
                )
            ),
        )
    else:
        row["detail"] = f"inside the limits of model {model.version} in all {j.bins_judged} bins"
    return row, bins


def _f(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _model_row(m: mspc.MspcModel) -> dict[str, Any]:
    return {
        "unit_id": m.unit_id,
        "recipe": m.recipe,
        "model_version": m.version,
        "components": m.components,
        "explained_variance": float(np.sum(m.explained)),
        "reference_batches": len(m.batch_ids),
        "reference_batch_ids": json.dumps(m.batch_ids),
        "bins": len(m.keys),
        "alpha": m.params.alpha,
        "persistence": m.params.persistence,
        "trained_at": datetime.now(UTC).replace(tzinfo=None),
    }


def _limit_rows(m: mspc.MspcModel) -> list[dict[str, Any]]:
    rows = []
    for k, (order, phase, cv_bin) in enumerate(m.keys):
        r: dict[str, Any] = {
            "unit_id": m.unit_id,
            "recipe": m.recipe,
            "model_version": m.version,
            "phase_order": order,
            "phase": phase,
            "cv_bin": cv_bin,
            "phase_cv_start": cv_bin * m.params.bin_width_cv,
            "t2_limit": _f(m.t2_limit[k]),
        }
        for j, s in enumerate(m.signals):
            r[f"spe_limit_{s}"] = _f(m.spe_limit[k, j])
        rows.append(r)
    return rows


def models_bytes(models: list[mspc.MspcModel]) -> bytes:
    """The current models for the live bridge: one Parquet row per model bin."""
    cols: dict[str, list[Any]] = {
        c: []
        for c in (
            "unit_id",
            "recipe",
            "model_version",
            "phase",
            "cv_bin",
            "components",
            "persistence",
            "spe_window",
            "mean",
            "scale",
            "loadings",
            "tsr",
            "score_cov_inv",
            "t2_limit",
            "spe_limit",
        )
    }
    for m in models:
        for k, (_, phase, cv_bin) in enumerate(m.keys):
            cols["unit_id"].append(m.unit_id)
            cols["recipe"].append(m.recipe)
            cols["model_version"].append(m.version)
            cols["phase"].append(phase)
            cols["cv_bin"].append(cv_bin)
            cols["components"].append(m.components)
            cols["persistence"].append(m.params.persistence)
            cols["spe_window"].append(m.params.spe_window)
            cols["mean"].append(m.mean[k].tolist())
            cols["scale"].append(m.scale[k].tolist())
            cols["loadings"].append(m.loadings[k].ravel().tolist())
            cols["tsr"].append(m.tsr[k].ravel().tolist())
            cols["score_cov_inv"].append(m.score_cov_inv[k].ravel().tolist())
            cols["t2_limit"].append(float(m.t2_limit[k]))
            cols["spe_limit"].append(m.spe_limit[k].tolist())
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    return buf.getvalue()


_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_SIGNALS = mspc.MspcParams().signals
VERDICT_SCHEMA = pa.schema(
    [
        ("batch_id", _S),
        ("unit_id", _S),
        ("recipe", _S),
        ("status", _S),
        ("verdict", _S),
        ("severity", _S),
        ("model_version", _S),
        ("reference_batches", _I),
        ("bins_judged", _I),
        ("max_ratio", _F),
        ("alarm_phase", _S),
        ("alarm_cv_bin", _I),
        ("alarm_cv", _F),
        ("alarm_statistic", _S),
        ("alarm_ratio", _F),
        ("top_signals", _S),
        ("contributions", _S),
        ("detail", _S),
        ("released", _B),
        ("eligible", _B),
    ]
)
SCORE_SCHEMA = pa.schema(
    [
        ("batch_id", _S),
        ("unit_id", _S),
        ("recipe", _S),
        ("model_version", _S),
        ("phase_order", _I),
        ("phase", _S),
        ("cv_bin", _I),
        ("batch_cv", _F),
        ("t2", _F),
        ("t2_limit", _F),
        ("spe_ratio", _F),
        ("ratio", _F),
        ("outside", _B),
        *[
            (f"{p}_{s}", _F)
            for s in _SIGNALS
            for p in ("spe", "spe_limit", "spe_ratio", "t2_share")
        ],
    ]
)
MODEL_SCHEMA = pa.schema(
    [
        ("unit_id", _S),
        ("recipe", _S),
        ("model_version", _S),
        ("components", _I),
        ("explained_variance", _F),
        ("reference_batches", _I),
        ("reference_batch_ids", _S),
        ("bins", _I),
        ("alpha", _F),
        ("persistence", _I),
        ("trained_at", pa.timestamp("us")),
    ]
)
LIMIT_SCHEMA = pa.schema(
    [
        ("unit_id", _S),
        ("recipe", _S),
        ("model_version", _S),
        ("phase_order", _I),
        ("phase", _S),
        ("cv_bin", _I),
        ("phase_cv_start", _F),
        ("t2_limit", _F),
        *[(f"spe_limit_{s}", _F) for s in _SIGNALS],
    ]
)
