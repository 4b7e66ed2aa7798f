"""Fault kinds the simulator can inject, with the signals each one claims to change.

Magnitudes are drawn from process-relevant ranges: each is at least 3 standard deviations
of the normal batch-to-batch variation of the affected signal at onset (see
docs/simulator.md, "Faults"). The ground truth of every injected fault (batch, unit, kind,
signals, onset time and CV, magnitude) goes to the truth path, never to the landing zone.

Graded faults (`severity`, in sigma): the magnitude is instead that many standard deviations
of the normal variation of the signal the fault changes, where it starts (batch-to-batch and
sensor noise together; see `simulator.batch.graded_magnitude` and docs/simulator.md,
"Graded faults"), so a sweep can ask how small a fault each method catches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import Phase


@dataclass(frozen=True)
class FaultKind:
    name: str
    description: str
    #: Signals whose values the fault changes. sensor_dropout changes no value: it removes
    #: readings (all signals) for a while.
    signals: tuple[str, ...]
    #: Kinds of phase the fault may start in (any phase of the recipe of these kinds); None:
    #: the batch's first phase, whatever its kind (the fault is there from the start).
    phase_kinds: tuple[str, ...] | None


FAULT_KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind(
            "ph_drift",
            "pH probe drifts linearly from onset",
            ("ph",),
            ("equilibration", "load", "wash"),
        ),
        FaultKind(
            "pressure_rise",
            "bed fouling or partial blockage raises the pressure drop",
            ("pressure_bar",),
            ("load", "wash"),
        ),
        FaultKind(
            "early_breakthrough",
            "lower dynamic binding capacity: product breaks through during load",
            ("uv_mau",),
            ("load",),
        ),
        FaultKind(
            "packing_degradation",
            "bed packing degraded: HETP up, peaks tail",
            ("cond_ms_cm", "ph", "uv_mau"),
            None,
        ),
        FaultKind(
            "wrong_buffer",
            "a buffer made up wrong: conductivity offset in one phase",
            ("cond_ms_cm",),
            ("wash", "elution"),
        ),
        FaultKind(
            "pump_fault",
            "pump cannot hold its set point: flow low and unstable",
            ("flow_lpm", "pressure_bar"),
            ("load", "wash"),
        ),
        FaultKind(
            "sensor_flatline",
            "a sensor freezes at its last value",
            (),
            ("load", "wash", "elution"),
        ),
        FaultKind(
            "sensor_dropout",
            "the unit stops sending readings for a while",
            (),
            ("load", "wash", "elution"),
        ),
    )
}

FLATLINE_SIGNALS: tuple[str, ...] = ("pressure_bar", "uv_mau", "cond_ms_cm", "ph")

#: Kinds whose size can be graded in sigma of normal variation (the sensor faults have no
#: size: a frozen or silent sensor is either there or not).
GRADED_KINDS: tuple[str, ...] = (
    "ph_drift",
    "pressure_rise",
    "early_breakthrough",
    "packing_degradation",
    "wrong_buffer",
    "pump_fault",
)
#: Drifting faults (pH, pressure) reach their full size this many CV after onset, then stay.
GRADED_RAMP_CV = 0.25
SEVERITY_RANGE = (0.5, 10.0)


@dataclass(frozen=True)
class Fault:
    kind: str
    signals: tuple[str, ...]
    phase: str
    #: Where in the phase it starts, as a fraction of the phase's nominal pumping time.
    onset_fraction: float
    magnitude: dict[str, Any] = field(default_factory=dict)
    #: graded size in sigma of the changed signal's normal variation (None: drawn as before)
    severity_sigma: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signals": list(self.signals),
            "phase": self.phase,
            "onset_fraction": self.onset_fraction,
            "magnitude": self.magnitude,
            "severity_sigma": self.severity_sigma,
        }


def check_severity(kind: str, severity: float) -> None:
    """A graded fault needs a kind with a size and a severity in SEVERITY_RANGE."""
    if kind not in GRADED_KINDS:
        raise ValueError(f"fault {kind!r} has no graded size; graded kinds: {list(GRADED_KINDS)}")
    lo, hi = SEVERITY_RANGE
    if not (np.isfinite(severity) and lo <= severity <= hi):
        raise ValueError(f"fault severity must be {lo} to {hi} sigma, got {severity}")


def check_severities(kinds: tuple[str, ...] | list[str], severity: float | None) -> None:
    """A history with graded faults: every kind it may draw must have a size."""
    if severity is None:
        return
    for kind in kinds:
        if kind not in GRADED_KINDS:
            raise ValueError(
                f"--fault-severity grades {list(GRADED_KINDS)} only; {kind!r} has no size "
                "(pass --fault-kinds with graded kinds)"
            )
        check_severity(kind, severity)


def draw_fault(
    rng: np.random.Generator,
    kind: str,
    phases: tuple[Phase, ...],
    *,
    severity: float | None = None,
) -> Fault:
    """Draw one fault of `kind` for a recipe with `phases` (uses only `rng`). With
    `severity`, only where and which way are drawn: the size is `severity` sigma, turned
    into a magnitude by the batch that knows its signals (simulator.batch)."""
    if severity is not None:
        return _graded(rng, kind, phases, severity)
    spec = FAULT_KINDS[kind]
    kinds = spec.phase_kinds
    allowed = [phases[0].name] if kinds is None else [p.name for p in phases if p.kind in kinds]
    if not allowed:
        raise ValueError(f"fault {kind!r} needs a phase of kind {' or '.join(kinds or ())}")
    phase = str(allowed[int(rng.integers(len(allowed)))])
    frac = float(rng.uniform(0.15, 0.6))
    signals = spec.signals
    mag: dict[str, Any]
    if kind == "ph_drift":
        mag = {"rate_ph_per_h": float(rng.uniform(0.6, 1.2) * rng.choice([-1.0, 1.0]))}
    elif kind == "pressure_rise":
        mag = {
            "bed_dp_increase": float(rng.uniform(0.35, 0.7)),
            "ramp_min": float(rng.uniform(3, 10)),
        }
    elif kind == "early_breakthrough":
        frac = 0.0
        mag = {"dbc_factor": float(rng.uniform(0.5, 0.62))}
    elif kind == "packing_degradation":
        frac = 0.0
        mag = {
            "hetp_factor": float(rng.uniform(1.8, 2.6)),
            "asymmetry": float(rng.uniform(1.8, 2.3)),
        }
    elif kind == "wrong_buffer":
        frac = 0.0
        mag = {"cond_factor": float(rng.uniform(1.25, 1.5) * rng.choice([1.0, -1.0]))}
        # a negative factor means "too dilute": conductivity scaled by 1/|factor|
    elif kind == "pump_fault":
        mag = {
            "flow_factor": float(rng.uniform(0.7, 0.82)),
            "oscillation": float(rng.uniform(0.05, 0.12)),
            "period_s": float(rng.uniform(20, 60)),
        }
    elif kind == "sensor_flatline":
        sig = FLATLINE_SIGNALS[int(rng.integers(len(FLATLINE_SIGNALS)))]
        signals = (sig,)
        mag = {"duration_s": int(rng.integers(300, 1200))}
    elif kind == "sensor_dropout":
        signals = SIGNALS
        mag = {"duration_s": int(rng.integers(60, 600))}
    else:  # pragma: no cover - FAULT_KINDS and this function are kept in step by tests
        raise ValueError(kind)
    return Fault(kind=kind, signals=tuple(signals), phase=phase, onset_fraction=frac, magnitude=mag)


def _graded(rng: np.random.Generator, kind: str, phases: tuple[Phase, ...], s: float) -> Fault:
    check_severity(kind, s)
    spec = FAULT_KINDS[kind]
    kinds = spec.phase_kinds
    allowed = [phases[0].name] if kinds is None else [p.name for p in phases if p.kind in kinds]
    if not allowed:
        raise ValueError(f"fault {kind!r} needs a phase of kind {' or '.join(kinds or ())}")
    phase = str(allowed[int(rng.integers(len(allowed)))])
    frac = float(rng.uniform(0.15, 0.6))
    mag: dict[str, Any] = {"severity_sigma": s}
    if kind in ("ph_drift", "wrong_buffer"):
        mag["direction"] = float(rng.choice([-1.0, 1.0]))
    if kind == "pump_fault":
        mag["period_s"] = float(rng.uniform(20, 60))
    if kind in ("early_breakthrough", "packing_degradation", "wrong_buffer"):
        frac = 0.0
    return Fault(kind, spec.signals, phase, frac, mag, severity_sigma=s)
