"""A batch judged against its recipe's specifications (master data) from the first batch
on: settled conductivity and pH within the buffer's ranges, flow near its set point."""

from __future__ import annotations

import numpy as np

from chrom_platform.lib.analytics.specs import RUN_S, SETTLE_CV, PhaseSpec, phase_findings

N = 1200  # a 4 CV phase at 300 scans per CV
V = np.arange(N) / 300.0
ROWS = np.arange(N)
SPEC = PhaseSpec(
    "Wash 2", flow_lpm=50.0, flow_tolerance=0.10, cond_range=(45.6, 50.4), ph_range=(5.4, 5.6)
)


def _signals(cond: float = 48.0, ph: float = 5.5, flow: float = 50.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "cond_ms_cm": cond + 0.05 * rng.standard_normal(N),
        "ph": ph + 0.004 * rng.standard_normal(N),
        "flow_lpm": flow + 0.15 * rng.standard_normal(N),
    }


def test_a_phase_within_its_specs_raises_nothing() -> None:
    s = _signals()
    s["cond_ms_cm"][500] = 60.0  # one reading outside is noise, not a wrong buffer
    found, skipped = phase_findings(SPEC, ROWS, V, V + 10.0, s)
    assert found == []
    assert skipped == []


def test_a_wrong_buffer_and_a_weak_pump_are_out_of_spec_where_first_seen() -> None:
    s = _signals(cond=48.0 * 1.3)
    s["flow_lpm"][600:] *= 0.75
    found, _ = phase_findings(SPEC, ROWS, V, V + 10.0, s)
    by = {f.signal: f for f in found}
    assert set(by) == {"cond_ms_cm", "flow_lpm"}
    first_settled = int(np.searchsorted(V, SETTLE_CV))
    assert by["cond_ms_cm"].index == first_settled + RUN_S - 1
    assert "outside the buffer's range 45.6-50.4 in Wash 2" in by["cond_ms_cm"].detail
    assert by["flow_lpm"].index == 600 + RUN_S - 1
    assert by["flow_lpm"].alarm_cv == V[600 + RUN_S - 1] + 10.0
    assert "off its set point 50 L/min (+/-10%)" in by["flow_lpm"].detail


def test_what_cannot_be_judged_is_said() -> None:
    """A gradient elution never settles; a buffer without a range in master data has none
    to judge against: both are said, never passed."""
    gradient = PhaseSpec("Elution", 20.0, 0.1, (1.9, 2.1), (2.9, 3.1), gradient_cv=4.0)
    found, skipped = phase_findings(gradient, ROWS, V, V, _signals(cond=3.0, ph=4.0, flow=20.0))
    assert found == []
    assert any(x.startswith("cond_ms_cm: the phase does not settle") for x in skipped)
    no_range = PhaseSpec("Wash 2", 50.0, 0.1, None, None)
    found, skipped = phase_findings(no_range, ROWS, V, V, _signals(cond=99.0))
    assert found == []
    assert "cond_ms_cm: no range in master data for the phase's buffer" in skipped


def test_a_compressed_record_is_judged_only_beyond_its_deadband() -> None:
    """A historian that stores conductivity only when it moves by more than 0.5 mS/cm holds
    a value that may be that far from the true level: just outside the range is not judged
    (said, with the deadband), beyond range + deadband is out of spec as before."""
    held = {**_signals(), "cond_ms_cm": np.full(N, 50.7)}  # 0.3 above the range's 50.4
    found, skipped = phase_findings(SPEC, ROWS, V, V, held, {"cond_ms_cm": 0.5})
    assert found == []
    (said,) = skipped
    assert said.startswith("cond_ms_cm 50.7 mS/cm outside the buffer's range 45.6-50.4")
    assert "within the record's deadband 0.5: cannot judge" in said
    # the same record without a deadband is out of spec; beyond the guard band it is too
    found, _ = phase_findings(SPEC, ROWS, V, V, held)
    assert [f.signal for f in found] == ["cond_ms_cm"]
    held["cond_ms_cm"][:] = 51.0
    found, skipped = phase_findings(SPEC, ROWS, V, V, held, {"cond_ms_cm": 0.5})
    assert [f.signal for f in found] == ["cond_ms_cm"]
    assert skipped == []
