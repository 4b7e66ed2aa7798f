"""Everything read from one batch's readings: transitions (HETP, asymmetry), permeability,
the elution peak, load breakthrough (DBC10), gaps and flatlines, and the alarms they raise.

Limits (why these values): normal batch-to-batch variation is HETP +-4% and asymmetry
+-0.03 around the column's qualified values (docs/simulator.md); an HETP 30% above its
qualification or an asymmetry 0.3 above it is far outside that and is what a packing
re-qualification is triggered by. Permeability is judged against the column's own first
cycles (fouling lowers it slowly, 0.04% a cycle; a 25% drop is a blocked or fouled bed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.analytics.column import (
    BREAKTHROUGH_FRACTION,
    BREAKTHROUGH_NOISE_K,
    PLATEAU_CV,
    NotApplicable,
    Peak,
    Transition,
    breakthrough_cv,
    elution_peak,
    permeability_m2,
    transition,
)
from chrom_platform.lib.analytics.scans import (
    FLATLINE_FACTOR,
    FLATLINE_NOT_JUDGED,
    Finding,
    flatline_judgeable,
    flatlines,
    gaps,
)
from chrom_platform.lib.analytics.specs import NO_RANGE, SETTLE_CV, PhaseSpec, phase_findings
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY, Accuracy

HETP_LIMIT_FACTOR = 1.3
ASYMMETRY_LIMIT_ABOVE = 0.3
PERMEABILITY_LIMIT_FACTOR = 0.75
#: cycles of a column whose median permeability is its baseline
PERMEABILITY_BASELINE_CYCLES = 10
#: the load is alarmed when breakthrough reaches this fraction of the feed's product UV
#: (DBC10 itself is reported at 10%)
BREAKTHROUGH_ALARM_FRACTION = 0.03
#: settled part of a phase for Darcy's law: after the new buffer has filled the bed
SETTLED_FROM_CV = 1.2
#: transitions analysed (a step in conductivity of at least column.MIN_STEP)
TRANSITION_SIGNAL = "cond_ms_cm"


@dataclass(frozen=True)
class UnitInfo:
    unit_id: str
    column_id: str
    bed_height_cm: float
    area_cm2: float
    column_volume_l: float
    system_bar_per_lpm: float
    uv_max_mau: float
    uv_path_length_cm: float
    qualified_hetp_cm: float
    qualified_asymmetry: float
    #: the unit's instrument accuracy per signal (equipment master data): no deviation
    #: smaller is judged
    accuracy: Mapping[str, Accuracy] = field(default_factory=lambda: dict(DEFAULT_ACCURACY))


@dataclass(frozen=True)
class PhaseInfo:
    order: int
    viscosity_mpa_s: float
    #: what the phase does (master data's PHASE_KINDS): the analyses key on it, not the name
    kind: str = "other"
    #: CV over which the recipe ramps into the phase's buffer (0: a step)
    gradient_cv: float = 0.0
    #: the recipe's linear velocity (cm/h) and the flow tolerance (a fraction; None: none)
    velocity_cm_h: float = 0.0
    flow_tolerance: float | None = None
    #: the buffer's specification ranges (None: master data gives none)
    cond_range: tuple[float, float] | None = None
    ph_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class Alarm:
    source: str  # drift | gap | flatline | column | breakthrough | result
    signal: str | None
    phase: str | None
    alarm_cv: float
    severity: str  # ERROR | WARN
    detail: str

    @property
    def alarm_class(self) -> str:
        """What kind of finding it is (ALARM_CLASSES): only a process deviation or a data
        problem keeps a batch out of the golden envelope."""
        return alarm_class(self.source, self.signal)

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "signal": self.signal,
            "phase": self.phase,
            "alarm_cv": self.alarm_cv,
            "severity": self.severity,
            "alarm_class": self.alarm_class,
            "detail": self.detail,
        }


#: process: the batch ran differently (drift, breakthrough, overload, no product peak);
#: equipment: the column or the skid (HETP, asymmetry, permeability, pressure over limit);
#: result: the batch's lab result (step yield); data: the record is incomplete or broken
#: (gaps, flatlined sensors, missing lab results).
ALARM_CLASSES = ("process", "equipment", "result", "data")
#: the classes that keep a batch out of the envelope: its trajectory is not a good one, or
#: cannot be trusted. An equipment or result finding says nothing against the trajectory,
#: and when every batch shares it (a limit that does not fit the plant, an ageing column)
#: excluding them all would leave no envelope at all.
NOT_RELEASED_FOR = frozenset({"process", "data"})


def alarm_class(source: str, signal: str | None) -> str:
    if source in ("gap", "flatline"):
        return "data"
    if source == "column":
        return "equipment"
    if source == "result":
        if signal == "pressure_over_limit":
            return "equipment"
        if signal in ("feed_titer_missing", "pool_result_missing"):
            return "data"
        if signal in ("step_yield_low", "step_yield_high"):
            return "result"
    return "process"  # drift, breakthrough, loading over DBC10, no pool found, unknown


@dataclass
class BatchReadings:
    batch_id: str
    ts_ns: npt.NDArray[np.int64]
    phase: npt.NDArray[np.str_]
    batch_cv: npt.NDArray[np.float64]
    phase_cv: npt.NDArray[np.float64]
    is_hold: npt.NDArray[np.bool_]
    signals: dict[str, npt.NDArray[np.float64]]
    #: signal -> the deadband its record was compressed with (scans.record_deadbands)
    deadbands: dict[str, float] = field(default_factory=dict)

    def phase_rows(self, name: str | None) -> npt.NDArray[np.intp]:
        """Rows of the phase (holds excluded); none for a phase the recipe does not have."""
        if name is None:
            return np.empty(0, dtype=np.intp)
        return np.flatnonzero((self.phase == name) & ~self.is_hold)


@dataclass
class BatchAnalysis:
    batch_id: str
    transitions: dict[str, Transition] = field(default_factory=dict)
    #: where each transition's analysis completes (batch CV), for alarm placement
    transition_done_cv: dict[str, float] = field(default_factory=dict)
    hetp_cm: float = float("nan")
    asymmetry: float = float("nan")
    plates: float = float("nan")
    permeability_m2: float = float("nan")
    #: why the batch has no permeability (None when it has one)
    permeability_not_applicable: str | None = None
    peak: Peak | None = None
    dbc10_g_l: float = float("nan")
    breakthrough_alarm_cv: float = float("nan")
    findings: list[Finding] = field(default_factory=list)
    phase_of_finding: list[str] = field(default_factory=list)
    #: the recipe's name of its load phase (where breakthrough is judged)
    load_phase: str | None = None
    #: transitions that are not step responses (ramps, gradients), with the reason
    not_applicable: dict[str, str] = field(default_factory=dict)
    #: specifications that could not be judged, per phase, with the reason
    spec_not_judged: dict[str, list[str]] = field(default_factory=dict)
    #: signals no flatline could be judged on throughout (a compressed record hiding their
    #: noise) -> the deadband, and the gradient phases where it was judged all the same
    flatline_not_judged: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)

    def not_judged(self) -> str | None:
        """What this record could not judge, as the verdict shows it (phases without ranges
        in master data left out: the same for every batch of the recipe, and counted by the
        phase_sensor_ranges check); None when everything was judged."""
        said = [
            f"spec in {phase}: {why}"
            for phase, whys in self.spec_not_judged.items()
            for why in whys
            if not why.endswith(NO_RANGE)
        ]
        if self.flatline_not_judged:
            on = ", ".join(
                f"{s} ({db:g}" + (f"; judged in {', '.join(inside)})" if inside else ")")
                for s, (db, inside) in self.flatline_not_judged.items()
            )
            said.append(f"flatline on {on}: {FLATLINE_NOT_JUDGED}")
        return "; ".join(said) or None


def _first_of_kind(phases: dict[str, PhaseInfo], kind: str) -> str | None:
    """The recipe's first phase of `kind` (by order), None if it has none."""
    named = sorted((info.order, name) for name, info in phases.items() if info.kind == kind)
    return named[0][1] if named else None


def analyse(
    r: BatchReadings,
    unit: UnitInfo,
    phases: dict[str, PhaseInfo],
    *,
    feed_titer_g_l: float | None,
    extinction_l_g_cm: float | None,
    breakthrough_fraction: float = BREAKTHROUGH_ALARM_FRACTION,
    breakthrough_noise_k: float = BREAKTHROUGH_NOISE_K,
) -> BatchAnalysis:
    out = BatchAnalysis(r.batch_id)
    # -- transitions -> plates, HETP, asymmetry (median over the transitions found) -------
    for name, info in phases.items():
        if info.gradient_cv > 0:  # the recipe says so: no need to find it in the data
            out.not_applicable[name] = (
                f"the recipe ramps into this phase's buffer over {info.gradient_cv:g} CV "
                "(a ramp or gradient, not a step)"
            )
            continue
        rows = r.phase_rows(name)
        if rows.size < 50:
            continue
        t = transition(r.phase_cv[rows], r.signals[TRANSITION_SIGNAL][rows], unit.bed_height_cm)
        if isinstance(t, NotApplicable):
            out.not_applicable[name] = t.reason
        elif t is not None:
            out.transitions[name] = t
            start = float(r.batch_cv[rows[0]])
            out.transition_done_cv[name] = start + PLATEAU_CV[1]
    if out.transitions:
        ts = list(out.transitions.values())
        out.hetp_cm = float(np.median([t.hetp_cm for t in ts]))
        out.plates = unit.bed_height_cm / out.hetp_cm
        out.asymmetry = float(np.nanmedian([t.asymmetry for t in ts]))
    # -- permeability by Darcy's law over settled phases ----------------------------------
    q, p, mu = [], [], []
    for name, info in phases.items():
        rows = r.phase_rows(name)
        rows = rows[r.phase_cv[rows] >= SETTLED_FROM_CV]
        if rows.size >= 20:
            q.append(float(np.median(r.signals["flow_lpm"][rows])))
            p.append(float(np.median(r.signals["pressure_bar"][rows])))
            mu.append(info.viscosity_mpa_s)
    out.permeability_m2, out.permeability_not_applicable = permeability_m2(
        q,
        p,
        mu,
        area_cm2=unit.area_cm2,
        bed_height_cm=unit.bed_height_cm,
        system_bar_per_lpm=unit.system_bar_per_lpm,
    )
    # -- elution peak: the first elution after the load -----------------------------------
    rows = r.phase_rows(_first_of_kind(phases, "elution"))
    if rows.size:
        out.peak = elution_peak(r.phase_cv[rows], r.signals["uv_mau"][rows])
    # -- load breakthrough -------------------------------------------------------------
    out.load_phase = _first_of_kind(phases, "load")
    rows = r.phase_rows(out.load_phase)
    if rows.size and feed_titer_g_l and extinction_l_g_cm:
        product_mau = feed_titer_g_l * extinction_l_g_cm * unit.uv_path_length_cm * 1000.0
        v, uv = r.phase_cv[rows], r.signals["uv_mau"][rows]
        v10 = breakthrough_cv(v, uv, product_mau, BREAKTHROUGH_FRACTION)
        out.dbc10_g_l = feed_titer_g_l * v10 if np.isfinite(v10) else float("nan")
        v_alarm = breakthrough_cv(v, uv, product_mau, breakthrough_fraction, breakthrough_noise_k)
        if np.isfinite(v_alarm):
            i = rows[int(np.searchsorted(v, v_alarm))]
            out.breakthrough_alarm_cv = float(r.batch_cv[i])
    # -- the recipe's specifications, from the first batch on (no envelope needed) ---------
    for name, info in phases.items():
        rows = r.phase_rows(name)
        spec = PhaseSpec(
            phase=name,
            flow_lpm=unit.area_cm2 * info.velocity_cm_h / 60_000.0,
            flow_tolerance=info.flow_tolerance or 0.0,
            cond_range=info.cond_range,
            ph_range=info.ph_range,
            gradient_cv=info.gradient_cv,
        )
        found, skipped = phase_findings(
            spec if info.flow_tolerance else replace(spec, flow_lpm=0.0),
            rows,
            r.phase_cv,
            r.batch_cv,
            r.signals,
            r.deadbands,
        )
        out.findings.extend(found)
        if skipped:
            out.spec_not_judged[name] = skipped
    # -- gaps and flatlines ---------------------------------------------------------------
    out.findings.extend(gaps(r.ts_ns, r.batch_cv, r.signals["flow_lpm"], unit.column_volume_l))
    found, out.flatline_not_judged = batch_flatlines(r, phases, unit.uv_max_mau)
    out.findings.extend(found)
    out.phase_of_finding = [str(r.phase[f.index]) for f in out.findings]
    return out


def buffer_change(phases: dict[str, PhaseInfo], name: str, signal: str) -> float | None:
    """How far the recipe moves `signal` over phase `name`'s gradient: from the previous
    phase's buffer to its own (the middles of their specification ranges); None where
    master data does not say (no range, no previous phase, or not a buffer property)."""
    if signal not in ("cond_ms_cm", "ph"):
        return None
    info = phases[name]
    before = [p for p in phases.values() if p.order < info.order]
    if not before:
        return None
    prev = max(before, key=lambda p: p.order)
    a, b = (p.cond_range if signal == "cond_ms_cm" else p.ph_range for p in (prev, info))
    if a is None or b is None:
        return None
    return abs((b[0] + b[1]) / 2 - (a[0] + a[1]) / 2)


def batch_flatlines(
    r: BatchReadings, phases: dict[str, PhaseInfo], uv_max_mau: float
) -> tuple[list[Finding], dict[str, tuple[float, tuple[str, ...]]]]:
    """The batch's flatlines (scans.flatlines), and the signals whose compressed record
    hides their noise (scans.flatline_judgeable) -> (deadband, the phases still judged).
    On those a flatline is judged only inside a gradient that master data says moves the
    signal past the deadband, once the outlet follows it (SETTLE_CV), where a run must span
    FLATLINE_FACTOR times the CV the gradient takes to cross the deadband. The verdict and
    the flatlined_signals check both judge by this."""
    found: list[Finding] = []
    compressed: dict[str, tuple[float, tuple[str, ...]]] = {}
    for s in SIGNALS:
        if flatline_judgeable(s, r.deadbands, r.signals[s]):
            saturation = uv_max_mau if s == "uv_mau" else None
            found.extend(flatlines(r.signals[s], r.batch_cv, s, exempt_at_or_above=saturation))
            continue
        db, inside = r.deadbands[s], []
        for name, info in phases.items():
            change = buffer_change(phases, name, s)
            if info.gradient_cv <= SETTLE_CV or change is None or change <= db:
                continue
            inside.append(name)
            rows = r.phase_rows(name)
            rows = rows[(r.phase_cv[rows] >= SETTLE_CV) & (r.phase_cv[rows] < info.gradient_cv)]
            step_cv = db / change * info.gradient_cv
            found.extend(
                replace(f, index=int(rows[f.index]))
                for f in flatlines(
                    r.signals[s][rows],
                    r.batch_cv[rows],
                    s,
                    min_span_cv=FLATLINE_FACTOR * step_cv,
                )
            )
        compressed[s] = (db, tuple(inside))
    return found, compressed


def alarms(a: BatchAnalysis, unit: UnitInfo, permeability_baseline: float | None) -> list[Alarm]:
    """The alarms a batch's reading-level analysis raises (drift comes from the envelope)."""
    out: list[Alarm] = []
    for f, phase in zip(a.findings, a.phase_of_finding, strict=True):
        out.append(
            Alarm(
                f.kind,
                f.signal,
                phase,
                f.alarm_cv,
                "ERROR" if f.kind in ("flatline", "spec") else "WARN",
                f.detail,
            )
        )
    hetp_limit = HETP_LIMIT_FACTOR * unit.qualified_hetp_cm
    as_limit = unit.qualified_asymmetry + ASYMMETRY_LIMIT_ABOVE
    if np.isfinite(a.hetp_cm) and (a.hetp_cm > hetp_limit or a.asymmetry > as_limit):
        # placed where the first transition beyond a limit was complete
        bad: list[tuple[float, str | None]] = [
            (a.transition_done_cv[n], n)
            for n, t in a.transitions.items()
            if t.hetp_cm > hetp_limit or t.asymmetry > as_limit
        ]
        cv_at, where = min(bad) if bad else (max(a.transition_done_cv.values()), None)
        tripped = [
            name
            for name, over in (
                ("hetp", a.hetp_cm > hetp_limit),
                ("asymmetry", a.asymmetry > as_limit),
            )
            if over
        ]
        out.append(
            Alarm(
                "column",
                ",".join(tripped),
                where,
                cv_at,
                "ERROR",
                f"HETP {a.hetp_cm:.4f} cm (limit {hetp_limit:.4f}), asymmetry "
                f"{a.asymmetry:.2f} (limit {as_limit:.2f})",
            )
        )
    if (
        permeability_baseline
        and np.isfinite(a.permeability_m2)
        and a.permeability_m2 < PERMEABILITY_LIMIT_FACTOR * permeability_baseline
    ):
        out.append(
            Alarm(
                "column",
                "permeability",
                None,
                float("nan"),
                "WARN",
                f"permeability {a.permeability_m2:.3g} m2 below "
                f"{PERMEABILITY_LIMIT_FACTOR:.0%} of the column's baseline {permeability_baseline:.3g}",
            )
        )
    if np.isfinite(a.breakthrough_alarm_cv):
        out.append(
            Alarm(
                "breakthrough",
                "uv_mau",
                a.load_phase,
                a.breakthrough_alarm_cv,
                "ERROR",
                f"product breaks through during load (DBC10 {a.dbc10_g_l:.1f} g/L)",
            )
        )
    return out
