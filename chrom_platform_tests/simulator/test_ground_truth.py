"""The simulator's data agrees with its own ground truth, read back from the landing zone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chrom_platform.lib.core import cv
from chrom_platform.lib.core.contracts import SIGNALS, iso_to_ns


def test_history_has_faults_holds_and_all_units(history):
    assert len(history.truths) == 12
    assert {t["unit_id"] for t in history.truths} == {"SKID-01", "SKID-02", "SKID-03"}
    assert sum(1 for t in history.truths if t["fault"]) >= 3
    assert all(any(p["hold_s"] > 0 for p in t["phases"]) for t in history.truths)


def test_cv_from_landed_flow_matches_simulator_totalizer_within_0_1_percent(history, md):
    """Integrating the measured (noisy) flow with the shared rule gives the simulator's own
    totalized volume within 0.1%, per batch and per phase, and holds never advance it."""
    df = history.readings()
    truth = {t["batch_id"]: t for t in history.truths}
    for batch_id, g in df.groupby("batch_id", observed=True):
        t = truth[batch_id]
        unit = md.units[t["unit_id"]]
        g = g.sort_values("ts")
        r = cv.integrate(
            g["ts"].astype("int64").to_numpy(),
            g["flow_lpm"].to_numpy(),
            g["phase"].astype(str).to_numpy(),
            column_volume_l=unit.column_volume_l,
            deadband_lpm=unit.flow_deadband_lpm,
        )
        assert r.volume_l[-1] == pytest.approx(t["total_volume_l"], rel=1e-3), batch_id
        phase = g["phase"].astype(str).to_numpy()
        ts = g["ts"].astype("int64").to_numpy()
        for p in t["phases"]:
            sel = phase == p["phase"]
            assert r.phase_cv[sel].max() == pytest.approx(p["cv"], rel=1e-3), (batch_id, p["phase"])
            if p["hold_s"]:
                hold_end = iso_to_ns(p["end_ts"])
                hold = (ts >= hold_end - (p["hold_s"] - 1) * 10**9) & (ts <= hold_end)
                assert hold.sum() > 0
                # holds do not advance CV: volume is flat across every hold reading
                assert np.ptp(r.volume_l[hold]) == 0.0, (batch_id, p["phase"])


def test_events_and_readings_agree_on_phase_boundaries(history, md):
    df = history.readings()
    ev = pd.DataFrame(history.events())
    ev["ts_ns"] = ev["ts"].map(iso_to_ns)
    for batch_id, g in df.groupby("batch_id", observed=True):
        e = ev[ev.batch_id == batch_id]
        ts = g["ts"].astype("int64").to_numpy()
        phase = g["phase"].astype(str).to_numpy()
        unit = md.units[g["unit_id"].iloc[0]]
        starts = e[e.event_type == "phase_start"].set_index("phase")["ts_ns"]
        ends = e[e.event_type == "phase_end"].set_index("phase")["ts_ns"]
        assert e[e.event_type == "batch_start"].ts_ns.iloc[0] == ts.min()
        assert e[e.event_type == "batch_end"].ts_ns.iloc[0] == ts.max()
        assert list(starts.index) == list(dict.fromkeys(phase))  # same phases, same order
        for p in starts.index:
            in_interval = (ts >= starts[p]) & (ts <= ends[p])
            np.testing.assert_array_equal(in_interval, phase == p, err_msg=f"{batch_id} {p}")
        flow = g["flow_lpm"].to_numpy()
        in_hold = np.zeros(ts.size, dtype=bool)
        for (_, hs), (_, he) in zip(
            e[e.event_type == "hold_start"].iterrows(),
            e[e.event_type == "hold_end"].iterrows(),
            strict=True,
        ):
            in_hold |= (ts >= hs.ts_ns) & (ts <= he.ts_ns)
        assert in_hold.any()
        assert (np.abs(flow[in_hold]) < unit.flow_deadband_lpm).all(), batch_id
        assert (flow[~in_hold] > unit.flow_deadband_lpm).all(), batch_id


def test_landed_readings_are_valid_and_ground_truth_stays_out_of_landing(history):
    df = history.readings()
    assert len(df) == sum(t["n_readings"] for t in history.truths)
    assert not df.duplicated(["unit_id", "ts"]).any()
    for s in SIGNALS:
        assert np.isfinite(df[s]).all()
    for u, g in df.groupby("unit_id", observed=True):
        assert g.sort_values("ts")["seq"].is_monotonic_increasing, u
    for f in (history.lake / "landing").rglob("*.json"):
        text = f.read_text()
        assert "onset" not in text, f
        assert '"fault' not in text, f
    assert (history.truth_dir / "faults.jsonl").read_text().count("onset_batch_cv") == sum(
        1 for t in history.truths if t["fault"]
    )


def test_samples_resolve_to_batch_and_failed_scans_are_retested(history):
    import json

    docs = [
        json.loads(f.read_text())
        for f in (history.lake / "landing" / "sample_results").rglob("*.json")
    ]
    by_sample: dict[str, list[dict]] = {}
    for d in docs:
        by_sample.setdefault(d["sample_id"], []).append(d)
    truth = {t["batch_id"]: t for t in history.truths}
    for sid, attempts in by_sample.items():
        attempts.sort(key=lambda d: d["attempt"])
        last = attempts[-1]
        assert last["status"] == "ok", sid
        assert all(a["status"] == "failed" and a["scan"]["result"] is None for a in attempts[:-1])
        t = truth[last["batch_id"]]
        expected = t["feed_titer_g_l"] if last["sample_point"] == "feed" else t["pool_conc_g_l"]
        assert last["scan"]["result"] == pytest.approx(expected, rel=0.015), sid
        reg = last["calibration"]["regression"]
        back = (
            (last["scan"]["response"] - reg["intercept"])
            / reg["slope"]
            * last["scan"]["dilution_factor"]
        )
        assert back == pytest.approx(last["scan"]["result"], rel=1e-4)
    assert {d["sample_point"] for d in docs} == {"feed", "pool"}
