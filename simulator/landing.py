"""Writes simulated plant data to the landing zone and ground truth to its own path.

Landing (what the plant and the lab produce; the platform reads only this):
  landing/master_data/{equipment,recipes}/<kind>-<content hash>.json
  landing/readings/unit_id=<u>/date=<d>/<u>-<first seq>-<last seq>.parquet
  landing/batch_events/unit_id=<u>/date=<d>/<batch>-events.json   (one event per line)
  landing/sample_results/unit_id=<u>/date=<d>/<sample>-a<attempt>.json

Truth (what the simulator injected; only evaluation reads it), under --truth:
  batches.jsonl, faults.jsonl, manifest.json
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from chrom_platform.lib.core.contracts import (
    events_key,
    iso_to_ns,
    samples_key,
)
from chrom_platform.lib.core.master_data import MasterData, load_master_data
from chrom_platform.lib.io.landing import json_bytes, land_master_data, land_readings
from chrom_platform.lib.io.objectstore import ObjectStore, open_store
from simulator import DEFAULT_EQUIPMENT, DEFAULT_RECIPES, DEFAULT_START
from simulator.batch import SimBatch, load_behaviour, plan_batch, simulate
from simulator.faults import FAULT_KINDS, check_severities
from simulator.samples import sample_results

DEFAULT_START_NS = iso_to_ns(DEFAULT_START)


def land_batch(store: ObjectStore, sim: SimBatch, *, durable: bool = True) -> None:
    """Land one simulated batch: readings, events, lab results."""
    p = sim.plan
    land_readings(store, sim.readings_table(), durable=durable)
    events = b"".join(json_bytes(e) for e in sim.events)
    store.put(
        events_key(p.unit.unit_id, p.batch_id, int(sim.ts_ns[0]), "events"), events, durable=durable
    )
    for doc in sample_results(sim):
        store.put(
            samples_key(
                p.unit.unit_id, doc["sample_id"], doc["attempt"], iso_to_ns(doc["analyzed_at"])
            ),
            json_bytes(doc),
            durable=durable,
        )


@dataclass(frozen=True)
class UnitJob:
    landing: str
    equipment_path: str
    recipes_path: str
    unit_index: int
    unit_id: str
    recipe: str
    batches: int
    first_batch: int
    start_ns: int
    seed: int
    fault_rate: float
    fault_kinds: tuple[str, ...]
    durable: bool
    progress: bool
    #: the process's simulation.yaml (how the plant behaves); None: the default behaviour
    simulation_path: str | None = None
    #: faults graded at this many sd of normal variation (None: sizes drawn)
    fault_severity: float | None = None


@dataclass
class UnitResult:
    unit_id: str
    batches: int
    readings: int
    truth: list[dict[str, Any]]
    seconds: float


def unit_batches(job: UnitJob, md: MasterData | None = None) -> Iterator[SimBatch]:
    """The batches a unit job simulates, in order (what `backfill` lands; evaluation and tests
    rebuild the same batches, with their per-reading truth, from the same job)."""
    md = md or load_master_data(job.equipment_path, job.recipes_path)
    unit = md.units[job.unit_id]
    recipe = md.recipes[job.recipe]
    resin = md.resins[unit.resin]
    behaviour = load_behaviour(job.simulation_path)
    cursor = job.start_ns
    for i in range(job.first_batch, job.first_batch + job.batches):
        plan = plan_batch(
            unit=unit,
            resin=resin,
            recipe=recipe,
            unit_index=job.unit_index,
            batch_index=i,
            earliest_start_ns=cursor,
            seed=job.seed,
            fault_rate=job.fault_rate,
            fault_kinds=job.fault_kinds,
            behaviour=behaviour,
            fault_severity=job.fault_severity,
        )
        sim = simulate(plan)
        yield sim
        cursor = int(sim.ts_ns[-1])


def run_unit(job: UnitJob) -> UnitResult:
    store = open_store(job.landing)
    t0 = time.perf_counter()
    readings = 0
    truth = []
    for done, sim in enumerate(unit_batches(job), start=1):
        land_batch(store, sim, durable=job.durable)
        readings += sim.n_readings
        truth.append(sim.truth)
        if job.progress and (done % 50 == 0 or done == job.batches):
            rate = readings / (time.perf_counter() - t0)
            print(
                f"  {job.unit_id}: {done}/{job.batches} batches, {readings:,} readings ({rate:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
    return UnitResult(job.unit_id, job.batches, readings, truth, time.perf_counter() - t0)


def recipe_for_unit(md: MasterData, unit_index: int) -> str:
    """Campaign plan: each unit runs one recipe, assigned round-robin in recipe order."""
    names = list(md.recipes)
    return names[unit_index % len(names)]


def unit_jobs(
    md: MasterData,
    *,
    landing: str,
    units: int,
    batches_per_unit: int,
    seed: int,
    fault_rate: float,
    start_ns: int = DEFAULT_START_NS,
    equipment_path: str = DEFAULT_EQUIPMENT,
    recipes_path: str = DEFAULT_RECIPES,
    fault_kinds: Sequence[str] = tuple(FAULT_KINDS),
    first_batch: int = 0,
    durable: bool = True,
    progress: bool = False,
    simulation_path: str | None = None,
    fault_severity: float | None = None,
) -> list[UnitJob]:
    """One job per unit: the campaign a backfill with these arguments simulates."""
    return [
        UnitJob(
            landing=landing,
            equipment_path=equipment_path,
            recipes_path=recipes_path,
            unit_index=i,
            unit_id=u,
            recipe=recipe_for_unit(md, i),
            batches=batches_per_unit,
            first_batch=first_batch,
            start_ns=start_ns,
            seed=seed,
            fault_rate=fault_rate,
            fault_kinds=tuple(fault_kinds),
            durable=durable,
            progress=progress,
            simulation_path=simulation_path,
            fault_severity=fault_severity,
        )
        for i, u in enumerate(list(md.units)[:units])
    ]


@dataclass
class BackfillResult:
    units: int
    batches: int
    readings: int
    seconds: float
    truth: list[dict[str, Any]]

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else float("nan")


def backfill(
    *,
    landing: str,
    truth_dir: Path | None,
    units: int,
    batches_per_unit: int,
    seed: int,
    fault_rate: float,
    start_ns: int = DEFAULT_START_NS,
    equipment_path: str = DEFAULT_EQUIPMENT,
    recipes_path: str = DEFAULT_RECIPES,
    fault_kinds: Sequence[str] = tuple(FAULT_KINDS),
    first_batch: int = 0,
    workers: int = 1,
    durable: bool = True,
    progress: bool = False,
    on_unit: Callable[[UnitResult], None] | None = None,
    simulation_path: str | None = None,
    fault_severity: float | None = None,
) -> BackfillResult:
    """Simulate and land a history. Master data is read from the given files (the worker
    processes read the same files), so what is landed is exactly what was configured."""
    md = load_master_data(equipment_path, recipes_path)  # raises ConfigError, named
    if units < 1 or units > len(md.units):
        raise ValueError(
            f"--units must be between 1 and {len(md.units)} (units in equipment master data)"
        )
    if batches_per_unit < 1:
        raise ValueError("--batches-per-unit must be >= 1")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("--fault-rate must be between 0 and 1")
    unknown = set(fault_kinds) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {list(FAULT_KINDS)}")
    check_severities(list(fault_kinds), fault_severity)
    store = open_store(landing)
    land_master_data(store, md)
    jobs = unit_jobs(
        md,
        landing=landing,
        units=units,
        batches_per_unit=batches_per_unit,
        seed=seed,
        fault_rate=fault_rate,
        start_ns=start_ns,
        equipment_path=equipment_path,
        recipes_path=recipes_path,
        fault_kinds=fault_kinds,
        first_batch=first_batch,
        durable=durable,
        progress=progress,
        simulation_path=simulation_path,
        fault_severity=fault_severity,
    )
    unit_ids = [j.unit_id for j in jobs]
    t0 = time.perf_counter()
    results: list[UnitResult] = []
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            results.append(run_unit(job))
            if on_unit:
                on_unit(results[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            for res in ex.map(run_unit, jobs):
                results.append(res)
                if on_unit:
                    on_unit(res)
    seconds = time.perf_counter() - t0
    truth = [t for r in results for t in r.truth]
    if truth_dir is not None:
        write_truth(
            truth_dir,
            truth,
            manifest={
                "units": unit_ids,
                "batches_per_unit": batches_per_unit,
                "first_batch": first_batch,
                "seed": seed,
                "fault_rate": fault_rate,
                "fault_kinds": list(fault_kinds),
                "fault_severity": fault_severity,
                "landing": landing,
            },
        )
    return BackfillResult(
        units=len(jobs),
        batches=sum(r.batches for r in results),
        readings=sum(r.readings for r in results),
        seconds=seconds,
        truth=truth,
    )


def write_truth(truth_dir: Path, truth: Iterable[dict[str, Any]], manifest: dict[str, Any]) -> None:
    """Ground truth, kept apart from the landing zone so detection can never read it."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth = list(truth)
    with open(truth_dir / "batches.jsonl", "w") as f:
        for t in truth:
            f.write(json.dumps(t, sort_keys=True) + "\n")
    with open(truth_dir / "faults.jsonl", "w") as f:
        for t in truth:
            if t["fault"]:
                f.write(json.dumps(t["fault"], sort_keys=True) + "\n")
    (truth_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
