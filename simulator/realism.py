"""What a plant's exported files look like, as opposed to our simulator's clean habits.

`chrom-sim export-csv --realism plant` passes every simulated batch through here before it is
written. The physics (and so the ground truth: CV, faults, yields) is untouched; what changes
is what the plant's instruments, control system, historian and MES make of it
(shared/DESIGN.md, "What plant data looks like"):

- **flow meter at zero flow**: a stopped pump reads an offset and noise of a few tenths of a
  percent of the meter's range, and now and then a single scan above any fixed dead band;
- **phase labels at the operator's command**: the pump ramp and the first seconds of a phase
  still carry the previous phase's label (so a hold is no longer at the end of its label's
  run), and some phase changes leave a few unlabelled scans between the two labels;
- **scan times**: jitter of up to a few hundred ms, an occasional extra scan within the same
  second and an occasional missing scan;
- **resolution**: each signal quantized to the instrument's resolution;
- **historian compression** (long shape): a value is stored only when it moves beyond a
  deadband from the last stored one, or when the maximum interval has passed; a sensor
  dropout is written as the historian's "No Data" state;
- **MES and LIMS files** in the plant's own column names and vocabulary (see export.py);
- **local time across daylight-saving changes** (see export.py).

Every parameter is drawn per plant seed within the ranges below, so two plants differ; the
draw is written beside the export (`realism.json`) for the evaluation, never for the
importer, which must find each property from the data and its mapping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from chrom_platform.lib.core.contracts import SIGNALS
from simulator.batch import NS, SimBatch

REALISMS = ("none", "plant")
#: the text a historian writes for a tag without a value (a sensor dropout)
NO_DATA = "No Data"


@dataclass(frozen=True)
class PlantRealism:
    """One plant's habits (drawn by `draw`)."""

    seed: int
    #: flow meter at zero flow, as fractions of the meter's range
    zero_offset_frac: float
    zero_noise_frac: float
    #: isolated scans in a hold that read above the unit's flow dead band, per hold second
    zero_spike_rate: float
    #: the label changes this many seconds after the phase (its pump ramp) starts
    label_lag_s: tuple[float, float]
    #: share of phase changes with unlabelled scans between the labels, and how many
    gap_probability: float
    gap_s: tuple[int, int]
    #: scan time jitter (ms), extra scans within a second and missing scans (per scan)
    jitter_ms: int
    extra_scan_rate: float
    missing_scan_rate: float
    #: instrument resolution per signal, in the platform's units
    resolution: dict[str, float]
    #: historian compression: deadband per signal (platform's units, flow as a fraction of
    #: the meter's range) and the maximum interval between stored values (s)
    compression: dict[str, float]
    compression_max_s: int

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def draw(seed: int) -> PlantRealism:
    """A plant's habits, drawn from ranges seen in plant exports."""
    rng = np.random.default_rng([seed, 0x9E41])
    lag_lo = float(rng.uniform(2, 8))
    return PlantRealism(
        seed=seed,
        zero_offset_frac=float(rng.uniform(0.001, 0.004)),
        zero_noise_frac=float(rng.uniform(0.0005, 0.0015)),
        zero_spike_rate=float(rng.uniform(1 / 900, 1 / 200)),
        label_lag_s=(lag_lo, lag_lo + float(rng.uniform(10, 30))),
        gap_probability=float(rng.uniform(0.2, 0.5)),
        gap_s=(2, int(rng.integers(5, 15))),
        jitter_ms=int(rng.integers(50, 400)),
        extra_scan_rate=float(rng.uniform(0.001, 0.005)),
        missing_scan_rate=float(rng.uniform(0.001, 0.005)),
        resolution={
            "flow_lpm": 0.01,
            "pressure_bar": 0.001,
            "uv_mau": 0.1,
            "cond_ms_cm": 0.01,
            "ph": 0.01,
        },
        compression={
            "flow_lpm": float(rng.uniform(0.001, 0.003)),
            "pressure_bar": 0.002,
            "uv_mau": 0.5,
            "cond_ms_cm": 0.05,
            "ph": 0.01,
        },
        compression_max_s=int(rng.integers(60, 180)),
    )


@dataclass
class PlantScans:
    """One batch as the plant's control system recorded it: irregular scan times, the
    phase label of each scan ('' between labels) and each signal in the platform's units."""

    ts: np.ndarray
    labels: list[str]
    signals: dict[str, np.ndarray]
    #: the scans a sensor dropout left out (their first second), for the historian's marker
    dropouts: list[int]


def meter_range_lpm(sim: SimBatch) -> float:
    """The flow meter's range: a quarter above the fastest set point of the recipe."""
    unit = sim.plan.unit
    return 1.25 * max(unit.flow_lpm(p.velocity_cm_h) for p in sim.plan.recipe.phases)


def plant_scans(sim: SimBatch, r: PlantRealism) -> PlantScans:
    """The batch through the plant's instruments and control system (deterministic per
    plant and batch)."""
    p = sim.plan
    rng = np.random.default_rng([r.seed, p.unit_index, p.batch_index, 0x5CA7])
    n = sim.ts_ns.size
    signals = {s: np.array(sim.signals[s], dtype=np.float64) for s in SIGNALS}

    # flow meter at zero: offset, noise and isolated scans above the dead band
    span = meter_range_lpm(sim)
    held = np.flatnonzero(sim.hold)
    if held.size:
        flow = signals["flow_lpm"]
        flow[held] = span * (
            r.zero_offset_frac + r.zero_noise_frac * rng.standard_normal(held.size)
        )
        spikes = held[rng.random(held.size) < r.zero_spike_rate]
        flow[spikes] = p.unit.flow_deadband_lpm * rng.uniform(1.05, 2.5, spikes.size)

    for s, res in r.resolution.items():
        signals[s] = np.round(signals[s] / res) * res

    # labels at the operator's command, with unlabelled scans between some of them
    names = list(p.recipe.phase_names())
    label_idx = np.array(sim.phase_idx, dtype=np.int32)
    unlabelled = np.zeros(n, dtype=bool)
    firsts = np.flatnonzero(np.diff(sim.phase_idx)) + 1
    for a in firsts.tolist():
        k = int(sim.phase_idx[a])
        length = int(np.count_nonzero(sim.phase_idx == k))
        lag = min(int(rng.uniform(*r.label_lag_s)), length // 4)
        label_idx[a : a + lag] = k - 1
        if rng.random() < r.gap_probability:
            g = min(int(rng.integers(r.gap_s[0], r.gap_s[1] + 1)), lag)
            unlabelled[a + lag - g : a + lag] = True

    # scan times: jitter, extra scans within a second, missing scans (never the first/last)
    keep = np.array(sim.keep, dtype=bool)
    missing = rng.random(n) < r.missing_scan_rate
    missing[[0, -1]] = False
    rows = np.flatnonzero(keep & ~missing)
    ts = sim.ts_ns[rows] + rng.integers(0, r.jitter_ms + 1, rows.size) * 1_000_000
    vals = {s: v[rows] for s, v in signals.items()}
    lab = label_idx[rows]
    gap = unlabelled[rows]
    extra = np.flatnonzero(rng.random(rows.size - 1) < r.extra_scan_rate)
    extra = extra[np.diff(ts)[extra] > 700_000_000]  # room for a scan 500 ms later
    if extra.size:
        at = extra + 1
        ts = np.insert(ts, at, ts[extra] + 500_000_000)
        for s in vals:
            mid = np.round(0.5 * (vals[s][extra] + vals[s][extra + 1]) / r.resolution[s])
            vals[s] = np.insert(vals[s], at, mid * r.resolution[s])
        lab = np.insert(lab, at, lab[extra])
        gap = np.insert(gap, at, gap[extra])
    labels = ["" if g else names[i] for i, g in zip(lab.tolist(), gap.tolist(), strict=True)]
    # a dropout: the first second the sensor sent nothing
    lost = np.flatnonzero(~keep)
    dropouts = [int(sim.ts_ns[i]) for i in lost[np.diff(np.concatenate([[-2], lost])) > 1]]
    return PlantScans(ts=ts, labels=labels, signals=vals, dropouts=dropouts)


def compress(
    ts: np.ndarray,
    values: np.ndarray,
    deadband: float,
    max_interval_s: int,
    resume_after: list[int] | None = None,
) -> np.ndarray:
    """Which scans a deadband historian stores: the first, each one that moves more than
    `deadband` from the last stored value, and one at least every `max_interval_s`; the
    first after each time in `resume_after` (a dropout: the tag had no value) and the last
    (the historian's snapshot). Returns their indices."""
    keep = [0]
    last_v, last_t = float(values[0]), int(ts[0])
    limit = max_interval_s * NS
    forced = set(np.searchsorted(ts, np.asarray(resume_after or [], dtype=np.int64)).tolist())
    for i, (v, t) in enumerate(zip(values.tolist(), ts.tolist(), strict=True)):
        if i == 0:
            continue
        if abs(v - last_v) > deadband or t - last_t >= limit or i in forced:
            keep.append(i)
            last_v, last_t = v, t
    if keep[-1] != values.size - 1:
        keep.append(values.size - 1)
    return np.asarray(keep, dtype=np.int64)
