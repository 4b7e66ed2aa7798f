"""Gaps, flatlines, live drift counting and the evaluation's scoring rules, on constructed
inputs."""

import numpy as np
import pyarrow as pa
import pytest

from chrom_platform.evaluation.scoring import (
    alarm_load,
    product_view,
    said_not_judged,
    score,
    user_view,
)
from chrom_platform.lib.analytics.batch_metrics import BatchReadings, PhaseInfo, batch_flatlines
from chrom_platform.lib.analytics.envelope import (
    EnvelopeParams,
    Floor,
    limits,
    neighbours,
    zscores,
)
from chrom_platform.lib.analytics.live import LiveEnvelope, runs_of_out
from chrom_platform.lib.analytics.scans import (
    flatline_judgeable,
    flatlines,
    gaps,
    record_deadbands,
)
from chrom_platform.lib.core.contracts import SIGNALS
from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY
from chrom_platform.lib.core.runs import true_runs

NS = 1_000_000_000


def test_gap_alarm_is_placed_max_gap_seconds_into_the_gap():
    ts = np.array([0, 1, 2, 40, 41]) * NS
    cv = np.array([0.0, 0.01, 0.02, 0.03, 0.04])
    flow = np.full(5, 60.0)  # 60 L/min on a 100 L column: 0.01 CV/s
    (g,) = gaps(ts, cv, flow, column_volume_l=100.0)
    assert g.kind == "gap"
    assert g.index == 2
    assert g.alarm_cv == pytest.approx(0.02 + 60.0 * 10 / 60.0 / 100.0)
    assert "38 s" in g.detail


def test_flatline_needs_the_full_run_and_exempts_saturation():
    rng = np.random.default_rng(1)
    x = np.round(7 + 0.004 * rng.standard_normal(200), 3)
    x[50:90] = x[49]  # 41 identical readings from 49
    cv = np.arange(200) * 0.01
    (f,) = flatlines(x, cv, "ph", scans=30)
    assert f.index == 49 + 29
    assert f.alarm_cv == pytest.approx(cv[78])
    assert flatlines(x, cv, "ph", scans=45) == []
    uv = np.full(100, 3000.0)  # clipped at the detector's limit: not a stuck sensor
    assert flatlines(uv, cv[:100], "uv_mau", scans=30, exempt_at_or_above=3000.0) == []
    assert len(flatlines(uv, cv[:100], "uv_mau", scans=30)) == 1


def test_runs_of_out_carry_over_between_chunks():
    out = np.array([[1, 0], [1, 1], [0, 1], [1, 1]], dtype=bool)
    counts, after = runs_of_out(out, np.array([3, 0]))
    assert counts.tolist() == [[4, 0], [5, 1], [0, 2], [1, 3]]
    assert after.tolist() == [1, 3]
    counts2, _ = runs_of_out(np.ones((2, 2), dtype=bool), after)
    assert counts2.tolist() == [[2, 4], [3, 5]]


def test_live_z_matches_the_batch_z_of_the_same_envelope():
    """The bridge's per-reading z and the analytics' per-bin z are one rule."""
    p = EnvelopeParams(min_batches=3)
    rng = np.random.default_rng(2)
    keys = [(1, "Load", b) for b in range(5)]
    ref = 10 + rng.standard_normal((6, 5, len(SIGNALS)))
    lim = limits(ref, p, Floor.of(DEFAULT_ACCURACY, p.signals))
    rows = [
        {
            "recipe": "R",
            "unit_id": "U",
            "phase": "Load",
            "cv_bin": k[2],
            "signal": s,
            "centre": float(lim.centre[i, j]),
            "scale": float(lim.scale[i, j]),
        }
        for i, k in enumerate(keys)
        for j, s in enumerate(SIGNALS)
    ]
    env = LiveEnvelope.from_table(pa.Table.from_pylist(rows), p.z_limit, p.bin_width_cv)
    values = 10 + 2 * rng.standard_normal((5, len(SIGNALS)))
    expected = zscores(values, lim, neighbours(keys))
    expected[0] = np.nan  # the phase's first bin (the pump ramping) is not judged live
    # one reading at each bin's centre, where the interpolated limits are the bin's own
    phase_cv = (np.arange(5) + 0.5) * p.bin_width_cv
    got = env.z("R", "U", "Load", phase_cv, values)
    assert got is not None
    np.testing.assert_allclose(got, expected)
    assert env.z("R", "U", "Elution", phase_cv, values) is None
    # between two bin centres the limits are interpolated: a value on the interpolated
    # centre has z = 0 where neither bin's own centre would give it
    mid = np.array([(1.5 + 0.5) * p.bin_width_cv + 1e-9])
    between = 0.5 * (lim.centre[1] + lim.centre[2])
    z_mid = env.z("R", "U", "Load", mid, between[None, :])
    assert z_mid is not None
    np.testing.assert_allclose(z_mid[0], 0.0, atol=1e-6)


def _truth(bid: str, fault: dict | None) -> dict:
    return {"batch_id": bid, "fault": fault, "hetp_cm": 0.04, "asymmetry": 1.2, "step_yield": 0.9}


def test_score_counts_only_matching_alarms_after_onset_and_any_alarm_as_false():
    truth = [
        _truth("A", {"kind": "wrong_buffer", "signals": ["cond_ms_cm"], "onset_batch_cv": 20.0}),
        _truth("B", {"kind": "wrong_buffer", "signals": ["cond_ms_cm"], "onset_batch_cv": 20.0}),
        _truth("C", {"kind": "sensor_flatline", "signals": ["ph"], "onset_batch_cv": 5.0}),
        _truth("D", None),
        _truth("E", None),
        _truth("W", None),  # warm-up: not scored
    ]
    for t in truth:
        if t["fault"]:
            t["fault"]["phase"] = "Wash 1"
            t["fault"]["magnitude"] = {}
    verdicts = [{"batch_id": b, "reference_batches": 0 if b == "W" else 9} for b in "ABCDEW"]
    alarms = [
        {"batch_id": "A", "source": "drift", "signal": "cond_ms_cm", "alarm_cv": 20.3},
        {"batch_id": "B", "source": "drift", "signal": "cond_ms_cm", "alarm_cv": 10.0},  # early
        {"batch_id": "B", "source": "drift", "signal": "ph", "alarm_cv": 20.4},  # wrong signal
        {"batch_id": "C", "source": "flatline", "signal": "ph", "alarm_cv": 5.1},
        {"batch_id": "E", "source": "gap", "signal": None, "alarm_cv": 3.0},
        {"batch_id": "W", "source": "gap", "signal": None, "alarm_cv": 3.0},
    ]
    perf = [{"batch_id": "A", "batch_hetp_cm": 0.042, "batch_asymmetry": 1.08}]
    results = [{"batch_id": "A", "step_yield": 0.905, "uv_saturated": False}]
    s = score(truth, verdicts, alarms, perf, results, min_batches=8)
    assert s.warm_up == 1
    assert (s.scored_faulty, s.scored_clean) == (3, 2)
    assert s.per_kind["wrong_buffer"]["detected"] == 1
    assert s.recall == pytest.approx(2 / 3)
    assert s.false_alarm_rate == pytest.approx(0.5)
    assert s.median_delay_cv == pytest.approx(0.2)  # delays 0.3 and 0.1
    assert s.hetp_error_max == pytest.approx(0.05)
    assert s.asymmetry_error_max == pytest.approx(0.10)
    assert s.step_yield_error_pp_max == pytest.approx(0.5)
    assert [m["batch_id"] for m in s.missed] == ["B"]


def test_a_signal_coarser_than_its_noise_repeats_without_being_stuck():
    """A pH transmitter reporting 0.01 in a steady buffer (noise 0.003) repeats a value for
    tens of scans by itself: not a flatline; a sensor stuck for 900 scans still is."""
    rng = np.random.default_rng(3)
    x = np.round(7 + 0.003 * rng.standard_normal(6000), 2)
    cv = np.arange(6000) * 0.001
    same = x[1:] == x[:-1]
    starts, lasts = true_runs(same)
    assert (lasts - starts + 2).max() >= 30  # runs the fixed 30-scan rule called stuck
    assert flatlines(x, cv, "ph", scans=30) == []
    x[3000:3900] = x[2999]
    (f,) = flatlines(x, cv, "ph", scans=30)
    assert 2999 + 30 < f.index < 3899  # later than 30 scans, within the stuck stretch
    assert "its other runs reach" in f.detail


def test_user_view_counts_every_error_a_fault_free_batch_shows():
    truth = [
        {"batch_id": "B1", "fault": None},
        {"batch_id": "B2", "fault": None},
        {"batch_id": "B3", "fault": None},
        {"batch_id": "B4", "fault": {"kind": "pump_fault"}},
    ]
    verdicts = [
        {"batch_id": "B1", "verdict": "fail", "released": False},
        {"batch_id": "B2", "verdict": "pass", "released": True},
        {"batch_id": "B3", "verdict": "pass", "released": True},
        {"batch_id": "B4", "verdict": "fail", "released": False},
    ]
    alarms = [
        {"batch_id": "B1", "source": "flatline", "signal": "ph"},
        {"batch_id": "B4", "source": "drift", "signal": "flow_lpm"},
    ]
    checks = [  # an ERROR check naming a good batch counts; one naming the faulty one does not
        {"check": "latest_batches_in_mspc_limits", "severity": "ERROR", "batches": ["B2", "B4"]},
        {"check": "flatlined_signals", "severity": "WARN", "batches": ["B3"]},
    ]
    v = user_view(truth, verdicts, alarms, checks)
    assert v["fault_free_batches"] == 3
    assert v["fail_verdict_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert v["any_error_rate"] == pytest.approx(2 / 3, abs=1e-4)  # B1's verdict, B2's check
    assert v["released_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert v["alarm_sources_on_fault_free"] == {"flatline:ph": 1}
    assert v["checks_naming_fault_free"] == {
        "ERROR": {"latest_batches_in_mspc_limits": ["B2"]},
        "WARN": {"flatlined_signals": ["B3"]},
    }


def test_product_view_scores_each_batch_as_its_checks_show_it():
    """Per batch the worst of what the product shows: gold's alarms by severity, the
    multivariate verdict (a young model's alarm a WARN), and "cannot judge" (no envelope,
    no model) a WARN, never a pass; errors in a row per unit; faults found by any source."""
    clean = {"fault": None}
    truth = [
        {"batch_id": "U1-B1", "unit_id": "U1", **clean},
        {"batch_id": "U1-B2", "unit_id": "U1", **clean},
        {"batch_id": "U1-B3", "unit_id": "U1", **clean},
        {"batch_id": "U1-B4", "unit_id": "U1", **clean},
        {
            "batch_id": "U1-B5",
            "unit_id": "U1",
            "fault": {"kind": "ph_drift", "onset_batch_cv": 10.0},
        },
        {"batch_id": "U2-B1", "unit_id": "U2", **clean},
    ]
    verdicts = [  # U2-B1 has no envelope yet (1 reference batch)
        {"batch_id": t["batch_id"], "reference_batches": 1 if t["unit_id"] == "U2" else 9}
        for t in truth
    ]
    mspc = [
        {"batch_id": "U1-B1", "verdict": "pass"},
        {"batch_id": "U1-B2", "verdict": "alarm"},  # its ERROR comes in `alarms`
        {"batch_id": "U1-B3", "verdict": "alarm"},
        {"batch_id": "U1-B4", "verdict": "pass"},
        {"batch_id": "U1-B5", "verdict": "alarm"},
        {"batch_id": "U2-B1", "verdict": "no_model"},
    ]
    h = 3_600 * NS
    alarms = [
        {"batch_id": "U1-B2", "unit_id": "U1", "source": "mspc", "signal": "spe",
         "severity": "ERROR", "alarm_cv": 5.0, "ts": 1 * h},
        {"batch_id": "U1-B3", "unit_id": "U1", "source": "spec", "signal": "ph",
         "severity": "ERROR", "alarm_cv": 3.0, "ts": 25 * h},
        {"batch_id": "U1-B4", "unit_id": "U1", "source": "column", "signal": "hetp",
         "severity": "WARN", "alarm_cv": None, "ts": 49 * h},
        {"batch_id": "U1-B5", "unit_id": "U1", "source": "mspc", "signal": "t2",
         "severity": "WARN", "alarm_cv": 12.0, "ts": 73 * h},
    ]  # fmt: skip
    v = product_view(truth, verdicts, alarms, mspc, min_batches=8)
    assert v["fault_free_batches"] == 5
    assert v["false_error_rate"] == pytest.approx(2 / 5, abs=1e-4)  # U1-B2, U1-B3
    assert v["false_warn_rate"] == pytest.approx(2 / 5, abs=1e-4)  # U1-B4; U2-B1 unjudged
    assert [e["batch_id"] for e in v["false_errors"]] == ["U1-B2", "U1-B3"]
    assert v["per_unit"]["U1"]["longest_error_run"] == 2
    assert v["per_unit"]["U1"]["error_rate"] == pytest.approx(0.5)
    assert v["worst_unit_error_rate"] == pytest.approx(0.5)
    assert v["unjudged_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert v["recall_all_batches"] == 1.0, "a young model's alarm after the onset finds it"
    load = v["alarm_load"]["all_batches"]
    assert load["alarms"] == 4
    assert load["per_unit_per_day"] == pytest.approx(4 / 2 / 3.0, abs=0.01)  # 2 units, 72 h
    assert load["max_in_10_min"] == 1
    assert load["chattering"] == 0
    assert v["alarm_load"]["fault_free_batches"]["alarms"] == 3


def test_alarm_load_finds_a_flood_and_a_chattering_alarm():
    s = NS
    alarms = [  # the same alarm three times in 50 s, and 12 alarms within 10 minutes
        {"batch_id": "B", "unit_id": "U", "source": "spec", "signal": "ph", "severity": "WARN",
         "ts": t * s}
        for t in (0, 20, 50)
    ] + [
        {"batch_id": "B", "unit_id": "U", "source": "drift", "signal": f"s{i}",
         "severity": "ERROR", "ts": (100 + 40 * i) * s}
        for i in range(12)
    ] + [{"batch_id": "B", "unit_id": "U", "source": "x", "signal": "y", "severity": None,
          "ts": 0}]  # fmt: skip
    load = alarm_load(alarms)
    assert load["alarms"] == 15, "only annunciated alarms (ERROR, WARN) count"
    assert load["chattering"] == 1
    assert load["max_in_10_min"] == 15
    spread = [dict(a, ts=a["ts"] * 100) for a in alarms]  # 40 s -> 67 min apart
    assert alarm_load(spread)["chattering"] == 0
    assert alarm_load(spread)["max_in_10_min"] < 15


def test_a_compressed_record_says_which_flatlines_it_cannot_judge():
    """The deadbands landed with a batch are read strictly (a bad one is an error, never
    taken for "uncompressed"), and a signal stored with one is not judged for flatlines."""
    deadbands = record_deadbands('{"cond_ms_cm": 0.05, "ph": 0}')
    assert deadbands == {"cond_ms_cm": 0.05, "ph": 0.0}
    assert record_deadbands(None) == {}
    held = np.repeat(np.arange(100.0), 60)  # one value a minute: the deadband hides the noise
    noisy = np.random.default_rng(2).normal(0.0, 1.0, 6000).round(1)  # noise above it
    assert not flatline_judgeable("cond_ms_cm", deadbands, held)
    assert flatline_judgeable("cond_ms_cm", deadbands, noisy)
    assert flatline_judgeable("ph", deadbands, held)  # a deadband of 0: not compressed
    assert flatline_judgeable("uv_mau", deadbands, held)
    for bad in ('{"ph": -1}', '{"ph": "x"}', "[1]", '{"ph": true}'):
        with pytest.raises(ValueError, match="record_deadbands"):
            record_deadbands(bad)


def test_a_compressed_signal_is_judged_for_flatlines_only_where_a_gradient_moves_it():
    """pH stored with a 0.01 deadband: a steady wash repeats one value for its whole length
    (not judged: steady and stuck look alike); inside a 10 CV gradient from pH 6 to 3 the
    record must step every 0.033 CV, so a value held for 1 CV is a stuck probe."""
    phases = {
        "Wash": PhaseInfo(0, 1.0, "wash", ph_range=(5.9, 6.1)),
        "Gradient": PhaseInfo(1, 1.0, "elution", gradient_cv=10.0, ph_range=(2.9, 3.1)),
    }
    n_wash, n_grad = 1500, 3000
    pcv = np.r_[np.arange(n_wash) / 300.0, np.arange(n_grad) / 300.0]
    true_ph = np.r_[np.full(n_wash, 6.0), 6.0 - 3.0 * np.clip((pcv[n_wash:] - 1.0) / 9.0, 0, 1)]
    held = np.round(true_ph / 0.02) * 0.02  # a value only when it moves past the deadband
    signals = {s: np.linspace(0.0, 1.0, n_wash + n_grad) for s in SIGNALS}  # never flat

    def judged(ph: np.ndarray):
        r = BatchReadings(
            batch_id="B1",
            ts_ns=np.arange(ph.size, dtype=np.int64) * NS,
            phase=np.array(["Wash"] * n_wash + ["Gradient"] * n_grad),
            batch_cv=np.arange(ph.size) / 300.0,
            phase_cv=pcv,
            is_hold=np.zeros(ph.size, dtype=bool),
            signals={**signals, "ph": ph},
            deadbands={"ph": 0.01},
        )
        return batch_flatlines(r, phases, uv_max_mau=3000.0)

    found, compressed = judged(held)
    assert found == []
    assert compressed == {"ph": (0.01, ("Gradient",))}
    stuck = held.copy()
    stuck[n_wash + 1500 : n_wash + 1800] = stuck[n_wash + 1499]  # 1 CV at phase CV 5
    found, _ = judged(stuck)
    (f,) = found
    assert f.signal == "ph"
    assert n_wash + 1500 < f.index < n_wash + 1800


def test_a_stuck_sensor_the_verdict_said_it_could_not_judge_is_counted_apart():
    """The verdict's not_judged names the signals whose compressed record hides a stuck
    sensor (and the gradient phases where it was judged all the same): a fault there is
    neither found nor missed; one in a judged phase, or on another signal, is a miss."""
    said = {
        "verdict": "pass",
        "not_judged": "flatline on ph (0.01), cond_ms_cm (0.05; judged in Elution): its record",
    }

    def fault(signal: str, phase: str) -> dict:
        return {"kind": "sensor_flatline", "signals": [signal], "phase": phase}

    assert said_not_judged(fault("ph", "Wash 2"), said)
    assert said_not_judged(fault("cond_ms_cm", "Wash 2"), said)
    assert not said_not_judged(fault("cond_ms_cm", "Elution"), said)
    assert not said_not_judged(fault("uv_mau", "Wash 2"), said)
    assert not said_not_judged(fault("ph", "Wash 2"), {"verdict": "pass", "not_judged": None})
    assert not said_not_judged({**fault("ph", "Wash 2"), "kind": "ph_drift"}, said)
    # in score(): counted apart, neither found nor missed; found all the same, it counts
    flat = {"kind": "sensor_flatline", "signals": ["ph"], "phase": "Wash 2", "magnitude": {}}
    truth = [
        _truth("S", {**flat, "onset_batch_cv": 5.0}),
        _truth("F", {**flat, "onset_batch_cv": 5.0}),
    ]
    verdicts = [{**said, "batch_id": b, "reference_batches": 9} for b in "SF"]
    alarms = [{"batch_id": "F", "source": "flatline", "signal": "ph", "alarm_cv": 5.2}]
    s = score(truth, verdicts, alarms, [], [], min_batches=8)
    assert [n["batch_id"] for n in s.not_judgeable] == ["S"]
    assert (s.scored_faulty, s.recall, s.missed) == (1, 1.0, [])


def test_live_drift_judges_each_recipe_by_its_own_z_limit(md):
    """The exported envelope rows carry each recipe's z limit (master data): the same
    reading 4 scales off the centre is outside for a recipe at z 3 and inside for one at
    the platform's 6; rows from before the column existed take the platform's."""
    from chrom_platform.lib.analytics.live import LiveDrift
    from chrom_platform.lib.core.readings import Readings

    unit = next(iter(md.units))
    rows = [
        {"recipe": r, "unit_id": unit, "phase": "Load", "cv_bin": b, "signal": s,
         "centre": 10.0, "scale": 1.0, "z_limit": z}
        for r, z in (("TIGHT", 3.0), ("LOOSE", None))
        for b in range(10)
        for s in SIGNALS
    ]  # fmt: skip
    env = LiveEnvelope.from_table(pa.Table.from_pylist(rows), 6.0, 0.1)
    assert env.by_key[("TIGHT", unit, "Load")].z_limit == 3.0
    assert env.by_key[("LOOSE", unit, "Load")].z_limit == 6.0
    old = pa.Table.from_pylist(rows).drop_columns(["z_limit"])
    assert LiveEnvelope.from_table(old, 6.0, 0.1).by_key[("TIGHT", unit, "Load")].z_limit == 6.0

    class Source:
        def get(self) -> LiveEnvelope:
            return env

    n = 20
    readings = Readings(
        index=np.arange(n),
        unit_id=[unit] * n,
        batch_id=["B1"] * 10 + ["B2"] * 10,
        recipe=["TIGHT"] * 10 + ["LOOSE"] * 10,
        phase=["Load"] * n,
        ts_ns=np.arange(n, dtype=np.int64) * NS,
        seq=np.arange(n, dtype=np.int64),
        signals={s: np.full(n, 14.0) for s in SIGNALS},  # flow far above the dead band
        extra=[None] * n,
    )
    phase_cv = np.tile(np.arange(10) * 0.1 + 0.15, 2)
    out = LiveDrift(Source(), md).lines(readings, phase_cv, phase_cv)  # type: ignore[arg-type]
    outside = {"TIGHT": set(), "LOOSE": set()}
    for line in b"".join(out.chunks).decode().splitlines():
        tags, fields, _ = line.split(" ")
        recipe = dict(kv.split("=") for kv in tags.split(",")[1:])["recipe"]
        outside[recipe].add(dict(kv.split("=") for kv in fields.split(","))["out_ph"])
    assert outside == {"TIGHT": {"1i"}, "LOOSE": {"0i"}}
