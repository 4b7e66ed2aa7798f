"""The second process family (simulator/config/fc-capture): another plant's recipe, names,
order, column, gradients, yield and noise, played by the same simulator. What the
platform is evaluated on to show it judges more than the plant it was built beside."""

from __future__ import annotations

import numpy as np
import pytest

from chrom_platform.lib.analytics.column import noise_sd
from chrom_platform.lib.core.master_data import MasterData, load_master_data
from simulator import DEFAULT_PROCESS, process_files
from simulator.batch import SimBatch, load_behaviour, plan_batch, simulate
from simulator.faults import FAULT_KINDS

FC = "fc-capture"


def _family(name: str) -> tuple[MasterData, object]:
    f = process_files(name)
    return load_master_data(f.equipment, f.recipes), load_behaviour(f.simulation)


def _batch(name: str, *, batch_index: int = 0, fault: str | None = None) -> SimBatch:
    md, behaviour = _family(name)
    unit = next(iter(md.units.values()))
    return simulate(
        plan_batch(
            unit=unit,
            resin=md.resins[unit.resin],
            recipe=next(iter(md.recipes.values())),
            unit_index=0,
            batch_index=batch_index,
            earliest_start_ns=1_735_000_000 * 10**9,
            seed=19,
            fault_rate=1.0 if fault else 0.0,
            force_fault=fault,
            no_fault=fault is None,
            behaviour=behaviour,  # type: ignore[arg-type]
        )
    )


def _load_uv(s: SimBatch) -> np.ndarray:
    k = s.plan.recipe.phase_names().index(s.plan.recipe.load.name)
    return s.signals["uv_mau"][(s.phase_idx == k) & s.keep]


@pytest.fixture(scope="module")
def pair() -> tuple[SimBatch, SimBatch]:
    return _batch(DEFAULT_PROCESS), _batch(FC)


def test_it_differs_from_the_first_family_on_every_axis(pair) -> None:
    a, b = pair
    ra, rb = a.plan.recipe, b.plan.recipe
    assert not set(ra.phase_names()) & {"Pre-rinse", "Feed application", "pH gradient elution"}
    assert "equilibration" not in {p.kind for p in rb.phases}, "no equilibration phase"
    assert rb.phases[0].kind == "other"
    assert rb.phases[-2].kind == "regeneration"
    assert rb.elution.gradient_cv == rb.elution.cv, "a linear gradient elution"
    assert [p.gradient_cv for p in rb.phases_of_kind("wash")].count(0.0) < len(
        rb.phases_of_kind("wash")
    )
    assert b.plan.unit.column_volume_l < a.plan.unit.column_volume_l / 10
    assert 0.70 < b.truth["step_yield"] < 0.88 < a.truth["step_yield"]
    # noisier UV: the load baseline's own noise
    assert noise_sd(_load_uv(b)) > 4 * noise_sd(_load_uv(a))


def test_the_elution_is_a_gradient_at_the_outlet(pair) -> None:
    """The outlet pH of the gradient elution falls steadily across the phase (no step): at a
    quarter, half and three quarters of it the level is in between, in order."""
    _, b = pair
    k = b.plan.recipe.phase_names().index(b.plan.recipe.elution.name)
    ph = b.signals["ph"][(b.phase_idx == k) & ~b.hold]
    n = ph.size
    q = [float(np.median(ph[int(f * n) - 30 : int(f * n) + 30])) for f in (0.25, 0.5, 0.75)]
    start, end = float(np.median(ph[:30])), float(np.median(ph[-30:]))
    assert start > q[0] > q[1] > q[2] > end
    assert q[1] == pytest.approx((start + end) / 2, abs=0.6)


@pytest.mark.parametrize("kind", list(FAULT_KINDS))
def test_every_fault_kind_can_be_injected(kind: str) -> None:
    """Faults find their phase by kind: packing degradation is there from the first phase,
    whatever it is called (here a pre-rinse, no equilibration)."""
    s = _batch(FC, batch_index=3, fault=kind)
    assert s.truth["fault"]["kind"] == kind
    if kind == "packing_degradation":
        assert s.truth["fault"]["phase"] == "Pre-rinse"


def test_the_default_family_keeps_its_behaviour() -> None:
    """The first family's own simulation: no simulation.yaml, the code's defaults."""
    assert process_files(DEFAULT_PROCESS).simulation is None
    with pytest.raises(ValueError, match="unknown process 'nope'"):
        process_files("nope")
