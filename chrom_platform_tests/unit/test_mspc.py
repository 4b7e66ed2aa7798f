"""Multivariate monitoring (lib/analytics/mspc.py): the model against a plain PCA, T2
contributions that add up, a shifted signal named, no model said as such, and the live
bridge's bin-by-bin scoring equal to the batch scoring."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from chrom_platform.evaluation.sweep import sim_bins
from chrom_platform.lib.analytics import mspc
from chrom_platform.lib.analytics.bins import binned_batches
from chrom_platform.lib.analytics.envelope import DEFAULT_FLOOR, BinnedBatches
from chrom_platform.lib.analytics.live_mspc import LiveModels, LiveMspc
from chrom_platform.lib.analytics.mspc_run import (
    MspcRunParams,
    MspcRunResult,
    judge_group,
    models_bytes,
    verdict_severity,
)
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.readings import Readings

N, K = 40, 60


def _batches(rng: np.random.Generator, n: int) -> np.ndarray:
    """n batches over K bins of two phases: a mean trajectory, three shared sources of
    batch-to-batch variation, and noise; levels far above the envelope's scale floors."""
    base = 100.0 + 10.0 * np.sin(np.linspace(0, 3, K))[:, None] * np.arange(1, 6)
    loads = rng.normal(size=(3, K, len(SIGNALS)))
    z = rng.normal(size=(n, 3))
    return base + 2.0 * np.einsum("nf,fkj->nkj", z, loads) + rng.normal(size=(n, K, len(SIGNALS)))


def _group(values: np.ndarray) -> BinnedBatches:
    keys = [(1 if k < K // 2 else 2, "A" if k < K // 2 else "B", k % (K // 2)) for k in range(K)]
    cvs = np.tile(np.arange(K) * 0.1, (values.shape[0], 1))
    return BinnedBatches("R", "U", [f"b{i}" for i in range(len(values))], keys, values, cvs)


@pytest.fixture(scope="module")
def fitted() -> tuple[BinnedBatches, mspc.MspcModel]:
    rng = np.random.default_rng(3)
    g = _group(_batches(rng, N + 10))
    m = mspc.fit(g, list(range(N)), mspc.MspcParams(components=3), DEFAULT_FLOOR)
    assert m is not None
    return g, m


def test_full_batch_scores_are_the_projection_on_a_plain_pca(fitted) -> None:
    g, m = fitted
    x = (g.values[:N] - m.mean) / m.scale
    _, _, vt = np.linalg.svd(x.reshape(N, -1) - x.reshape(N, -1).mean(axis=0), full_matrices=False)
    plain = x.reshape(N, -1) @ vt[:3].T
    ours = np.array([m.score(g.values[i]).scores[-1] for i in range(N)])
    for a in range(3):  # the same components, up to sign
        assert abs(np.corrcoef(plain[:, a], ours[:, a])[0, 1]) > 1 - 1e-9


def test_t2_contributions_add_up_to_t2(fitted) -> None:
    g, m = fitted
    tr = m.score(g.values[N + 1])
    c = mspc.t2_contributions(m, tr)
    assert np.allclose(c.sum(axis=1)[5:], tr.t2[5:], rtol=1e-8)


def test_a_shift_in_one_signal_alarms_after_it_and_names_it(fitted) -> None:
    g, m = fitted
    clean = g.values[N + 2]
    assert mspc.judge(m, m.score(clean), g.batch_cv[0]).verdict == "pass"
    shifted = clean.copy()
    j = SIGNALS.index("pressure_bar")
    shifted[40:, j] += 6.0 * m.scale[40:, j]
    verdict = mspc.judge(m, m.score(shifted), g.batch_cv[0])
    assert verdict.verdict == "alarm"
    assert verdict.alarm is not None
    assert verdict.alarm.bin_index >= 40
    assert verdict.alarm.top(1) == ["pressure_bar"]


def test_too_few_batches_is_no_model_never_a_pass(fitted) -> None:
    g, _ = fitted
    assert mspc.fit(g, list(range(5)), mspc.MspcParams(), DEFAULT_FLOOR) is None
    assert mspc.judge(None, None).verdict == "no_model"


def test_limits_are_widened_so_that_forward_scored_batches_rarely_alarm(fitted) -> None:
    _, m = fitted
    assert m.limit_factor >= 1.0
    assert np.all(m.t2_limit[np.isfinite(m.t2_limit)] > 0)
    assert np.all(m.spe_limit > 0)


def test_limits_rest_on_an_upper_bound_of_the_quantile_not_its_estimate() -> None:
    """A 1% quantile estimated from a dozen forward-scored batches falls below the true one
    about half the time (so fault-free batches alarm above the design rate); its upper 90%
    bound covers it about 80-90% of the time, and the margin shrinks as batches accrue."""
    rng = np.random.default_rng(5)
    bound, point = mspc.MspcParams(), mspc.MspcParams(limit_confidence=None)
    true_q = 1.0 - 0.1 * np.log(-np.log(0.99))  # of a Gumbel(1, 0.1)
    draws = [rng.gumbel(1.0, 0.1, 12) for _ in range(2000)]
    covered = np.mean([mspc.gumbel_quantile(x, bound) >= true_q for x in draws])
    covered_point = np.mean([mspc.gumbel_quantile(x, point) >= true_q for x in draws])
    assert covered > 0.75, covered
    assert covered_point < 0.6, covered_point
    many = rng.gumbel(1.0, 0.1, 5000)
    margin_few = mspc.gumbel_quantile(draws[0], bound) - mspc.gumbel_quantile(draws[0], point)
    margin_many = mspc.gumbel_quantile(many, bound) - mspc.gumbel_quantile(many, point)
    assert 0 < margin_many < 0.1 * margin_few
    assert mspc.gumbel_quantile(many, point) == pytest.approx(true_q, abs=0.02)


def test_a_young_models_alarm_warns_and_a_mature_ones_fails(fitted) -> None:
    g, m = fitted  # 40 reference batches
    young = mspc.fit(g, list(range(12)), mspc.MspcParams(components=3), DEFAULT_FLOOR)
    assert young is not None
    assert len(m.batch_ids) >= m.params.mature_batches > len(young.batch_ids)
    assert verdict_severity(m, "alarm") == "ERROR"
    assert verdict_severity(young, "alarm") == "WARN"
    assert verdict_severity(None, "no_model") == "WARN", "no model is said, never passed"
    assert verdict_severity(m, "pass") is None


def test_the_model_follows_a_process_that_moved_and_never_stays_stuck() -> None:
    """From batch 20 on, every batch runs 8 bar-units higher in pressure (a new normal the
    platform releases: a new resin lot). Without following, the model alarms on all 20
    batches after it; with it, on `follow_after` batches, then they enter its reference."""
    rng = np.random.default_rng(7)
    values = _batches(rng, 40)
    values[20:, :, SIGNALS.index("pressure_bar")] += 8.0
    g = _group(values)
    ids = g.batch_ids

    def walk(follow_after: int) -> list[dict]:
        params = MspcRunParams(model=mspc.MspcParams(components=3), follow_after=follow_after)
        rows, _ = judge_group(
            g,
            params,
            MspcRunResult(),
            floor=DEFAULT_FLOOR,
            status=dict.fromkeys(ids, "complete"),
            released=dict.fromkeys(ids, True),
            pinned=set(),
            prev={},
        )
        by = {r["batch_id"]: r for r in rows}
        return [by[b] for b in ids]

    stuck = walk(10**6)
    assert all(r["verdict"] == "alarm" for r in stuck[20:])
    followed = walk(2)
    assert [r["verdict"] for r in followed[20:22]] == ["alarm", "alarm"]
    assert all(r["eligible"] and "admitted to the model" in r["detail"] for r in followed[20:22])
    assert all(r["verdict"] == "pass" for r in followed[22:]), [r["verdict"] for r in followed]
    assert all(r["verdict"] == "pass" for r in followed[12:20])


def _sim_batches(n: int):
    """A unit's first n fault-free batches, as a backfill lands them."""
    from chrom_platform.lib.core.master_data import load_master_data
    from simulator import DEFAULT_PROCESS, process_files
    from simulator.landing import unit_batches, unit_jobs

    files = process_files(DEFAULT_PROCESS)
    md = load_master_data(files.equipment, files.recipes)
    job = unit_jobs(
        md,
        landing="",
        units=1,
        batches_per_unit=n,
        seed=23,
        fault_rate=0.0,
        equipment_path=files.equipment,
        recipes_path=files.recipes,
    )[0]
    return md, md.units[job.unit_id], md.recipes[job.recipe], list(unit_batches(job, md))


def test_the_live_bridge_scores_each_bin_as_the_batch_scoring_does() -> None:
    md, unit, recipe, sims = _sim_batches(mspc.MspcParams().min_batches + 1)

    g = binned_batches(
        recipe.recipe,
        unit.unit_id,
        [s.plan.batch_id for s in sims],
        [sim_bins(s, unit) for s in sims],
        list(recipe.phase_names()),
    )
    model = mspc.fit(g, list(range(len(sims) - 1)), mspc.MspcParams(), DEFAULT_FLOOR)
    assert model is not None
    values, bcv = model.batch(g, len(sims) - 1)
    expected = model.score(values)
    rt, rs = mspc.ratios(model, expected)

    import io

    import pyarrow.parquet as pq

    live_models = LiveModels.from_table(pq.read_table(io.BytesIO(models_bytes([model]))), 0.1)

    class Source:
        def get(self) -> LiveModels:
            return live_models

    from chrom_platform.lib.core import cv

    s = sims[-1]
    k = s.keep
    names = np.array(recipe.phase_names())
    phase = names[s.phase_idx[k]]
    res = cv.integrate(
        s.ts_ns[k],
        s.signals["flow_lpm"][k],
        phase,
        column_volume_l=unit.column_volume_l,
        deadband_lpm=unit.flow_deadband_lpm,
    )
    n = int(k.sum())
    readings = Readings(
        index=np.arange(n),
        unit_id=[unit.unit_id] * n,
        batch_id=[s.plan.batch_id] * n,
        recipe=[recipe.recipe] * n,
        phase=phase.tolist(),
        ts_ns=s.ts_ns[k],
        seq=s.seq[k],
        signals={x: s.signals[x][k] for x in SIGNALS},
        extra=[None] * n,
    )
    live = LiveMspc(Source(), md)  # type: ignore[arg-type]
    points = 0
    # in chunks the bridge might pull, with the running state through JSON between them
    for a in range(0, n, 997):
        b = min(n, a + 997)
        out = live.lines(readings.take(np.arange(a, b)), res.phase_cv[a:b], res.batch_cv[a:b])
        points += out.points
        live.running = json.loads(json.dumps(live.running))
        for chunk in out.chunks:
            for line in chunk.decode().splitlines():
                tags, fields, _ = re.split(r"(?<!\\) ", line)
                f = dict(kv.split("=") for kv in fields.split(","))
                ph = dict(kv.split("=") for kv in tags.split(",")[1:])["phase"].replace("\\ ", " ")
                cvb = float(f["batch_cv"])
                # the model bin of this point: the phase's bin whose mean batch CV matches
                cand = [
                    i for i, key in enumerate(model.keys) if key[1] == ph and expected.observed[i]
                ]
                i = min(cand, key=lambda c: abs(bcv[c] - cvb))
                assert abs(bcv[i] - cvb) < 1e-9
                assert float(f["t2_ratio"]) == pytest.approx(rt[i], rel=1e-6)
                assert float(f["spe_ratio"]) == pytest.approx(rs[i], rel=1e-6)
    # every bin but the open last one is scored
    assert points >= int(expected.observed.sum()) - 1
