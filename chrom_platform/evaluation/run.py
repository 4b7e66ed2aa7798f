"""`chrom evaluate`: the platform measured against the simulator's ground truth.

In a fresh workspace: backfill a history with faults (truth written apart from the landing
zone), materialize landing -> bronze -> silver -> gold -> analytics through Dagster on the
local profile, then read the verdicts from gold and score them (evaluation/scoring.py).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from chrom_platform.evaluation.scoring import (
    PRODUCT_TARGETS,
    TARGETS,
    product_view,
    score,
    user_view,
)
from chrom_platform.lib.core.tables import (
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_COLUMN_PERFORMANCE,
    GOLD_MSPC_VERDICT,
    GOLD_TREND_BY_CV,
)

if TYPE_CHECKING:
    from chrom_platform.settings import Settings
    from simulator import ProcessFiles

#: every alarm the product shows (gold's and the multivariate verdict's), with its unit and
#: when it fired: the first reading at or past its batch CV (the batch's end when it names
#: no CV)
SHOWN_ALARMS = f"""
with shown as (
    select a.batch_id, r.unit_id, a.source, a.signal, a.severity, a.alarm_cv
    from {GOLD_BATCH_ALARMS} as a
    inner join {GOLD_BATCH_RESULTS} as r on a.batch_id = r.batch_id
    union all
    select batch_id, unit_id, 'mspc', alarm_statistic, severity, alarm_cv
    from {GOLD_MSPC_VERDICT} where verdict = 'alarm'
)
select
    s.*,
    epoch_ns(coalesce(
        (select min(t.ts) from {GOLD_TREND_BY_CV} as t
         where t.batch_id = s.batch_id and t.batch_cv >= s.alarm_cv),
        (select max(t.ts) from {GOLD_TREND_BY_CV} as t where t.batch_id = s.batch_id)
    )) as ts
from shown as s
"""


def _log(msg: str) -> None:
    print(f"[evaluate] {msg}", file=sys.stderr, flush=True)


def evaluate(
    *,
    seed: int,
    units: int,
    batches_per_unit: int,
    fault_rate: float,
    workdir: Path | None = None,
    process: str | None = None,
    realism: str = "none",
    shape: str = "wide",
) -> dict[str, Any]:
    """`realism` "plant": the history is exported as a plant's files (simulator/realism.py,
    in `shape`) and brought in by `chrom import` with the mapping the export wrote, as a
    new user would, instead of being landed directly; the truth is the same."""
    from chrom_platform.build import build_everything, build_log, check_outcomes, failed_steps
    from chrom_platform.local.instance import write_instance_config
    from chrom_platform.settings import Settings
    from simulator import DEFAULT_PROCESS, process_files

    process = process or DEFAULT_PROCESS
    files = process_files(process)  # ValueError naming the known ones

    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="chrom-evaluate-")) if workdir is None else workdir
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        raise ValueError(f"--workdir {workdir} is not empty: evaluation needs a fresh workspace")
    root.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    try:
        lake, truth_dir = root / "lake", root / "truth"
        t0 = time.perf_counter()
        _log(
            f"backfilling {units} units x {batches_per_unit} batches of process {process} "
            f"(seed {seed}) in {root}"
        )
        if realism == "plant":
            readings, imported = _land_as_plant(
                root, lake, truth_dir, files, units, batches_per_unit, seed, fault_rate, shape
            )
        else:
            readings, imported = (
                _land(lake, truth_dir, files, units, batches_per_unit, seed, fault_rate),
                None,
            )
        timings["backfill_s"] = time.perf_counter() - t0
        settings = Settings.from_env(
            {
                "CHROM_DATA_DIR": str(root / "data"),
                "CHROM_LANDING_URI": str(lake),
                "CHROM_DUCKDB_PATH": str(root / "data" / "warehouse.duckdb"),
            }
        )
        # as `chrom build` runs it: telemetry off, Dagster's and dbt's log to a file, the
        # terminal keeps this command's own progress
        home, log_file = root / "dagster", build_log(settings)
        write_instance_config(home)
        _log(f"{readings:,} readings landed; building through Dagster (log {log_file})")
        t1 = time.perf_counter()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = build_everything(settings, instance, log_file=log_file)
        timings["pipeline_s"] = time.perf_counter() - t1
        if not result.success:
            raise RuntimeError(f"pipeline failed in steps {failed_steps(result)}")
        truth = [json.loads(line) for line in (truth_dir / "batches.jsonl").open()]
        scored = _scored(settings, truth, result)
        _log(f"scored in {sum(timings.values()):.0f} s")
        return {
            "process": process,
            "seed": seed,
            "units": units,
            "batches_per_unit": batches_per_unit,
            "fault_rate": fault_rate,
            "realism": realism,
            "shape": shape if realism == "plant" else None,
            "readings": readings,
            "imported": imported,
            "checks": check_outcomes(result),
            "timings": {k: round(v, 1) for k, v in timings.items()},
            "targets": TARGETS,
            **scored,
        }
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def _land(
    lake: Path,
    truth_dir: Path,
    files: ProcessFiles,
    units: int,
    batches_per_unit: int,
    seed: int,
    fault_rate: float,
) -> int:
    """The simulated history landed directly, as the simulator's backfill lands it; the
    readings landed."""
    from simulator.landing import backfill

    return backfill(
        landing=str(lake),
        truth_dir=truth_dir,
        units=units,
        batches_per_unit=batches_per_unit,
        seed=seed,
        fault_rate=fault_rate,
        workers=2,
        durable=False,  # a throwaway workspace: no fsync per object
        progress=False,
        equipment_path=files.equipment,
        recipes_path=files.recipes,
        simulation_path=files.simulation,
    ).readings


def _scored(
    settings: Settings, truth: list[dict[str, Any]], result: dg.ExecuteInProcessResult
) -> dict[str, Any]:
    """What the built warehouse shows, scored against the truth: the verdicts' score, the
    product as the user sees it (every alarm and check) and the user's view of checks."""
    from chrom_platform.lib.analytics.envelope import EnvelopeParams

    with settings.warehouse.connect(read_only=True) as wh:
        tables = {
            "verdicts": wh.query(f"select * from {GOLD_BATCH_VERDICT}"),
            "alarms": wh.query(f"select * from {GOLD_BATCH_ALARMS}"),
            "performance": wh.query(f"select * from {GOLD_COLUMN_PERFORMANCE}"),
            "results": wh.query(f"select * from {GOLD_BATCH_RESULTS}"),
        }
        mspc = wh.query(f"select * from {GOLD_MSPC_VERDICT}")
        shown = wh.query(SHOWN_ALARMS)
    min_batches = EnvelopeParams().min_batches
    return {
        "score": score(truth, **tables, min_batches=min_batches).record(),
        "product": product_view(truth, tables["verdicts"], shown, mspc, min_batches=min_batches),
        "user_view": user_view(
            truth, tables["verdicts"], tables["alarms"], _failed_checks(result, truth)
        ),
    }


#: check metadata that lists batches a failed check did not fail: those it looked at, could
#: not judge (with the reason), or only watches
_NOT_OFFENDING = frozenset({"batches_checked", "cannot_judge", "watch"})


def _failed_checks(result: Any, truth: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every check that failed in the build as the Dagster UI shows it (severity and
    description), with the batches it names in its description or offending metadata."""
    ids = {t["batch_id"] for t in truth}
    out = []
    for e in result.get_asset_check_evaluations():
        if e.passed:
            continue
        text = (e.description or "") + json.dumps(
            {
                k: getattr(v, "value", None)
                for k, v in e.metadata.items()
                if k not in _NOT_OFFENDING
            },
            default=str,
        )
        out.append(
            {
                "check": e.check_name,
                "severity": e.severity.value,
                "description": e.description,
                "batches": sorted(b for b in ids if b in text),
            }
        )
    return out


def _land_as_plant(
    root: Path,
    lake: Path,
    truth_dir: Path,
    files: Any,
    units: int,
    batches_per_unit: int,
    seed: int,
    fault_rate: float,
    shape: str,
) -> tuple[int, dict[str, Any]]:
    """The history simulated, exported as the plant (habits drawn from `seed`) would, and
    imported by `chrom import`'s own code with the mapping the export wrote."""
    from chrom_platform.importing_cli import data_files
    from chrom_platform.lib.core.master_data import load_master_data
    from chrom_platform.lib.io.importing.build import import_files
    from chrom_platform.lib.io.importing.mapping import load_mapping
    from chrom_platform.lib.io.importing.readers import ImportRejected
    from chrom_platform.lib.io.objectstore import open_store
    from simulator.export import export_csv
    from simulator.landing import unit_batches, unit_jobs, write_truth
    from simulator.realism import draw

    md = load_master_data(files.equipment, files.recipes)
    jobs = unit_jobs(
        md,
        landing="",
        units=units,
        batches_per_unit=batches_per_unit,
        seed=seed,
        fault_rate=fault_rate,
        equipment_path=files.equipment,
        recipes_path=files.recipes,
        simulation_path=files.simulation,
    )
    sims = [sim for job in jobs for sim in unit_batches(job, md)]
    out = root / "export"
    exported = export_csv(out, sims, shape, draw(seed))
    write_truth(truth_dir, [s.truth for s in sims], manifest={"mode": "evaluate-plant"})
    del sims
    try:
        report = import_files(
            data_files(exported),
            mapping=load_mapping(out / "mapping.yaml"),
            md=md,
            store=open_store(str(lake)),
        )
    except ImportRejected as e:  # what a user would read from `chrom import` itself
        raise ValueError(f"chrom import refused the plant's files in {out}:\n{e}") from e
    return report.readings, report.summary()


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:.1%}" if pct else f"{x:.3f}"


def render_table(result: dict[str, Any]) -> str:
    s = result["score"]
    lines = [
        f"process {result.get('process', '?')}, "
        f"seed {result['seed']}: {s['batches']} batches ({s['warm_up_batches']} warm-up), "
        f"{s['scored_faulty']} faulty and {s['scored_fault_free']} fault-free scored",
        "",
        f"{'fault kind':<22}{'batches':>8}{'detected':>10}{'recall':>9}{'median delay CV':>17}",
        *_kind_lines(s),
        *_measure_lines(result),
        *_product_lines(result),
    ]
    if result.get("realism") == "plant":
        lines.insert(1, f"from a plant's files ({result['shape']}) through chrom import")
    return "\n".join(lines)


_MARK = {True: "ok", False: "MISSED"}


def _kind_lines(s: dict[str, Any]) -> list[str]:
    """Per fault kind: batches, detected, recall, median delay; and what was not judgeable."""
    lines: list[str] = []
    for kind, k in s["per_kind"].items():
        lines.append(
            f"{kind:<22}{k['batches']:>8}{k['detected']:>10}{_fmt(k['recall'], True):>9}"
            f"{_fmt(k['median_delay_cv']):>17}"
        )
    if s.get("not_judgeable"):
        lines.append(
            "not judgeable, said so in the verdict (a compressed record hides the signal): "
            + ", ".join(
                f"{n['batch_id']} {n['kind']} {','.join(n['signals'])}" for n in s["not_judgeable"]
            )
        )
    return lines


def _measure_lines(result: dict[str, Any]) -> list[str]:
    """The scored measures against their targets, cold start, envelopes, checks."""
    s = result["score"]
    ok = s["passed"]
    mark = _MARK
    lines: list[str] = []
    lines += [
        "",
        f"{'measure':<34}{'value':>10}{'target':>10}  ",
        f"{'recall, all fault kinds':<34}{_fmt(s['recall'], True):>10}{'>= 95%':>10}  "
        f"{mark[ok['recall']]}",
        f"{'false alarms, fault-free batches':<34}{_fmt(s['false_alarm_rate'], True):>10}"
        f"{'<= 2%':>10}  {mark[ok['false_alarm_rate']]}",
        f"{'  of which a fail verdict':<34}{_fmt(s['fail_verdict_rate_fault_free'], True):>10}",
        f"{'median detection delay (CV)':<34}{_fmt(s['median_delay_cv']):>10}{'<= 0.5':>10}  "
        f"{mark[ok['median_delay_cv']]}",
        f"{'HETP error, worst batch':<34}{_fmt(s['hetp_error_max'], True):>10}{'<= 5%':>10}  "
        f"{mark[ok['hetp_error']]}",
        f"{'asymmetry error, worst batch':<34}{_fmt(s['asymmetry_error_max'], True):>10}"
        f"{'<= 10%':>10}  {mark[ok['asymmetry_error']]}",
        f"{'step yield error (pp), worst':<34}{_fmt(s['step_yield_error_pp_max']):>10}"
        f"{'<= 1.0':>10}  {mark[ok['step_yield_error_pp']]}",
        f"{'  of which the platform, worst':<34}{_fmt(s['step_yield_error_pp_platform_max']):>10}",
        f"{'  lab results alone, worst':<34}{_fmt(s['step_yield_error_pp_lab_max']):>10}",
        "",
        "cold start (faulty batches judged before their unit had its own envelope; how many "
        "the recipe's envelope across units judged): "
        + (
            ", ".join(
                f"{k} {c['detected']}/{c['batches']} ({c.get('cross_unit', 0)} cross-unit)"
                for k, c in s["cold_start"].items()
            )
            or "none"
        ),
        "own envelope from batch: "
        + ", ".join(f"{k} {v if v else 'never'}" for k, v in s["envelope_from_batch"].items()),
        "fault-free batches, warm-up included: "
        f"{_fmt(result['user_view']['any_error_rate'], True)} with any ERROR (fail verdict or "
        f"failing check), {_fmt(result['user_view']['fail_verdict_rate'], True)} fail verdicts, "
        f"{_fmt(result['user_view']['released_rate'], True)} released; alarms on them: "
        + (
            ", ".join(
                f"{k} {c}" for k, c in result["user_view"]["alarm_sources_on_fault_free"].items()
            )
            or "none"
        ),
        "checks failed in the build (as the Dagster UI shows them): "
        + (", ".join(result["checks"]["failed"]) or "none"),
        "  naming fault-free batches: "
        + (
            "; ".join(
                f"{sev} {name} {len(bs)}"
                for sev, by in result["user_view"]["checks_naming_fault_free"].items()
                for name, bs in by.items()
            )
            or "none"
        ),
    ]
    return lines


def _product_lines(result: dict[str, Any]) -> list[str]:
    """Every batch as the user sees it, against the product's targets."""
    mark = _MARK
    lines: list[str] = []
    p = result["product"]
    load, clean_load = p["alarm_load"]["all_batches"], p["alarm_load"]["fault_free_batches"]
    pt = PRODUCT_TARGETS
    lines += [
        "",
        "as the user sees it (every alarm and check, the multivariate verdict included; "
        "warm-up included):",
        f"{'fault-free batches with an ERROR':<34}{_fmt(p['false_error_rate'], True):>10}"
        f"{'<= ' + format(pt['false_error_rate'], '.0%'):>10}  "
        f"{mark[(p['false_error_rate'] or 0) <= pt['false_error_rate']]}",
        f"{'  worst unit':<34}{_fmt(p['worst_unit_error_rate'], True):>10}"
        f"{'<= ' + format(pt['false_error_rate_per_unit'], '.0%'):>10}  "
        f"{mark[(p['worst_unit_error_rate'] or 0) <= pt['false_error_rate_per_unit']]}",
        f"{'  most in a row on a unit':<34}{p['longest_error_run']:>10}"
        f"{'< ' + str(pt['false_error_run']):>10}  "
        f"{mark[p['longest_error_run'] < pt['false_error_run']]}",
        f"{'fault-free batches with a WARN':<34}{_fmt(p['false_warn_rate'], True):>10}",
        f"{'batches unjudged (no history)':<34}{_fmt(p['unjudged_rate'], True):>10}"
        f"{'<= ' + format(pt['unjudged_rate'], '.0%'):>10}  "
        f"{mark[(p['unjudged_rate'] or 0) <= pt['unjudged_rate']]}",
        f"{'recall, warm-up included':<34}{_fmt(p['recall_all_batches'], True):>10}",
        f"alarm load (ISA-18.2): {load['per_unit_per_day']} per unit per day, at most "
        f"{load['max_in_10_min']} in 10 min, {load['chattering']} chattering; on fault-free "
        f"batches {clean_load['per_unit_per_day']} per unit per day, at most "
        f"{clean_load['max_in_10_min']} in 10 min",
        "  false ERRORs: "
        + (
            "; ".join(f"{e['batch_id']} {', '.join(e['shown'])}" for e in p["false_errors"])
            or "none"
        ),
    ]
    return lines
