"""Lab sample results as the instrument exports them (Protein A HPLC titer assay).

Each analysis is one JSON document: calibration standards (raw points), the fitted
regression, the sample scan and its result. About 4% of scans fail (bad calibration fit,
injection fault) and are retested later; the warehouse must resolve each sample to its last
successful scan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chrom_platform.lib.core.contracts import SAMPLE_SCHEMA, ts_to_iso
from simulator.batch import NS, SimBatch

FAIL_RATE = 0.04
STANDARDS_G_L = (0.25, 0.5, 1.0, 2.0, 4.0)
FAILURES = (
    "calibration r2 below 0.995",
    "injection pressure fault",
    "peak not integrated: baseline drift",
)


def _analysis(
    rng: np.random.Generator,
    *,
    sim: SimBatch,
    sample_point: str,
    value_g_l: float,
    dilution: float,
    sampled_ns: int,
    analyzed_ns: int,
    attempt: int,
    failed: bool,
) -> dict[str, Any]:
    p = sim.plan
    slope = float(rng.normal(1520.0, 30.0))  # mAU*s per g/L
    intercept = float(rng.normal(4.0, 2.0))
    std_resp = [slope * c + intercept + float(rng.normal(0, 3.0)) for c in STANDARDS_G_L]
    fit_slope, fit_int = np.polyfit(STANDARDS_G_L, std_resp, 1)
    pred = np.polyval([fit_slope, fit_int], STANDARDS_G_L)
    ss_res = float(np.sum((np.asarray(std_resp) - pred) ** 2))
    ss_tot = float(np.sum((np.asarray(std_resp) - np.mean(std_resp)) ** 2))
    r2 = 1 - ss_res / ss_tot
    reason = FAILURES[int(rng.integers(len(FAILURES)))] if failed else None
    if reason == FAILURES[0]:
        r2 = float(rng.uniform(0.95, 0.99))
    response = fit_slope * (value_g_l / dilution) + fit_int
    sample_id = f"{p.batch_id}-{sample_point.upper()}"
    return {
        "schema": SAMPLE_SCHEMA,
        "sample_id": sample_id,
        "attempt": attempt,
        "retest_of": f"{sample_id}-a{attempt - 1}" if attempt > 1 else None,
        "unit_id": p.unit.unit_id,
        "batch_id": p.batch_id,
        "recipe": p.recipe.recipe,
        "sample_point": sample_point,
        "analyte": "IgG",
        "method": "ProA-HPLC-280",
        "instrument_id": f"HPLC-{1 + p.unit_index % 3:02d}",
        "sampled_at": ts_to_iso(sampled_ns),
        "analyzed_at": ts_to_iso(analyzed_ns),
        "status": "failed" if failed else "ok",
        "failure_reason": reason,
        "calibration": {
            "points": [
                {"conc_g_l": c, "response": round(r, 3)}
                for c, r in zip(STANDARDS_G_L, std_resp, strict=True)
            ],
            "regression": {"slope": float(fit_slope), "intercept": float(fit_int), "r2": float(r2)},
        },
        "scan": {
            "response": None if failed else round(float(response), 4),
            "dilution_factor": dilution,
            "result": None if failed else round(value_g_l, 5),
            "unit": "g/L",
        },
    }


def sample_results(sim: SimBatch) -> list[dict[str, Any]]:
    """Feed titer (before the column) and pool concentration (after), with any retests."""
    p, t = sim.plan, sim.truth
    rng = np.random.default_rng(p.lab_seed)
    docs: list[dict[str, Any]] = []
    start_ns = int(sim.ts_ns[0])
    # The feed is sampled the day before and drives the planned load volume.
    pool_conc = t.get("pool_conc_g_l")
    pool_meas = None if pool_conc is None else pool_conc * (1 + rng.normal(0, 0.0025))
    specs = [("feed", p.titer_lab_g_l, 1.0, start_ns - 8 * 3600 * NS, start_ns - 6 * 3600 * NS)]
    if pool_meas is not None:
        end_ts = int(sim.ts_ns[-1])
        specs.append(("pool", pool_meas, 10.0, end_ts, end_ts + 3 * 3600 * NS))
    for point, value, dil, sampled, analyzed in specs:
        attempt = 1
        while True:
            failed = attempt == 1 and rng.random() < FAIL_RATE
            docs.append(
                _analysis(
                    rng,
                    sim=sim,
                    sample_point=point,
                    value_g_l=value,
                    dilution=dil,
                    sampled_ns=sampled,
                    analyzed_ns=analyzed + (attempt - 1) * 5400 * NS,
                    attempt=attempt,
                    failed=failed,
                )
            )
            if not failed:
                break
            attempt += 1
    return docs
