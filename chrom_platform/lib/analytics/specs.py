"""A batch judged against its recipe's own specifications (master data), from the first
batch on: the settled outlet conductivity and pH of each phase within its buffer's ranges,
and the flow within the recipe's tolerance of its set point (linear velocity x the column's
cross-section). The golden envelope needs `min_batches` released batches of a recipe on a
unit before it can judge anything; specifications need none, so a new unit or a new recipe
is watched from its first batch (the monitoring state "specs only").

A spec is judged only where it applies, and says so otherwise: the level of a phase is
settled SETTLE_CV after its buffer reaches the inlet (after the step, or after the end of
the recipe's ramp); a phase too short to settle (a gradient elution) has no level to judge.
One reading outside is noise: RUN_S readings in a row outside are an alarm, placed at the
last of them (where it could first be raised).

A record compressed with a deadband (a historian's, declared in the import's mapping) holds a
value until the signal moves beyond it, so the true level may be anywhere within the deadband
of what is recorded: a level is out of spec only beyond the range widened by the deadband
(the guard band of a decision rule under measurement uncertainty), and a level outside the
range but within the deadband of it is not judged, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chrom_platform.lib.analytics.column import PLATEAU_CV, first_run
from chrom_platform.lib.analytics.scans import Finding

#: phase CV after the buffer reaches the inlet from which the outlet level has settled: the
#: column's mean residence and the spread of a step (the transition analysis's plateau)
SETTLE_CV = PLATEAU_CV[0]
#: a settled window shorter than this (CV) is not judged
MIN_WINDOW_CV = 0.2
#: readings in a row outside a spec before it is an alarm (1 Hz: half a minute)
RUN_S = 30
#: flow is judged once the pump has ramped to its set point (phase CV)
FLOW_FROM_CV = 0.05
#: why a phase's level is not judged when master data gives its buffer no range
NO_RANGE = "no range in master data for the phase's buffer"


@dataclass(frozen=True)
class PhaseSpec:
    """What master data specifies for one phase on one unit."""

    phase: str
    #: the pump's set point on this unit (L/min) and the tolerance (a fraction)
    flow_lpm: float
    flow_tolerance: float
    cond_range: tuple[float, float] | None
    ph_range: tuple[float, float] | None
    #: CV over which the recipe ramps into the buffer (0: a step)
    gradient_cv: float = 0.0


def guard_band(bounds: tuple[float, float], deadband: float) -> tuple[float, float]:
    """A range widened by the deadband its record was compressed with: beyond it a level is
    out of spec whatever the historian held back (the module docstring)."""
    return bounds[0] - deadband, bounds[1] + deadband


def _first_out(
    rows: npt.NDArray[np.intp],
    values: npt.NDArray[np.float64],
    bounds: tuple[float, float],
    where: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], str],
    signal: str,
    says: str,
) -> Finding | None:
    """The finding at the reading completing the first RUN_S in a row outside `bounds`
    (`says` is formatted with the level there); None if there is no such run."""
    bad = (values < bounds[0]) | (values > bounds[1])
    start = first_run(bad, RUN_S)
    if start < 0:
        return None
    i = start + RUN_S - 1
    at = rows[i]
    phase_cv, batch_cv, phase = where
    level = float(np.median(values[start : i + 1]))
    return Finding(
        "spec",
        signal,
        int(at),
        float(batch_cv[at]),
        f"{says.format(level=level)} in {phase} from phase CV {phase_cv[at]:.1f}",
    )


def phase_findings(
    spec: PhaseSpec,
    rows: npt.NDArray[np.intp],
    phase_cv: npt.NDArray[np.float64],
    batch_cv: npt.NDArray[np.float64],
    signals: dict[str, npt.NDArray[np.float64]],
    deadbands: Mapping[str, float] | None = None,
) -> tuple[list[Finding], list[str]]:
    """Spec findings of one phase (`rows`: its readings outside holds), and what could not
    be judged, with the reason. `deadbands`: signal -> the deadband its record was compressed
    with (none: the record resolves every scan)."""
    deadbands = deadbands or {}
    out: list[Finding] = []
    skipped: list[str] = []
    if rows.size == 0:
        return out, skipped
    v = phase_cv[rows]
    settled = rows[v >= spec.gradient_cv + SETTLE_CV]
    window = float(v[-1] - (spec.gradient_cv + SETTLE_CV))
    where = (phase_cv, batch_cv, spec.phase)
    for signal, rng, unit in (("cond_ms_cm", spec.cond_range, " mS/cm"), ("ph", spec.ph_range, "")):
        if rng is None:
            skipped.append(f"{signal}: {NO_RANGE}")
            continue
        if window < MIN_WINDOW_CV:
            skipped.append(
                f"{signal}: the phase does not settle (ends {max(0.0, -window) + MIN_WINDOW_CV:.1f}"
                f" CV short of a settled level)"
            )
            continue
        says = f"{signal} {{level:.3g}}{unit} outside the buffer's range {rng[0]:g}-{rng[1]:g}"
        _judge(settled, signals[signal][settled], rng, where, signal, says, deadbands, out, skipped)
    pumping = rows[v >= FLOW_FROM_CV]
    if pumping.size >= RUN_S and spec.flow_lpm > 0:
        tol = spec.flow_tolerance
        says = (
            f"flow {{level:.3g}} L/min off its set point {spec.flow_lpm:.3g} L/min (+/-{tol:.0%})"
        )
        bounds = (spec.flow_lpm * (1 - tol), spec.flow_lpm * (1 + tol))
        flow = signals["flow_lpm"][pumping]
        _judge(pumping, flow, bounds, where, "flow_lpm", says, deadbands, out, skipped)
    return out, skipped


def _judge(
    rows: npt.NDArray[np.intp],
    values: npt.NDArray[np.float64],
    bounds: tuple[float, float],
    where: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], str],
    signal: str,
    says: str,
    deadbands: Mapping[str, float],
    out: list[Finding],
    skipped: list[str],
) -> None:
    """A finding where the level is outside `bounds` beyond the record's deadband; a note
    in `skipped` where it is outside them only within it (the record cannot tell)."""
    db = deadbands.get(signal, 0.0)
    found = _first_out(rows, values, guard_band(bounds, db), where, signal, says)
    if found:
        out.append(found)
    elif db > 0 and (near := _first_out(rows, values, bounds, where, signal, says)):
        skipped.append(
            f"{near.detail}, within the record's deadband {db:g}: cannot judge (the "
            "historian stores a value only when it moves by more than that)"
        )
