"""Scoring the platform's verdicts against the simulator's ground truth (`chrom evaluate`).

Only this module reads the truth, and only after the pipeline has run. A faulty batch is
detected when the platform raised an alarm that points at the fault, at or after its onset:

| fault kind | alarms that count |
|---|---|
| ph_drift | drift of pH |
| pressure_rise | drift of pressure, bed permeability below its baseline |
| early_breakthrough | load breakthrough, drift of UV, step yield low |
| packing_degradation | HETP/asymmetry beyond limits, drift of conductivity, pH or UV |
| wrong_buffer | drift of conductivity |
| pump_fault | drift of flow or pressure |
| sensor_flatline | flatline of the frozen signal |
| sensor_dropout | gap in the readings |

Detection delay is the batch CV of the first such alarm minus the onset's batch CV. A false
alarm is any alarm on a batch without a fault. Batches judged before their unit had
`min_batches` released batches (no envelope yet: the warm-up) are reported but not scored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: (source, signal) pairs that count as detecting each fault kind; None = any signal
MATCHING_ALARMS: dict[str, set[tuple[str, str | None]]] = {
    "ph_drift": {("drift", "ph"), ("spec", "ph")},
    "pressure_rise": {("drift", "pressure_bar"), ("column", "permeability")},
    "early_breakthrough": {
        ("breakthrough", "uv_mau"),
        ("drift", "uv_mau"),
        ("result", "step_yield_low"),
    },
    "packing_degradation": {
        ("column", "hetp"),
        ("column", "asymmetry"),
        ("drift", "cond_ms_cm"),
        ("drift", "ph"),
        ("drift", "uv_mau"),
    },
    "wrong_buffer": {("drift", "cond_ms_cm"), ("spec", "cond_ms_cm"), ("spec", "ph")},
    "pump_fault": {("drift", "flow_lpm"), ("drift", "pressure_bar"), ("spec", "flow_lpm")},
    "sensor_flatline": {("flatline", None)},
    "sensor_dropout": {("gap", None)},
}
#: an alarm this far (CV) before the truth's onset still counts: onsets of parameter faults
#: are defined at a 2% departure, which bin means can resolve slightly earlier
ONSET_TOLERANCE_CV = 0.1

TARGETS = {
    "recall": 0.95,
    "false_alarm_rate": 0.02,
    "median_delay_cv": 0.5,
    "hetp_error": 0.05,
    "asymmetry_error": 0.10,
    "step_yield_error_pp": 1.0,
}


def _matches(kind: str, fault: dict[str, Any], alarm: dict[str, Any]) -> bool:
    for source, signal in MATCHING_ALARMS[kind]:
        if alarm["source"] != source:
            continue
        if signal is None:
            if kind == "sensor_flatline" and alarm["signal"] not in fault["signals"]:
                continue
            return True
        # a column alarm names every limit it tripped: "hetp,asymmetry"
        if signal in str(alarm["signal"]).split(","):
            return True
    return False


@dataclass
class Score:
    batches: int = 0
    warm_up: int = 0
    scored_faulty: int = 0
    scored_clean: int = 0
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    recall: float = float("nan")
    false_alarm_rate: float = float("nan")
    false_alarms: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    median_delay_cv: float = float("nan")
    hetp_error_max: float = float("nan")
    hetp_error_p95: float = float("nan")
    hetp_error_packing_max: float = float("nan")
    asymmetry_error_max: float = float("nan")
    asymmetry_error_p95: float = float("nan")
    asymmetry_error_packing_max: float = float("nan")
    step_yield_error_pp_max: float = float("nan")
    step_yield_error_pp_p95: float = float("nan")
    #: the platform's own part: gold's yield against the truth's pool and load volumes with
    #: the same lab results gold used (the lab's assay error, 0.25% per result, left out)
    step_yield_error_pp_platform_max: float = float("nan")
    #: the lab's part: the truth's pool and load volumes with the lab's results against the
    #: true yield, the error of any platform that computes both volumes exactly
    step_yield_error_pp_lab_max: float = float("nan")
    step_yield_batches: int = 0
    step_yield_saturated: int = 0
    #: fault-free batches the platform failed (an ERROR alarm): what an engineer must chase
    fail_verdict_rate: float = float("nan")
    #: unit and recipe -> the batch index (1-based) first judged against an own envelope
    envelope_from: dict[str, int | None] = field(default_factory=dict)
    #: faulty batches judged before their unit had an envelope (cold start: specifications
    #: and the reading-level checks alone), per fault kind: batches, detected, recall
    cold_start: dict[str, dict[str, Any]] = field(default_factory=dict)

    def passed(self) -> dict[str, bool]:
        return {
            "recall": self.recall >= TARGETS["recall"],
            "false_alarm_rate": self.false_alarm_rate <= TARGETS["false_alarm_rate"],
            "median_delay_cv": self.median_delay_cv <= TARGETS["median_delay_cv"],
            "hetp_error": self.hetp_error_max <= TARGETS["hetp_error"],
            "asymmetry_error": self.asymmetry_error_max <= TARGETS["asymmetry_error"],
            "step_yield_error_pp": self.step_yield_error_pp_max <= TARGETS["step_yield_error_pp"],
        }

    def record(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "warm_up_batches": self.warm_up,
            "scored_faulty": self.scored_faulty,
            "scored_fault_free": self.scored_clean,
            "recall": _r(self.recall),
            "false_alarm_rate": _r(self.false_alarm_rate),
            "median_delay_cv": _r(self.median_delay_cv),
            "hetp_error_max": _r(self.hetp_error_max),
            "hetp_error_p95": _r(self.hetp_error_p95),
            "hetp_error_packing_faults_max": _r(self.hetp_error_packing_max),
            "asymmetry_error_max": _r(self.asymmetry_error_max),
            "asymmetry_error_p95": _r(self.asymmetry_error_p95),
            "asymmetry_error_packing_faults_max": _r(self.asymmetry_error_packing_max),
            "step_yield_error_pp_max": _r(self.step_yield_error_pp_max),
            "step_yield_error_pp_p95": _r(self.step_yield_error_pp_p95),
            "step_yield_error_pp_platform_max": _r(self.step_yield_error_pp_platform_max),
            "step_yield_error_pp_lab_max": _r(self.step_yield_error_pp_lab_max),
            "step_yield_batches": self.step_yield_batches,
            "step_yield_uv_saturated_left_out": self.step_yield_saturated,
            "fail_verdict_rate_fault_free": _r(self.fail_verdict_rate),
            "envelope_from_batch": self.envelope_from,
            "cold_start": self.cold_start,
            "per_kind": self.per_kind,
            "passed": self.passed(),
            "all_passed": all(self.passed().values()),
            "false_alarms": self.false_alarms,
            "missed": self.missed,
        }


def _r(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def score(
    truth: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    performance: list[dict[str, Any]],
    results: list[dict[str, Any]],
    *,
    min_batches: int,
) -> Score:
    """Compare the analytics tables with the truth (batches.jsonl records)."""
    s = Score(batches=len(truth))
    verdict = {v["batch_id"]: v for v in verdicts}
    by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alarms:
        by_batch[a["batch_id"]].append(a)
    delays: list[float] = []
    kinds: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"batches": 0, "detected": 0, "delays_cv": []}
    )
    clean_flagged = clean_failed = 0
    order: dict[str, int] = defaultdict(int)
    for t in truth:
        key = f"{t.get('unit_id')} / {t.get('recipe')}"
        order[key] += 1
        s.envelope_from.setdefault(key, None)
        v0 = verdict.get(t["batch_id"])
        if s.envelope_from[key] is None and v0 and v0["reference_batches"] >= min_batches:
            s.envelope_from[key] = order[key]
        bid = t["batch_id"]
        v = verdict.get(bid)
        if v is None or v["reference_batches"] < min_batches:
            s.warm_up += 1
            if t["fault"] is not None:
                c = s.cold_start.setdefault(t["fault"]["kind"], {"batches": 0, "detected": 0})
                c["batches"] += 1
                onset = float(t["fault"]["onset_batch_cv"])
                c["detected"] += any(
                    _matches(t["fault"]["kind"], t["fault"], a)
                    and (a["alarm_cv"] is None or a["alarm_cv"] >= onset - ONSET_TOLERANCE_CV)
                    for a in by_batch.get(bid, [])
                )
            continue
        fault = t["fault"]
        found = by_batch.get(bid, [])
        if fault is None:
            s.scored_clean += 1
            clean_failed += v.get("verdict") == "fail"
            if found:
                clean_flagged += 1
                s.false_alarms.append(
                    {"batch_id": bid, "alarms": [f"{a['source']}:{a['signal']}" for a in found]}
                )
            continue
        s.scored_faulty += 1
        k = kinds[fault["kind"]]
        k["batches"] += 1
        onset = float(fault["onset_batch_cv"])
        hits = [
            a
            for a in found
            if _matches(fault["kind"], fault, a)
            and (a["alarm_cv"] is None or a["alarm_cv"] >= onset - ONSET_TOLERANCE_CV)
        ]
        if hits:
            k["detected"] += 1
            cvs = [a["alarm_cv"] for a in hits if a["alarm_cv"] is not None]
            if cvs:
                d = max(0.0, min(cvs) - onset)
                k["delays_cv"].append(d)
                delays.append(d)
        else:
            s.missed.append(
                {
                    "batch_id": bid,
                    "kind": fault["kind"],
                    "phase": fault["phase"],
                    "onset_batch_cv": round(onset, 3),
                    "magnitude": fault["magnitude"],
                    "alarms": [f"{a['source']}:{a['signal']}@{a['alarm_cv']}" for a in found],
                }
            )
    for c in s.cold_start.values():
        c["recall"] = round(c["detected"] / c["batches"], 4)
    s.cold_start = dict(sorted(s.cold_start.items()))
    for name, k in sorted(kinds.items()):
        d = k.pop("delays_cv")
        k["recall"] = round(k["detected"] / k["batches"], 4) if k["batches"] else None
        k["median_delay_cv"] = round(float(np.median(d)), 3) if d else None
        s.per_kind[name] = k
    total = sum(k["batches"] for k in s.per_kind.values())
    s.recall = sum(k["detected"] for k in s.per_kind.values()) / total if total else float("nan")
    s.false_alarm_rate = clean_flagged / s.scored_clean if s.scored_clean else float("nan")
    s.fail_verdict_rate = clean_failed / s.scored_clean if s.scored_clean else float("nan")
    s.median_delay_cv = float(np.median(delays)) if delays else float("nan")

    # -- column performance and yield against the truth of every batch --------------------
    truth_by = {t["batch_id"]: t for t in truth}
    hetp_err, as_err, hetp_pack, as_pack = [], [], [], []
    seen = set()
    for p in performance:
        bid = p["batch_id"]
        if bid in seen or p["batch_hetp_cm"] is None or bid not in truth_by:
            continue
        seen.add(bid)
        t = truth_by[bid]
        he = abs(p["batch_hetp_cm"] / t["hetp_cm"] - 1)
        ae = abs(p["batch_asymmetry"] / t["asymmetry"] - 1) if p["batch_asymmetry"] else np.nan
        hetp_err.append(he)
        as_err.append(ae)
        if t["fault"] and t["fault"]["kind"] == "packing_degradation":
            hetp_pack.append(he)
            as_pack.append(ae)
    if hetp_err:
        s.hetp_error_max = float(np.max(hetp_err))
        s.hetp_error_p95 = float(np.percentile(hetp_err, 95))
        s.asymmetry_error_max = float(np.nanmax(as_err))
        s.asymmetry_error_p95 = float(np.nanpercentile(as_err, 95))
    if hetp_pack:
        s.hetp_error_packing_max = float(np.max(hetp_pack))
        s.asymmetry_error_packing_max = float(np.nanmax(as_pack))
    # step yield: batches whose pool the truth and gold both found, and whose readings were
    # not disturbed in a way that makes gold rightly differ from the undisturbed truth
    disturbing = {"sensor_dropout", "sensor_flatline", "pump_fault"}
    ye, own, lab = [], [], []
    for r in results:
        tb = truth_by.get(r["batch_id"])
        if tb is None or r["step_yield"] is None or "step_yield" not in tb:
            continue
        if tb["fault"] and tb["fault"]["kind"] in disturbing:
            continue
        if r.get("uv_saturated"):  # gold flags the cut as uncertain (clipped peak maximum)
            s.step_yield_saturated += 1
            continue
        ye.append(abs(float(r["step_yield"]) - tb["step_yield"]) * 100.0)
        if r.get("pool_conc_g_l") and r.get("feed_titer_g_l") and "pool_volume_l" in tb:
            same_lab = (tb["pool_volume_l"] * r["pool_conc_g_l"]) / (
                tb["load_volume_l"] * r["feed_titer_g_l"]
            )
            own.append(abs(float(r["step_yield"]) - same_lab) * 100.0)
            lab.append(abs(same_lab - tb["step_yield"]) * 100.0)
    if own:
        s.step_yield_error_pp_platform_max = float(np.max(own))
        s.step_yield_error_pp_lab_max = float(np.max(lab))
    if ye:
        s.step_yield_error_pp_max = float(np.max(ye))
        s.step_yield_error_pp_p95 = float(np.percentile(ye, 95))
        s.step_yield_batches = len(ye)
    return s


def user_view(
    truth: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    failed_checks: list[dict[str, Any]],
) -> dict[str, Any]:
    """What a user sees on the fault-free batches, warm-up included: how many got a fail
    verdict or were not released, which alarm sources fired on them, and which failed checks
    name them (ERROR or WARN; the scored rates above leave out batches judged before their
    unit had an envelope, and checks altogether)."""
    verdict = {v["batch_id"]: v for v in verdicts}
    sources: dict[str, set[str]] = defaultdict(set)
    for a in alarms:
        sources[f"{a['source']}:{a['signal']}"].add(a["batch_id"])
    clean = [t["batch_id"] for t in truth if t["fault"] is None]
    n = len(clean)
    failed = [b for b in clean if verdict.get(b, {}).get("verdict") == "fail"]
    released = [b for b in clean if verdict.get(b, {}).get("released")]
    on_clean = {k: len(v & set(clean)) for k, v in sources.items()}
    checks: dict[str, dict[str, list[str]]] = {"ERROR": {}, "WARN": {}}
    for c in failed_checks:
        named = sorted(set(c["batches"]) & set(clean))
        if named:
            checks[c["severity"]].setdefault(c["check"], []).extend(named)
    error_batches = set(failed) | {b for v in checks["ERROR"].values() for b in v}
    return {
        "fault_free_batches": n,
        "fail_verdict_rate": _r(len(failed) / n) if n else None,
        "released_rate": _r(len(released) / n) if n else None,
        "alarm_sources_on_fault_free": dict(
            sorted(((k, c) for k, c in on_clean.items() if c), key=lambda kc: -kc[1])
        ),
        "failed_examples": failed[:5],
        "checks_naming_fault_free": checks,
        "any_error_rate": _r(len(error_batches) / n) if n else None,
    }
