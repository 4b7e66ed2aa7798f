"""Batch, phase and hold events (chrom.event.v1) from a batch's phase spans: one builder for
the simulator and for `chrom import`, so a batch lands the same events whichever wrote it.

Intervals are closed: a phase runs from its phase_start to its phase_end scan inclusive, and
the hold after a phase (pump stopped) belongs to it, between hold_start and hold_end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chrom_platform.lib.core.contracts import EVENT_SCHEMA, ts_to_iso


@dataclass(frozen=True)
class PhaseSpan:
    name: str
    start_ns: int
    #: the phase's last scan, its hold included
    end_ns: int
    #: (first, last) scan of the hold after the phase, if the pump stopped
    hold: tuple[int, int] | None = None
    #: what the batch record says of the phase (planned_cv, velocity_cm_h, buffer)
    details: Mapping[str, Any] = field(default_factory=dict)


def batch_events(
    *,
    unit_id: str,
    batch_id: str,
    recipe: str,
    phases: Sequence[PhaseSpan],
    start_details: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """batch_start, then per phase phase_start [hold_start hold_end] phase_end, then
    batch_end; event ids numbered in that order (`<batch>-E001`...), so re-landing the same
    batch gives the same ids (the warehouse counts an id once)."""
    base = {"schema": EVENT_SCHEMA, "unit_id": unit_id, "batch_id": batch_id, "recipe": recipe}
    out: list[dict[str, Any]] = []

    def ev(
        kind: str, ts_ns: int, phase: str | None = None, details: Mapping[str, Any] = {}
    ) -> None:
        out.append(
            {
                **base,
                "event_id": f"{batch_id}-E{len(out) + 1:03d}",
                "event_type": kind,
                "phase": phase,
                "ts": ts_to_iso(ts_ns),
                **({"details": dict(details)} if details else {}),
            }
        )

    ev("batch_start", phases[0].start_ns, details=start_details)
    for ph in phases:
        ev("phase_start", ph.start_ns, ph.name, ph.details)
        if ph.hold is not None:
            ev("hold_start", ph.hold[0], ph.name)
            ev("hold_end", ph.hold[1], ph.name)
        ev("phase_end", ph.end_ns, ph.name)
    ev("batch_end", phases[-1].end_ns)
    return out
