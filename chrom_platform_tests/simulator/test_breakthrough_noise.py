"""Breakthrough is judged against the load baseline's own noise as well as the feed: on a
weakly absorbing product (a short UV path), noise alone must not read as breakthrough, and
a real early breakthrough is still caught."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chrom_platform.lib.analytics.batch_metrics import BREAKTHROUGH_ALARM_FRACTION
from chrom_platform.lib.analytics.column import breakthrough_cv
from chrom_platform.lib.core.master_data import MasterData
from simulator.batch import SimBatch, plan_batch, simulate

N_BATCHES = 100
START_NS = 1_700_000_000_000_000_000


def _batches(md: MasterData, *, fault: str | None, n: int) -> list[SimBatch]:
    # a 0.02 cm UV path: the feed's product reads ~85 mAU, so 3% of it (2.5 mAU) is far below
    # 10 mAU of detector noise
    unit = replace(md.units["SKID-01"], uv_path_length_cm=0.02)
    recipe = md.recipes["MAB1-PROA-V3"]
    out = []
    for i in range(n):
        plan = plan_batch(
            unit=unit,
            resin=md.resins[unit.resin],
            recipe=recipe,
            unit_index=0,
            batch_index=i,
            earliest_start_ns=START_NS,
            seed=101,
            fault_rate=1.0 if fault else 0.0,
            force_fault=fault,
            no_fault=fault is None,
        )
        out.append(simulate(plan))
    return out


def _alarm_cv(sim: SimBatch, extra_sd: float, rng: np.random.Generator, noise_k: float) -> float:
    """The alarm's load CV on the batch's load readings with extra detector noise."""
    p = sim.plan
    k = list(p.recipe.phase_names()).index(p.recipe.load.name)
    rows = np.flatnonzero((sim.phase_idx == k) & ~sim.hold & sim.keep)
    vol = sim.volume_true_l[rows]
    v = (vol - vol[0]) / p.unit.column_volume_l
    uv = sim.signals["uv_mau"][rows] + rng.normal(0.0, extra_sd, rows.size)
    feed_mau = p.titer_lab_g_l * p.recipe.extinction_l_g_cm * p.unit.uv_path_length_cm * 1000
    kw = {} if noise_k < 0 else {"noise_k": noise_k}
    return breakthrough_cv(v, uv, feed_mau, BREAKTHROUGH_ALARM_FRACTION, **kw)


@pytest.fixture(scope="module")
def clean(md) -> list[SimBatch]:
    return _batches(md, fault=None, n=N_BATCHES)


@pytest.mark.parametrize("extra_sd", [0.0, 2.0, 5.0, 10.0])
def test_noise_alone_does_not_read_as_breakthrough(clean, extra_sd) -> None:
    rng = np.random.default_rng(7)
    alarms = sum(np.isfinite(_alarm_cv(s, extra_sd, rng, noise_k=-1)) for s in clean)
    assert alarms / len(clean) <= 0.01, f"{alarms} of {len(clean)} clean batches alarmed"


def test_the_feed_relative_rule_alone_rings_on_noise(clean) -> None:
    """The control: without the noise term, 10 mAU of noise raises breakthrough on good
    batches (the rule this replaced), so the test above can fail."""
    rng = np.random.default_rng(7)
    alarms = sum(np.isfinite(_alarm_cv(s, 10.0, rng, noise_k=0.0)) for s in clean)
    assert alarms / len(clean) > 0.1  # 24 of 100 when measured


def test_an_early_breakthrough_is_still_caught_in_that_noise(md) -> None:
    rng = np.random.default_rng(7)
    faulty = _batches(md, fault="early_breakthrough", n=60)
    caught = [np.isfinite(_alarm_cv(s, 10.0, rng, noise_k=-1)) for s in faulty]
    assert sum(caught) / len(caught) >= 0.9  # 57 of 60 when measured
