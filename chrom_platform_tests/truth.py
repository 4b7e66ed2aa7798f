"""Ground truth in tests: the simulator's own per-reading CV, and the tolerance every CV the
platform computes (live bridge, warehouse) is held to."""

from __future__ import annotations

import numpy as np

from chrom_platform.lib.core.master_data import MasterData
from simulator.batch import SimBatch


def truth_cv(sims: list[SimBatch], md: MasterData) -> dict[tuple[str, int], float]:
    """The simulator's own totalized batch CV for every reading it sent."""
    out = {}
    for sim in sims:
        unit = sim.plan.unit
        k = sim.keep
        cv = sim.volume_true_l[k] / md.units[unit.unit_id].column_volume_l
        for seq, c in zip(sim.seq[k].tolist(), cv.tolist(), strict=True):
            out[(unit.unit_id, seq)] = c
    return out


def assert_cv_matches_truth(points: dict, truth: dict[tuple[str, int], float]) -> float:
    """batch_cv within 0.1% of the simulator's (absolute 0.001 CV near a batch's start)."""
    keys = sorted(truth)
    got = np.array([points[k]["batch_cv"] for k in keys])
    want = np.array([truth[k] for k in keys])
    err = np.abs(got - want)
    tol = np.maximum(1e-3 * want, 1e-3)
    worst = int(np.argmax(err / tol))
    assert (err <= tol).all(), f"batch_cv off at {keys[worst]}: {got[worst]} vs {want[worst]}"
    return float(np.max(err / np.maximum(want, 1e-9), initial=0.0))
