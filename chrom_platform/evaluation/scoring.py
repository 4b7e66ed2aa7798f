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

A stuck sensor the batch's verdict said it could not judge (its compressed record hides the
signal's noise there: `said_not_judged`) is counted apart, as `not_judgeable`: the record
cannot show it, and the user was told so.

Detection delay is the batch CV of the first such alarm minus the onset's batch CV. A false
alarm is any alarm on a batch without a fault. Batches judged with no envelope at all (their
unit has fewer than `min_batches` released batches and the recipe too few across units: the
warm-up) are reported but not scored; `product_view` scores every batch as the user sees it.
"""

from __future__ import annotations

import re
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


def _finds(fault: dict[str, Any], alarm: dict[str, Any], *, any_mspc: bool = False) -> bool:
    """The alarm points at the fault (or, with `any_mspc`, is a multivariate one: it names
    no fault kind) and fired at or after the onset."""
    if not (any_mspc and alarm["source"] == "mspc") and not _matches(fault["kind"], fault, alarm):
        return False
    onset = float(fault["onset_batch_cv"])
    return alarm["alarm_cv"] is None or alarm["alarm_cv"] >= onset - ONSET_TOLERANCE_CV


#: a verdict's not_judged clause naming the signals whose flatlines its record could not
#: show: "flatline on ph (0.01), cond_ms_cm (0.05; judged in Elution): ..."
_FLATLINE_NOT_JUDGED = re.compile(r"flatline on (?P<on>.*?): ")
_SIGNAL_SCOPE = re.compile(r"(?P<signal>\w+) \((?P<db>[^;)]*)(?:; judged in (?P<inside>[^)]*))?\)")


def said_not_judged(fault: dict[str, Any], verdict: dict[str, Any] | None) -> bool:
    """Whether the batch's verdict said it could not judge this fault: a stuck sensor on a
    signal whose compressed record hides its noise, in a phase where it was not judged (the
    record cannot show it; the user was told so). Such a fault is counted apart, neither
    found nor missed."""
    if fault["kind"] != "sensor_flatline" or not verdict or not verdict.get("not_judged"):
        return False
    m = _FLATLINE_NOT_JUDGED.search(str(verdict["not_judged"]))
    if m is None:
        return False
    for scope in _SIGNAL_SCOPE.finditer(m.group("on")):
        if scope.group("signal") in fault.get("signals", ()):
            inside = (scope.group("inside") or "").split(", ")
            return fault["phase"] not in inside
    return False


def _apart(
    fault: dict[str, Any] | None, verdict: dict[str, Any] | None, alarms: list[dict[str, Any]]
) -> bool:
    """A fault counted apart: said not judged, and not found all the same."""
    return (
        fault is not None
        and said_not_judged(fault, verdict)
        and not any(_finds(fault, a) for a in alarms)
    )


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
    #: faults the batch's verdict said its record could not show (said_not_judged)
    not_judgeable: list[dict[str, Any]] = field(default_factory=list)
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
    #: faulty batches judged before their unit had its own envelope (cold start: the
    #: specifications, the reading-level checks and, where the recipe runs on other units,
    #: the envelope across units), per fault kind: batches, detected, recall, and how many
    #: of them the cross-unit envelope judged
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
            "not_judgeable": self.not_judgeable,
        }


def envelope_of(verdict: dict[str, Any] | None, min_batches: int) -> str:
    """What judged a batch's drift: "own", "cross_unit" or "none" (gold_batch_verdict's
    `envelope`; for tables from before it, own when its reference reached `min_batches`)."""
    if verdict is None:
        return "none"
    if verdict.get("envelope"):
        return str(verdict["envelope"])
    return "own" if (verdict["reference_batches"] or 0) >= min_batches else "none"


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
        bid = t["batch_id"]
        v = verdict.get(bid)
        kind = envelope_of(v, min_batches)
        if s.envelope_from[key] is None and kind == "own":
            s.envelope_from[key] = order[key]
        fault = t["fault"]
        if _apart(fault, v, by_batch.get(bid, [])):
            s.not_judgeable.append(
                {"batch_id": bid, "kind": fault["kind"], "signals": fault.get("signals")}
            )
            continue
        if kind != "own" and fault is not None:
            c = s.cold_start.setdefault(
                t["fault"]["kind"], {"batches": 0, "detected": 0, "cross_unit": 0}
            )
            c["batches"] += 1
            c["cross_unit"] += kind == "cross_unit"
            c["detected"] += any(_finds(t["fault"], a) for a in by_batch.get(bid, []))
        if v is None or kind == "none":
            s.warm_up += 1
            continue
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
        hits = [a for a in found if _finds(fault, a)]
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
    _column_errors(s, truth_by, performance)
    _step_yield_errors(s, truth_by, results)
    return s


def _column_errors(
    s: Score, truth_by: dict[str, dict[str, Any]], performance: list[dict[str, Any]]
) -> None:
    """HETP and asymmetry against the truth's column response, per batch (and on the
    packing-degradation batches apart)."""
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


def _step_yield_errors(
    s: Score, truth_by: dict[str, dict[str, Any]], results: list[dict[str, Any]]
) -> None:
    """Gold's step yield against the truth's, and the platform's and the lab's parts."""
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


#: what the user sees as one batch's outcome, worst first
_RANK = {"ERROR": 2, "WARN": 1}
#: ISA-18.2 / EEMUA 191 figures an alarm system is usually held to, per operator position
ALARM_LOAD_REFERENCE = {
    "alarms_per_day_manageable": 150,
    "alarms_per_10_min_max": 10,
    "chattering_window_s": 60,
    "chattering_activations": 3,
}
PRODUCT_TARGETS = {
    "false_error_rate": 0.01,
    "false_error_rate_per_unit": 0.05,
    "false_error_run": 3,
    "unjudged_rate": 0.10,
}


def product_view(
    truth: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    alarms: list[dict[str, Any]],
    mspc: list[dict[str, Any]],
    *,
    min_batches: int,
) -> dict[str, Any]:
    """Every batch as the product shows it: the worst of its alarms in gold (each with its
    severity), its multivariate verdict (a mature model's alarm is an ERROR, a young
    model's alarm or no model a WARN) and the envelope's "cannot judge" (a WARN) - what the
    checks show while the batch is its unit's latest. Warm-up included: a user sees it.

    `alarms`: gold_batch_alarms rows with `unit_id` and `ts` (when the alarm fired), the
    multivariate alarms among them (source `mspc`)."""
    verdict = {v["batch_id"]: v for v in verdicts}
    model = {m["batch_id"]: m for m in mspc}
    worst: dict[str, int] = defaultdict(int)
    named: dict[str, list[str]] = defaultdict(list)
    for a in alarms:
        r = _RANK.get(str(a["severity"]), 0)
        worst[a["batch_id"]] = max(worst[a["batch_id"]], r)
        if r:
            named[a["batch_id"]].append(f"{a['severity']} {a['source']}:{a['signal']}")
    no_envelope = {b for b, v in verdict.items() if envelope_of(v, min_batches) == "none"}
    no_model = {b for b, m in model.items() if m["verdict"] == "no_model"}
    for b in no_envelope | no_model | {t["batch_id"] for t in truth} - set(model):
        worst[b] = max(worst[b], _RANK["WARN"])
    ids = [t["batch_id"] for t in truth]
    unjudged = [b for b in ids if b in no_envelope and (b in no_model or b not in model)]
    clean = sorted((t for t in truth if t["fault"] is None), key=lambda t: t["batch_id"])
    units: dict[str, list[int]] = defaultdict(list)  # fault-free outcomes in batch order
    for t in clean:
        units[str(t.get("unit_id"))].append(worst[t["batch_id"]])
    n = len(clean)
    errors = [t["batch_id"] for t in clean if worst[t["batch_id"]] >= _RANK["ERROR"]]
    warns = [t["batch_id"] for t in clean if worst[t["batch_id"]] == _RANK["WARN"]]
    per_unit: dict[str, dict[str, Any]] = {
        u: {
            "fault_free": len(o),
            "error_rate": _r(sum(x >= 2 for x in o) / len(o)),
            "longest_error_run": _longest_run([x >= 2 for x in o]),
        }
        for u, o in sorted(units.items())
    }
    clean_ids = {t["batch_id"] for t in clean}
    # a faulty batch is found when a matching alarm or a multivariate one (it names no
    # fault kind: any) fired at or after the onset, warm-up batches included
    by_batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alarms:
        by_batch[a["batch_id"]].append(a)
    faulty = [
        t
        for t in truth
        if t["fault"] is not None
        and not _apart(t["fault"], verdict.get(t["batch_id"]), by_batch.get(t["batch_id"], []))
    ]
    found = [
        t
        for t in faulty
        if any(_finds(t["fault"], a, any_mspc=True) for a in by_batch.get(t["batch_id"], []))
    ]
    # one denominator for both loads: every unit of the history, over the span its alarms
    # cover (at least a day)
    n_units = len({str(t.get("unit_id")) for t in truth})
    stamps = [int(a["ts"]) for a in alarms if a.get("ts") is not None]
    days = max((max(stamps) - min(stamps)) / 86_400e9, 1.0) if stamps else 1.0
    return {
        "recall_all_batches": _r(len(found) / len(faulty)) if faulty else None,
        "batches": len(ids),
        "fault_free_batches": n,
        "false_error_rate": _r(len(errors) / n) if n else None,
        "false_warn_rate": _r(len(warns) / n) if n else None,
        "false_errors": [{"batch_id": b, "shown": named[b]} for b in errors],
        "per_unit": per_unit,
        "worst_unit_error_rate": (
            max(float(u["error_rate"] or 0.0) for u in per_unit.values()) if per_unit else None
        ),
        "longest_error_run": max((u["longest_error_run"] for u in per_unit.values()), default=0),
        "unjudged_rate": _r(len(unjudged) / len(ids)) if ids else None,
        "no_envelope_rate": _r(len(no_envelope & set(ids)) / len(ids)) if ids else None,
        "no_model_rate": _r(len(no_model & set(ids)) / len(ids)) if ids else None,
        "alarm_load": {
            "all_batches": alarm_load(alarms, units=n_units, days=days),
            "fault_free_batches": alarm_load(
                [a for a in alarms if a["batch_id"] in clean_ids], units=n_units, days=days
            ),
            "reference": ALARM_LOAD_REFERENCE,
        },
    }


def _longest_run(flags: list[bool]) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def alarm_load(
    alarms: list[dict[str, Any]], *, units: int | None = None, days: float | None = None
) -> dict[str, Any]:
    """ISA-18.2 alarm-load figures of annunciated alarms (ERROR or WARN, each with `ts` in
    ns and `unit_id`): per unit per day (over `units` and `days`; by default the units
    that alarmed and the span their alarms cover, at least a day), the most in any 10
    minutes (all units: one operator's console), and the chattering ones (the same alarm of
    a unit activated 3 or more times within 60 s)."""
    shown = sorted(
        (a for a in alarms if a["severity"] in _RANK and a.get("ts") is not None),
        key=lambda a: a["ts"],
    )
    if not shown:
        return {"alarms": 0, "per_unit_per_day": 0.0, "max_in_10_min": 0, "chattering": 0}
    ts = np.array([int(a["ts"]) for a in shown], dtype=np.int64)
    days = days or max((ts[-1] - ts[0]) / 86_400e9, 1.0)
    units = units or len({a["unit_id"] for a in shown})
    ten = 600 * 10**9
    peak = int(np.max(np.searchsorted(ts, ts + ten, side="left") - np.arange(ts.size)))
    by: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for a in shown:
        by[(a["unit_id"], a["source"], str(a["signal"]))].append(int(a["ts"]))
    w = ALARM_LOAD_REFERENCE["chattering_window_s"] * 10**9
    k = ALARM_LOAD_REFERENCE["chattering_activations"]
    chattering = sum(
        1
        for t in by.values()
        if len(t) >= k and np.any(np.array(t[k - 1 :]) - np.array(t[: len(t) - k + 1]) <= w)
    )
    return {
        "alarms": len(shown),
        "per_unit_per_day": round(len(shown) / units / days, 2),
        "max_in_10_min": peak,
        "chattering": chattering,
    }
