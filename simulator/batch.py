"""One chromatography batch: plan (every random draw), then simulate (deterministic physics).

The plan draws from independent random streams (batch parameters, fault, sensor noise, lab),
so the same batch can be simulated with and without a fault and differ only by the fault:
that is how the tests prove each fault changes the signals it claims and no others.

Signals are computed as functions of true totalized volume (see physics.py), then sensor
faults and sensor noise are applied, then values are rounded to instrument resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from chrom_platform.lib.core import cv
from chrom_platform.lib.core.config_files import ConfigFileError, load_yaml_file
from chrom_platform.lib.core.contracts import (
    READING_SCHEMA,
    SIGNALS,
    seq_of,
    ts_to_iso,
)
from chrom_platform.lib.core.events import PhaseSpan, batch_events
from chrom_platform.lib.core.master_data import Buffer, Recipe, Resin, Unit
from chrom_platform.lib.core.peaks import Array
from chrom_platform.lib.io.landing import readings_table
from simulator.faults import FAULT_KINDS, GRADED_RAMP_CV, Fault, draw_fault
from simulator.physics import ColumnResponse, breakthrough_fraction, darcy_pressure_bar, peak_pdf

NS = 1_000_000_000
RAMP_S = 10  # pump ramp between flow set points, seconds
STATIC_PRESSURE_BAR = 0.03

#: Sensor noise (absolute sd, relative sd) and reporting resolution (decimals) per signal.
NOISE: dict[str, tuple[float, float, int]] = {
    "flow_lpm": (0.05, 0.003, 2),
    "pressure_bar": (0.004, 0.002, 3),
    "uv_mau": (0.4, 0.002, 1),
    "cond_ms_cm": (0.01, 0.001, 2),
    "ph": (0.004, 0.0, 3),
}


@dataclass(frozen=True)
class Variability:
    """Normal batch-to-batch variation (sd unless a range). Documented in docs/simulator.md."""

    titer_mean_g_l: float = 3.0
    titer_sd_g_l: float = 0.2
    lab_rel_sd: float = 0.0025  # titer / pool concentration assay precision
    buffer_cond_rel_sd: float = 0.01
    buffer_ph_sd: float = 0.02
    feed_cond_rel_sd: float = 0.04
    feed_ph_sd: float = 0.05
    feed_uv_rel_sd: float = 0.05
    hetp_rel_sd: float = 0.04
    asymmetry_sd: float = 0.03
    elution_mean_cv: float = 0.55  # after the salt front (column mean residence)
    elution_mean_sd_cv: float = 0.04
    elution_sd_cv: float = 0.42
    elution_sd_rel_sd: float = 0.05
    strip_fraction: tuple[float, float] = (0.008, 0.02)
    wash_loss_fraction: tuple[float, float] = (0.002, 0.006)
    cip_impurity_mau_cv: float = 30.0
    turnaround_h: tuple[float, float] = (16.0, 24.0)


VARIABILITY = Variability()


@dataclass(frozen=True)
class Behaviour:
    """How a simulated plant behaves beyond its master data: batch-to-batch variation and
    sensor noise. The simulator's own knobs (simulation.yaml beside a process's master
    data); the platform never reads them."""

    variability: Variability = VARIABILITY
    #: (absolute sd, relative sd, decimals) per signal
    noise: Mapping[str, tuple[float, float, int]] = field(default_factory=lambda: dict(NOISE))


BEHAVIOUR = Behaviour()


def load_behaviour(path: str | Path | None) -> Behaviour:
    """A process's simulation.yaml: `variability` overrides of `Variability`, and
    `noise_scale` (a factor per signal on the default sensor noise)."""
    if path is None:
        return BEHAVIOUR
    try:
        doc = load_yaml_file(Path(path)) or {}
    except ConfigFileError as e:
        raise ValueError(f"{path}: {e}") from e
    known = {f.name for f in fields(Variability)}
    over = doc.get("variability", {}) or {}
    unknown = set(over) - known
    if unknown:
        raise ValueError(
            f"{path}: variability: unknown keys {sorted(unknown)}; known: {sorted(known)}"
        )
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}
    var = replace(VARIABILITY, **values)
    scale = doc.get("noise_scale", {}) or {}
    if set(scale) - set(NOISE):
        raise ValueError(f"{path}: noise_scale: unknown signals {sorted(set(scale) - set(NOISE))}")
    noise = {s: (a * scale.get(s, 1.0), r * scale.get(s, 1.0), d) for s, (a, r, d) in NOISE.items()}
    return Behaviour(variability=var, noise=noise)


def unit_clock_offset_ns(unit_index: int) -> int:
    """Unit clocks are not on the second: a fixed sub-second offset per unit (ms resolution)."""
    return (137 * (unit_index + 1) % 1000) * 1_000_000


@dataclass(frozen=True)
class BatchPlan:
    unit: Unit
    resin: Resin
    recipe: Recipe
    unit_index: int
    batch_index: int
    batch_id: str
    start_ns: int
    cycle: int
    titer_true_g_l: float
    titer_lab_g_l: float
    load_cv: float
    #: per recipe phase: the buffer as actually made for this batch
    phase_buffers: tuple[Buffer, ...]
    hetp_cm: float
    asymmetry: float
    dbc10_g_l: float
    permeability_m2: float
    hold_s: tuple[int, ...]
    elution_mean_cv: float
    elution_sd_cv: float
    strip_fraction: float
    wash_loss_fraction: float
    fault: Fault | None
    noise_seed: int
    lab_seed: int
    behaviour: Behaviour = BEHAVIOUR

    @property
    def column_volume_l(self) -> float:
        return self.unit.column_volume_l


def _streams(seed: int, unit_index: int, batch_index: int) -> list[np.random.Generator]:
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(unit_index, batch_index))
    return [np.random.default_rng(s) for s in ss.spawn(4)]


def plan_batch(
    *,
    unit: Unit,
    resin: Resin,
    recipe: Recipe,
    unit_index: int,
    batch_index: int,
    earliest_start_ns: int,
    seed: int,
    fault_rate: float,
    fault_kinds: tuple[str, ...] = tuple(FAULT_KINDS),
    force_fault: str | None = None,
    no_fault: bool = False,
    behaviour: Behaviour = BEHAVIOUR,
    fault_severity: float | None = None,
) -> BatchPlan:
    """Draw everything random about a batch. Same arguments, same plan. With
    `fault_severity` (sigma), a fault's size is graded (see `graded_magnitude`) instead of
    drawn; the batch is otherwise the same batch."""
    var = behaviour.variability
    rp, rf, rn, rl = _streams(seed, unit_index, batch_index)
    start_ns = earliest_start_ns + int(rp.uniform(*var.turnaround_h) * 3600) * NS
    start_ns = start_ns - start_ns % NS + unit_clock_offset_ns(unit_index)
    titer = float(
        np.clip(
            rp.normal(var.titer_mean_g_l, var.titer_sd_g_l),
            0.5 * var.titer_mean_g_l,
            2.0 * var.titer_mean_g_l,
        )
    )
    titer_lab = titer * (1.0 + rp.normal(0.0, var.lab_rel_sd))
    cycle = batch_index + 1

    made = _made_buffers(recipe, rp, var)
    phase_buffers = [made[p.buffer] for p in recipe.phases]
    holds = tuple(
        round(rp.uniform(*p.hold_after_min) * 60) if rp.random() < p.hold_probability else 0
        for p in recipe.phases
    )
    hetp = unit.hetp_cm * float(np.exp(rp.normal(0, var.hetp_rel_sd)))
    asym = float(np.clip(unit.asymmetry + rp.normal(0, var.asymmetry_sd), 1.0, 3.0))
    dbc = resin.dbc10_g_l * (1 - resin.dbc_loss_per_cycle * cycle)
    perm = resin.permeability_m2 * (1 - unit.fouling_per_cycle * cycle)
    el_mean = var.elution_mean_cv + rp.normal(0, var.elution_mean_sd_cv)
    el_sd = var.elution_sd_cv * float(np.exp(rp.normal(0, var.elution_sd_rel_sd)))
    strip = float(rp.uniform(*var.strip_fraction))
    wash = float(rp.uniform(*var.wash_loss_fraction))

    kind = _fault_kind(rf, fault_rate, fault_kinds, force_fault, no_fault)
    fault = draw_fault(rf, kind, recipe.phases, severity=fault_severity) if kind else None
    load_cv = recipe.target_loading_g_l / titer_lab
    if fault and fault.severity_sigma is not None:
        fault = replace(
            fault,
            magnitude=graded_magnitude(
                fault,
                unit=unit,
                resin=resin,
                recipe=recipe,
                buffers=phase_buffers,
                behaviour=behaviour,
                titer_g_l=titer,
                load_cv=load_cv,
                dbc10_g_l=dbc,
                hetp_cm=hetp,
                asymmetry=asym,
            ),
        )

    if fault:
        dbc, hetp, asym = _apply_fault(fault, recipe, phase_buffers, dbc, hetp, asym)

    return BatchPlan(
        unit=unit,
        resin=resin,
        recipe=recipe,
        unit_index=unit_index,
        batch_index=batch_index,
        batch_id=f"{unit.unit_id}-B{batch_index + 1:05d}",
        start_ns=start_ns,
        cycle=cycle,
        titer_true_g_l=titer,
        titer_lab_g_l=titer_lab,
        load_cv=load_cv,
        phase_buffers=tuple(phase_buffers),
        hetp_cm=hetp,
        asymmetry=asym,
        dbc10_g_l=dbc,
        permeability_m2=perm,
        hold_s=holds,
        elution_mean_cv=el_mean,
        elution_sd_cv=el_sd,
        strip_fraction=strip,
        wash_loss_fraction=wash,
        fault=fault,
        noise_seed=int(rn.integers(2**63)),
        lab_seed=int(rl.integers(2**63)),
        behaviour=behaviour,
    )


def _fault_kind(
    rf: np.random.Generator,
    fault_rate: float,
    fault_kinds: tuple[str, ...],
    force_fault: str | None,
    no_fault: bool,
) -> str | None:
    """The batch's fault kind, if any. The fault stream is drawn in full whether or not a
    fault is injected, so the fault decision never shifts any other draw."""
    has_fault = rf.random() < fault_rate
    kind_pick = fault_kinds[int(rf.integers(len(fault_kinds)))] if fault_kinds else None
    return force_fault or (kind_pick if has_fault and not no_fault else None)


def _made_buffers(recipe: Recipe, rp: np.random.Generator, var: Variability) -> dict[str, Buffer]:
    """This batch's make of each buffer the recipe uses (the feed varies as harvests do),
    drawn from the plan's stream in the recipe's buffer order."""
    made: dict[str, Buffer] = {}
    for name, b in recipe.buffers.items():
        feed = name == recipe.load.buffer
        made[name] = replace(
            b,
            cond_ms_cm=b.cond_ms_cm
            * (1 + rp.normal(0, var.feed_cond_rel_sd if feed else var.buffer_cond_rel_sd)),
            ph=b.ph + rp.normal(0, var.feed_ph_sd if feed else var.buffer_ph_sd),
            uv_mau=b.uv_mau * (1 + rp.normal(0, var.feed_uv_rel_sd)),
        )
    return made


def _apply_fault(
    fault: Fault,
    recipe: Recipe,
    phase_buffers: list[Buffer],
    dbc: float,
    hetp: float,
    asym: float,
) -> tuple[float, float, float]:
    """What a fault changes in the batch's plan: the resin's capacity, the packing, or a
    phase's buffer (in `phase_buffers`). Returns (DBC10, HETP, asymmetry)."""
    if fault.kind == "early_breakthrough":
        dbc *= fault.magnitude["dbc_factor"]
    if fault.kind == "packing_degradation":
        hetp *= fault.magnitude["hetp_factor"]
        asym = fault.magnitude["asymmetry"]
    if fault.kind == "wrong_buffer":
        k = recipe.phase_names().index(fault.phase)
        f = fault.magnitude["cond_factor"]
        b = phase_buffers[k]
        phase_buffers[k] = replace(b, cond_ms_cm=b.cond_ms_cm * (f if f > 0 else 1 / -f))
    return dbc, hetp, asym


def noise_sd(behaviour: Behaviour, signal: str, level: float) -> float:
    """The sensor noise (sd) of `signal` at `level`."""
    sd_abs, sd_rel, _ = behaviour.noise[signal]
    return float(sd_abs + sd_rel * abs(level))


def graded_magnitude(
    fault: Fault,
    *,
    unit: Unit,
    resin: Resin,
    recipe: Recipe,
    buffers: list[Buffer],
    behaviour: Behaviour,
    titer_g_l: float,
    load_cv: float,
    dbc10_g_l: float,
    hetp_cm: float,
    asymmetry: float,
) -> dict[str, Any]:
    """A graded fault's magnitude: `severity_sigma` standard deviations of the normal
    variation of the signal it changes, where it starts. Normal variation is batch-to-batch
    (Variability) and sensor noise together, sd = hypot(batch sd, noise sd), as one reading
    of a fault-free batch varies there. Per kind:

    * wrong_buffer: the phase's buffer conductivity off by s sd (buffer make-up 1%);
    * pump_fault: flow s noise sd below its set point (flow at set point varies by its
      sensor noise alone), oscillating by half that;
    * packing_degradation: HETP x exp(s x its log sd) and asymmetry + s x its sd (the
      column's own batch-to-batch variation; the signals see it as wider transitions);
    * early_breakthrough: DBC lowered until the product UV at the end of load is s sd of
      the flow-through UV (feed absorbance 5%) above the fault-free batch's;
    * ph_drift and pressure_rise depend on the level at onset: sized in `simulate`
      (`_graded_drifts`), reaching s sd GRADED_RAMP_CV after onset and staying."""
    s = float(fault.severity_sigma or 0.0)
    var = behaviour.variability
    mag = dict(fault.magnitude)
    names = recipe.phase_names()
    if fault.kind == "wrong_buffer":
        b = buffers[names.index(fault.phase)]
        feed = recipe.phases[names.index(fault.phase)].buffer == recipe.load.buffer
        rel = var.feed_cond_rel_sd if feed else var.buffer_cond_rel_sd
        sigma = float(np.hypot(rel * b.cond_ms_cm, noise_sd(behaviour, "cond_ms_cm", b.cond_ms_cm)))
        factor = 1.0 + s * sigma / b.cond_ms_cm
        mag.update(sigma=sigma, cond_factor=factor if mag["direction"] > 0 else -factor)
    elif fault.kind == "pump_fault":
        f = unit.flow_lpm(recipe.phases[names.index(fault.phase)].velocity_cm_h)
        rel = noise_sd(behaviour, "flow_lpm", f) / f
        mag.update(sigma=rel * f, flow_factor=1.0 - s * rel, oscillation=0.5 * s * rel)
    elif fault.kind == "packing_degradation":
        mag.update(
            hetp_factor=float(np.exp(s * var.hetp_rel_sd)),
            asymmetry=float(np.clip(asymmetry + s * var.asymmetry_sd, 1.0, 3.0)),
        )
    elif fault.kind == "early_breakthrough":
        w = resin.breakthrough_width_g_l
        q_end = titer_g_l * load_cv
        uv_ft = buffers[names.index(recipe.load.name)].uv_mau
        sigma = float(np.hypot(var.feed_uv_rel_sd * uv_ft, noise_sd(behaviour, "uv_mau", uv_ft)))
        mau_per_g_l = recipe.extinction_l_g_cm * unit.uv_path_length_cm * 1000.0
        b0 = float(breakthrough_fraction(np.array(q_end), dbc10_g_l, w))
        b1 = min(0.995, b0 + s * sigma / (titer_g_l * mau_per_g_l))
        dbc_new = q_end - w * float(np.log(b1 / (1.0 - b1))) - w * float(np.log(9.0))
        mag.update(sigma=sigma, dbc_factor=dbc_new / dbc10_g_l)
    return mag


@dataclass
class SimBatch:
    plan: BatchPlan
    ts_ns: np.ndarray
    seq: np.ndarray
    phase_idx: np.ndarray  # int8 index into recipe.phases
    hold: np.ndarray  # bool: inside a hold after a phase
    keep: np.ndarray  # bool: reading was sent (False inside a sensor dropout)
    flow_true: Array
    volume_true_l: Array
    signals: dict[str, Array]  # measured values (noise, faults, resolution)
    events: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def n_readings(self) -> int:
        return int(self.keep.sum())

    def readings_table(self) -> pa.Table:
        """The readings that were sent, as the landing Arrow schema."""
        k = self.keep
        p = self.plan
        return readings_table(
            unit_id=p.unit.unit_id,
            batch_id=p.batch_id,
            recipe=p.recipe.recipe,
            phase_names=list(p.recipe.phase_names()),
            phase_idx=self.phase_idx[k],
            ts_ns=self.ts_ns[k],
            signals={s: self.signals[s][k] for s in SIGNALS},
        )

    def messages(self) -> list[dict[str, Any]]:
        """The readings as chrom.reading.v1 messages (for publishers)."""
        p = self.plan
        names = p.recipe.phase_names()
        idx = np.nonzero(self.keep)[0]
        cols = {s: self.signals[s][idx].tolist() for s in SIGNALS}
        ts = self.ts_ns[idx].tolist()
        seq = self.seq[idx].tolist()
        ph = self.phase_idx[idx].tolist()
        return [
            {
                "schema": READING_SCHEMA,
                "unit_id": p.unit.unit_id,
                "batch_id": p.batch_id,
                "recipe": p.recipe.recipe,
                "phase": names[ph[i]],
                "ts": ts_to_iso(ts[i]),
                "seq": seq[i],
                **{s: cols[s][i] for s in SIGNALS},
            }
            for i in range(len(idx))
        ]


def _phase_flow(plan: BatchPlan, k: int, f_prev: float) -> tuple[Array, int, int | None]:
    """True flow of phase k's pumping samples; returns (flow, nominal samples, fault onset)."""
    unit, ph = plan.unit, plan.recipe.phases[k]
    F = unit.flow_lpm(ph.velocity_cm_h)
    target_l = (plan.load_cv if ph.cv is None else ph.cv) * unit.column_volume_l
    nominal = int(np.ceil(target_l / F * 60.0))
    n_cand = 2 * nominal + 4 * RAMP_S + 60
    i = np.arange(n_cand, dtype=np.float64)
    f = np.full(n_cand, F)
    if f_prev != F:
        r = min(RAMP_S, n_cand)
        f[:r] = f_prev + (F - f_prev) * (i[:r] + 1) / RAMP_S
    onset = None
    fault = plan.fault
    if fault and fault.kind == "pump_fault" and fault.phase == ph.name:
        onset = int(fault.onset_fraction * nominal)
        m = fault.magnitude
        j = i[onset:] - onset
        factor = m["flow_factor"] * (1 + m["oscillation"] * np.sin(2 * np.pi * j / m["period_s"]))
        ramp_in = np.minimum(1.0, (j + 1) / 5.0)
        f[onset:] *= 1.0 - ramp_in * (1.0 - factor)
    fe = cv.effective_flow(f, unit.flow_deadband_lpm)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (fe[1:] + fe[:-1]) / 60.0)])
    n = int(np.searchsorted(cum, target_l)) + 1
    if n > n_cand:  # pragma: no cover - n_cand covers flow down to ~50%
        raise RuntimeError(f"phase {ph.name} did not reach its volume")
    return f[:n], nominal, onset


@dataclass
class _Timeline:
    """When each phase pumps and holds, and the true volume through the column."""

    flow: Array  # true flow per second
    first: np.ndarray  # first sample of each phase
    pump_n: np.ndarray  # pumping samples of each phase (a hold follows)
    nominal_n: np.ndarray  # samples the phase would take at its set point
    phase_idx: np.ndarray
    hold: np.ndarray
    ts: np.ndarray
    seq: np.ndarray
    vol: Array  # true totalized volume, L
    v: Array  # batch CV
    pump_onset: int | None  # sample where a pump fault starts

    @property
    def n(self) -> int:
        return int(self.flow.size)

    def phase_slice(self, k: int) -> slice:
        return slice(
            int(self.first[k]), int(self.first[k + 1]) if k + 1 < self.first.size else self.n
        )


@dataclass
class _Product:
    """Product leaving the column (g/L per second) and the batch's mass balance."""

    conc: Array
    load_vol_l: float
    fed_g: float
    out_load_g: float
    washout_g: float
    bound_g: float


def simulate(plan: BatchPlan, *, noise: bool = True) -> SimBatch:
    """The batch's readings, events and ground truth, stage by stage: timeline, buffer
    transitions through the column, product, pressure and faults, then the instruments."""
    t = _timeline(plan)
    resp = ColumnResponse.build(
        _mean_residence_cv(plan),
        plan.hetp_cm,
        plan.asymmetry,
        plan.unit.bed_height_cm,
    )
    steps = _steps(plan, t, resp)
    cond, ph, uv, visc = _buffer_signals(plan, t, steps)
    prod = _product(plan, t, steps, resp)
    mau_per_g_l = plan.recipe.extinction_l_g_cm * plan.unit.uv_path_length_cm * 1000.0
    uv = uv + prod.conc * mau_per_g_l
    for cip in plan.recipe.phases_of_kind("cip")[:1]:  # impurities the first CIP strips off
        uv += _peak(
            plan,
            t,
            resp,
            cip.name,
            plan.behaviour.variability.cip_impurity_mau_cv * plan.unit.column_volume_l,
            0.0,
            0.25,
        )
    onset = _fault_onset(plan, t)
    pressure, ph = _pressure_and_process_faults(plan, t, visc, ph, onset)
    pressure, ph, drift_mag = _graded_drifts(plan, t, pressure, ph, onset)
    true_signals = {
        "flow_lpm": t.flow,
        "pressure_bar": pressure,
        "uv_mau": uv,
        "cond_ms_cm": cond,
        "ph": ph,
    }
    measured, keep = _instruments(plan, true_signals, onset, noise=noise)
    sim = SimBatch(
        plan=plan,
        ts_ns=t.ts,
        seq=t.seq,
        phase_idx=t.phase_idx,
        hold=t.hold,
        keep=keep,
        flow_true=t.flow,
        volume_true_l=t.vol,
        signals=measured,
    )
    sim.events = _events(sim, t.first, t.pump_n)
    sim.truth = _truth(plan, t, resp, steps, prod, uv, keep, onset)
    if drift_mag:
        sim.truth["fault"]["magnitude"].update(drift_mag)
    return sim


def _graded_drifts(
    plan: BatchPlan, t: _Timeline, pressure: Array, ph: Array, onset: int | None
) -> tuple[Array, Array, dict[str, float]]:
    """A graded pH drift or pressure rise: s sd of the signal's normal variation at onset,
    reached linearly over GRADED_RAMP_CV of volume and then kept (see `graded_magnitude`).
    pH varies batch to batch by its buffer's make-up (the feed's in the load); pressure at a
    set flow only by its sensor noise (permeability and viscosity are not random). The
    pressure rise is on the bed (it scales with flow in later phases, as fouling does)."""
    fault = plan.fault
    if fault is None or fault.severity_sigma is None or onset is None:
        return pressure, ph, {}
    if fault.kind not in ("ph_drift", "pressure_rise"):
        return pressure, ph, {}
    s = fault.severity_sigma
    ramp = np.clip((t.v - t.v[onset]) / GRADED_RAMP_CV, 0.0, 1.0)
    beh, var = plan.behaviour, plan.behaviour.variability
    if fault.kind == "ph_drift":
        load = fault.phase == plan.recipe.load.name
        batch_sd = var.feed_ph_sd if load else var.buffer_ph_sd
        sigma = float(np.hypot(batch_sd, noise_sd(beh, "ph", float(ph[onset]))))
        offset = float(fault.magnitude["direction"]) * s * sigma
        return pressure, ph + offset * ramp, {"sigma": sigma, "offset_ph": offset}
    sigma = noise_sd(beh, "pressure_bar", float(pressure[onset]))
    system = STATIC_PRESSURE_BAR + plan.unit.system_pressure_bar_per_lpm * t.flow
    bed = pressure - system
    rel = s * sigma / max(float(bed[onset]), 1e-9)
    return (
        system + bed * (1.0 + rel * ramp),
        ph,
        {"sigma": sigma, "pressure_increase_bar": s * sigma, "bed_dp_increase": rel},
    )


def _timeline(plan: BatchPlan) -> _Timeline:
    """Flow per second, phase by phase, with holds after phases; the CV integral of it."""
    unit = plan.unit
    K = len(plan.recipe.phases)
    flows: list[Array] = []
    first = np.zeros(K, dtype=np.int64)
    pump_n = np.zeros(K, dtype=np.int64)
    nominal_n = np.zeros(K, dtype=np.int64)
    pos = 0
    f_prev = 0.0
    pump_onset: int | None = None
    for k in range(K):
        f, nominal, phase_onset = _phase_flow(plan, k, f_prev)
        if phase_onset is not None:
            pump_onset = pos + phase_onset
        first[k], pump_n[k], nominal_n[k] = pos, f.size, nominal
        flows.append(f)
        pos += f.size
        h = plan.hold_s[k]
        if h:
            flows.append(np.zeros(h))
            pos += h
        f_prev = 0.0 if h else float(f[-1])
    n = pos
    flow = np.concatenate(flows)
    phase_idx = np.repeat(np.arange(K, dtype=np.int8), np.diff(np.append(first, n)))
    hold = np.zeros(n, dtype=bool)
    for k in range(K):
        hold[first[k] + pump_n[k] : (first[k + 1] if k + 1 < K else n)] = True
    ts = plan.start_ns + np.arange(n, dtype=np.int64) * NS
    seq = seq_of(ts)
    integ = cv.integrate(
        ts,
        flow,
        phase_idx,
        column_volume_l=unit.column_volume_l,
        deadband_lpm=unit.flow_deadband_lpm,
    )
    return _Timeline(
        flow,
        first,
        pump_n,
        nominal_n,
        phase_idx,
        hold,
        ts,
        seq,
        integ.volume_l,
        integ.batch_cv,
        pump_onset,
    )


#: sub-steps a linear gradient is cut into: the outlet follows the ramp through the column's
#: own step response, averaged over the ramp (superposition)
GRADIENT_SUBSTEPS = 40


def _ramp_starts(plan: BatchPlan, k: int) -> Array:
    """Where, in CV after phase k's start, its sub-steps begin: one step (0) unless the
    recipe ramps into the phase's buffer over `gradient_cv`."""
    g = plan.recipe.phases[k].gradient_cv
    if not g:
        return np.zeros(1)
    return (np.arange(GRADIENT_SUBSTEPS) + 0.5) / GRADIENT_SUBSTEPS * g


def _steps(plan: BatchPlan, t: _Timeline, resp: ColumnResponse) -> Array:
    """steps[k, i]: the fraction of phase k's buffer at the outlet at sample i (the column's
    step response from the phase's start volume; a gradient's, the mean over its ramp)."""
    K, n, v = t.first.size, t.n, t.v
    v_start = v[t.first]
    gmax = resp.grid[-1]
    steps = np.zeros((K, n))
    for k in range(K):
        i0 = int(t.first[k])
        starts = _ramp_starts(plan, k)
        for s0 in starts:
            a = max(int(np.searchsorted(v, v_start[k] + s0, side="left")) - 1, i0)
            i1 = max(int(np.searchsorted(v, v_start[k] + s0 + gmax, side="right")), a)
            steps[k, a:i1] += resp.step(v[a:i1] - v_start[k] - s0)
            steps[k, i1:] += 1.0
        steps[k] /= starts.size
    return steps


def _buffer_signals(
    plan: BatchPlan, t: _Timeline, steps: Array
) -> tuple[Array, Array, Array, Array]:
    """Conductivity, pH and UV of the buffers at the outlet, and the viscosity over the bed."""
    recipe = plan.recipe
    storage = recipe.buffers[
        recipe.phases[-1].buffer
    ]  # the column waits in the last phase's buffer
    bufs = [storage, *plan.phase_buffers]

    def superpose(attr: str) -> Array:
        vals = np.array([getattr(b, attr) for b in bufs])
        return vals[0] + np.diff(vals) @ steps

    # Darcy's law needs the viscosity averaged over the bed, not at the outlet: the fraction
    # of the bed a new buffer fills grows linearly as its front crosses the bed (one pore
    # volume), independent of dispersion to first order.
    visc_vals = np.array([b.viscosity_mpa_s for b in bufs])
    v_start = t.v[t.first]
    bed_fill = np.zeros_like(steps)
    for k in range(v_start.size):
        starts = _ramp_starts(plan, k)
        for s0 in starts:
            bed_fill[k] += np.clip((t.v - v_start[k] - s0) / plan.resin.total_porosity, 0.0, 1.0)
        bed_fill[k] /= starts.size
    visc = visc_vals[0] + np.diff(visc_vals) @ bed_fill
    return superpose("cond_ms_cm"), superpose("ph"), superpose("uv_mau"), visc


def _peak(
    plan: BatchPlan,
    t: _Timeline,
    resp: ColumnResponse,
    phase: str,
    mass_g: float,
    mean_after: float,
    sd: float,
) -> Array:
    """Concentration of a peak of `mass_g` eluting in `phase`, centred `mean_after` CV after
    the column's own mean residence."""
    cvol = plan.unit.column_volume_l
    k = plan.recipe.phase_names().index(phase)
    mean = _mean_residence_cv(plan) + mean_after
    out = np.zeros(t.n)
    sl = slice(int(t.first[k]), t.n)
    out[sl] = mass_g / cvol * peak_pdf(t.v[sl] - t.v[t.first[k]], mean, sd, resp.tail_ratio())
    return out


def _mean_residence_cv(plan: BatchPlan) -> float:
    """Mean residence of a non-binding solute, in CV (pores plus system hold-up)."""
    return plan.resin.total_porosity + plan.unit.system_holdup_l / plan.unit.column_volume_l


def _product(plan: BatchPlan, t: _Timeline, steps: Array, resp: ColumnResponse) -> _Product:
    """Breakthrough during load, washout, wash loss, elution and strip."""
    unit, recipe, resin = plan.unit, plan.recipe, plan.resin
    cvol = unit.column_volume_l
    names = list(recipe.phase_names())
    K, n, v, vol = len(names), t.n, t.v, t.vol
    v_start = v[t.first]
    mean_cv = _mean_residence_cv(plan)
    kl = names.index(recipe.load.name)
    conc = np.zeros(n)
    load_sl = t.phase_slice(kl)
    q = plan.titer_true_g_l * (v[load_sl] - v_start[kl])
    b_load = breakthrough_fraction(q, plan.dbc10_g_l, resin.breakthrough_width_g_l)
    conc[load_sl] = plan.titer_true_g_l * b_load
    c_end = float(conc[load_sl][-1])
    if kl + 1 < K:
        conc[load_sl.stop :] = c_end * (1.0 - steps[kl + 1, load_sl.stop :])
    load_vol_l = float(vol[load_sl][-1] - vol[load_sl][0])
    fed_g = plan.titer_true_g_l * load_vol_l
    out_load_g = float(np.trapezoid(conc[load_sl], vol[load_sl]))
    washout_g = c_end * mean_cv * cvol
    bound_g = fed_g - out_load_g - washout_g

    # product lost in the last wash after the load (the stringent one), and what the first
    # strip takes off the column
    washes = [p.name for p in recipe.phases[kl + 1 :] if p.kind == "wash"]
    strips = [p.name for p in recipe.phases[kl + 1 :] if p.kind == "strip"]
    wash_g = plan.wash_loss_fraction * bound_g if washes else 0.0
    strip_g = plan.strip_fraction * bound_g if strips else 0.0
    elute_g = bound_g - wash_g - strip_g
    sd_col = mean_cv / np.sqrt(unit.bed_height_cm / plan.hetp_cm)
    el_sd = float(np.hypot(plan.elution_sd_cv, sd_col))
    conc = conc + _peak(plan, t, resp, recipe.elution.name, elute_g, plan.elution_mean_cv, el_sd)
    if wash_g:
        conc += _peak(plan, t, resp, washes[-1], wash_g, 0.1, 0.25)
    if strip_g:
        conc += _peak(plan, t, resp, strips[0], strip_g, 0.05, 0.2)
    return _Product(conc, load_vol_l, fed_g, out_load_g, washout_g, bound_g)


def _fault_onset(plan: BatchPlan, t: _Timeline) -> int | None:
    """The sample where the plan's fault starts (None: no fault, or one without an onset)."""
    fault = plan.fault
    if not fault:
        return None
    if fault.kind == "pump_fault":
        return t.pump_onset
    if fault.kind in ("ph_drift", "pressure_rise", "sensor_flatline", "sensor_dropout"):
        k = plan.recipe.phase_names().index(fault.phase)
        return int(t.first[k] + int(fault.onset_fraction * t.nominal_n[k]))
    return None


def _pressure_and_process_faults(
    plan: BatchPlan, t: _Timeline, visc: Array, ph: Array, onset: int | None
) -> tuple[Array, Array]:
    """Pressure (Darcy over the bed plus the system), with a pressure rise or pH drift."""
    unit, fault, n = plan.unit, plan.fault, t.n
    bed_dp = darcy_pressure_bar(
        t.flow, visc, unit.bed_height_cm, unit.area_cm2, plan.permeability_m2
    )
    if fault and fault.kind == "pressure_rise" and fault.severity_sigma is None:
        assert onset is not None
        t_rel = np.maximum(0.0, (np.arange(n) - onset) / (fault.magnitude["ramp_min"] * 60.0))
        bed_dp = bed_dp * (1.0 + fault.magnitude["bed_dp_increase"] * np.minimum(1.0, t_rel))
    pressure = STATIC_PRESSURE_BAR + unit.system_pressure_bar_per_lpm * t.flow + bed_dp
    if fault and fault.kind == "ph_drift" and fault.severity_sigma is None:
        assert onset is not None
        ph = ph + fault.magnitude["rate_ph_per_h"] * np.maximum(0, np.arange(n) - onset) / 3600.0
    return pressure, ph


def _instruments(
    plan: BatchPlan, true_signals: dict[str, Array], onset: int | None, *, noise: bool
) -> tuple[dict[str, Array], np.ndarray]:
    """What the sensors report: noise, resolution, the UV detector's ceiling and sensor
    faults; and which readings were sent (False inside a dropout)."""
    n = true_signals["flow_lpm"].size
    fault = plan.fault
    measured: dict[str, Array] = {}
    rng = np.random.default_rng(plan.noise_seed)
    z = rng.standard_normal((len(SIGNALS), n)) if noise else None
    for j, s in enumerate(SIGNALS):
        x = true_signals[s]
        if z is not None:
            sd_abs, sd_rel, decimals = plan.behaviour.noise[s]
            x = np.round(x + (sd_abs + sd_rel * np.abs(x)) * z[j], decimals)
        measured[s] = x
    measured["uv_mau"] = np.minimum(measured["uv_mau"], plan.unit.uv_max_mau)
    keep = np.ones(n, dtype=bool)
    if fault and fault.kind == "sensor_flatline":
        assert onset is not None
        sig = fault.signals[0]
        end = min(n, onset + int(fault.magnitude["duration_s"]))
        measured[sig][onset:end] = measured[sig][onset - 1]
    if fault and fault.kind == "sensor_dropout":
        assert onset is not None
        keep[onset : onset + int(fault.magnitude["duration_s"])] = False
    return measured, keep


def _truth(
    plan: BatchPlan,
    t: _Timeline,
    resp: ColumnResponse,
    steps: Array,
    prod: _Product,
    uv: Array,
    keep: np.ndarray,
    onset: int | None,
) -> dict[str, Any]:
    """Ground truth: what the batch really did, for tests and `chrom evaluate` only."""
    unit, recipe = plan.unit, plan.recipe
    cvol = unit.column_volume_l
    names = list(recipe.phase_names())
    K, n, ts, v, vol = len(names), t.n, t.ts, t.v, t.vol
    ke = names.index(recipe.elution.name)
    uv_true_el = uv[t.phase_slice(ke)]
    el_start = int(t.first[ke])
    pool = _pool(uv_true_el, recipe)
    pool_truth: dict[str, Any] = {}
    if pool is not None:
        a, b = el_start + pool[0], el_start + pool[1]
        pool_vol = float(vol[b] - vol[a])
        pool_mass = float(np.trapezoid(prod.conc[a : b + 1], vol[a : b + 1]))
        pool_truth = {
            "pool_start_cv": float(v[a]),
            "pool_end_cv": float(v[b]),
            "pool_start_ts": ts_to_iso(int(ts[a])),
            "pool_end_ts": ts_to_iso(int(ts[b])),
            "pool_volume_l": pool_vol,
            "pool_mass_g": pool_mass,
            "pool_conc_g_l": pool_mass / pool_vol,
            "step_yield": pool_mass / prod.fed_g,
            "peak_max_mau": float(uv_true_el.max()),
        }
    phase_truth = []
    for k in range(K):
        first = int(t.first[k])
        last = int(t.first[k + 1] - 1) if k + 1 < K else n - 1
        phase_truth.append(
            {
                "phase": names[k],
                "start_ts": ts_to_iso(int(ts[first])),
                "end_ts": ts_to_iso(int(ts[last])),
                "start_cv": float(v[first]),
                "volume_l": float(vol[last] - vol[first]),
                "cv": float((vol[last] - vol[first]) / cvol),
                "hold_s": plan.hold_s[k],
            }
        )
    fault = (
        _fault_truth(plan, onset, v, ts, resp, _mean_residence_cv(plan), t.first, steps)
        if plan.fault
        else None
    )
    return {
        "batch_id": plan.batch_id,
        "unit_id": unit.unit_id,
        "column_id": unit.column_id,
        "recipe": recipe.recipe,
        "cycle": plan.cycle,
        "start_ts": ts_to_iso(int(ts[0])),
        "end_ts": ts_to_iso(int(ts[-1])),
        "n_readings": int(keep.sum()),
        "column_volume_l": cvol,
        "total_volume_l": float(vol[-1]),
        "total_cv": float(v[-1]),
        "load_volume_l": prod.load_vol_l,
        "feed_titer_g_l": plan.titer_true_g_l,
        "load_mass_g": prod.fed_g,
        "bound_mass_g": prod.bound_g,
        "breakthrough_loss_g": prod.out_load_g + prod.washout_g,
        "dbc10_g_l": plan.dbc10_g_l,
        "hetp_cm": resp.hetp_cm(),
        "plates": resp.plates(),
        "asymmetry": resp.asymmetry(),
        "permeability_m2": plan.permeability_m2,
        **pool_truth,
        "phases": phase_truth,
        "fault": fault,
    }


def _pool(uv: Array, recipe: Recipe) -> tuple[int, int] | None:
    """Pool start/end sample indices on an elution UV trace by the recipe's criteria."""
    if uv.size < 3:
        return None
    apex = int(np.argmax(uv))
    peak_max = float(uv[apex])
    start_thr = recipe.pool_start.threshold(peak_max)
    end_thr = recipe.pool_end.threshold(peak_max)
    rising = np.nonzero(uv[: apex + 1] >= start_thr)[0]
    falling = np.nonzero(uv[apex:] <= end_thr)[0]
    if rising.size == 0 or falling.size == 0:
        return None
    return int(rising[0]), apex + int(falling[0])


def _fault_truth(
    plan: BatchPlan,
    onset: int | None,
    v: Array,
    ts: np.ndarray,
    resp: ColumnResponse,
    mean_cv: float,
    first: np.ndarray,
    steps: np.ndarray,
) -> dict[str, Any]:
    """Where the fault starts to show: a time-triggered onset, or for parameter faults the
    first reading where the claimed signal departs from the fault-free batch by 2% of the
    disturbance (breakthrough: 2% of feed concentration; buffer/packing: 2% of the step)."""
    fault = plan.fault
    assert fault is not None
    names = list(plan.recipe.phase_names())
    mag = dict(fault.magnitude)
    if onset is None:
        if fault.kind == "early_breakthrough":
            k = names.index(plan.recipe.load.name)
            sl = slice(int(first[k]), int(first[k + 1]))
            q = plan.titer_true_g_l * (v[sl] - v[sl][0])
            nominal_dbc = plan.resin.dbc10_g_l * (1 - plan.resin.dbc_loss_per_cycle * plan.cycle)
            diff = breakthrough_fraction(q, plan.dbc10_g_l, plan.resin.breakthrough_width_g_l) - (
                breakthrough_fraction(q, nominal_dbc, plan.resin.breakthrough_width_g_l)
            )
            hit = np.nonzero(diff >= 0.02)[0]
            onset = int(first[k] + (hit[0] if hit.size else sl.stop - sl.start - 1))
            mag["dbc10_g_l"] = plan.dbc10_g_l
        elif fault.kind == "packing_degradation":
            clean = ColumnResponse.build(
                mean_cv, plan.unit.hetp_cm, plan.unit.asymmetry, plan.unit.bed_height_cm
            )
            diff = np.abs(resp.step(clean.grid) - clean.cdf)
            dv = float(clean.grid[int(np.argmax(diff >= 0.02))])
            onset = int(np.searchsorted(v, v[first[0]] + dv))
            mag["hetp_cm"] = resp.hetp_cm()
            mag["asymmetry_measured"] = resp.asymmetry()
        elif fault.kind == "wrong_buffer":
            k = names.index(fault.phase)
            hit = np.nonzero(steps[k, first[k] :] >= 0.02)[0]
            onset = int(first[k] + (hit[0] if hit.size else 0))
    assert onset is not None
    return {
        "batch_id": plan.batch_id,
        "unit_id": plan.unit.unit_id,
        **fault.record(),
        "magnitude": mag,
        "onset_ts": ts_to_iso(int(ts[onset])),
        "onset_batch_cv": float(v[onset]),
        "onset_phase": names[int(np.searchsorted(first, onset, side="right") - 1)],
    }


def _events(sim: SimBatch, first: np.ndarray, pump_n: np.ndarray) -> list[dict[str, Any]]:
    """Batch, phase and hold events, on the timestamps of the readings they bound."""
    p = sim.plan
    ts = sim.ts_ns
    n = ts.size
    K = len(p.recipe.phases)
    spans = []
    for k, ph in enumerate(p.recipe.phases):
        end = int(first[k + 1] - 1) if k + 1 < K else n - 1
        spans.append(
            PhaseSpan(
                name=ph.name,
                start_ns=int(ts[first[k]]),
                end_ns=int(ts[end]),
                hold=(int(ts[first[k] + pump_n[k]]), int(ts[end])) if p.hold_s[k] else None,
                details={
                    "planned_cv": round(p.load_cv if ph.cv is None else ph.cv, 4),
                    "velocity_cm_h": ph.velocity_cm_h,
                    "buffer": ph.buffer,
                },
            )
        )
    return batch_events(
        unit_id=p.unit.unit_id,
        batch_id=p.batch_id,
        recipe=p.recipe.recipe,
        phases=spans,
        start_details={
            "column_id": p.unit.column_id,
            "column_cycle": p.cycle,
            "feed_titer_g_l": round(p.titer_lab_g_l, 4),
            "planned_load_cv": round(p.load_cv, 4),
        },
    )
