"""The warehouse through Dagster: landing -> bronze -> silver -> gold materialized with the
dbt tests as asset checks and the Python quality checks, first on a clean history (all pass),
then with faulty batches and redelivered readings landed on top (the matching checks fail
and name the offending batches). Also: freshness against landing, and declarative automation
requesting the dbt models when landing data arrives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from chrom_platform.defs.landing import assets as landing_defs
from chrom_platform.defs.warehouse.checks import QUALITY_CHECKS
from chrom_platform.defs.warehouse.dbt import chrom_dbt_models
from chrom_platform.defs.warehouse.freshness import (
    CHECK_NAME,
    FRESH_KEYS,
    evaluate,
    warehouse_freshness_sensor,
)
from chrom_platform.lib.core.contracts import (
    STAGING_COMMIT,
    STAGING_PREFIX,
    readings_key,
    staged_key,
)
from chrom_platform.lib.core.tables import (
    BRONZE_READINGS,
    GOLD_BATCH_RESULTS,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BY_CV,
    SILVER_READINGS_CHECKED,
)
from chrom_platform.lib.io.landing import PARQUET_OPTIONS, json_bytes
from chrom_platform.resources import build_resources
from chrom_platform.settings import Settings
from chrom_platform_tests.warehouse_helpers import DAY_NS, History, key

READINGS_KEY = dg.AssetKey(["landing", "readings"])
PYTHON_CHECKS = {
    "flatlined_signals",
    "gaps_in_readings",
    "phase_sensor_ranges",
    "duplicate_rate",
}


def _resources(h: History) -> dict:
    return build_resources(h.settings())


def _materialize(h: History, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*landing_defs.LANDING_SPECS, chrom_dbt_models, *QUALITY_CHECKS],
        resources=_resources(h),
        instance=instance,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    out: dict[str, dg.AssetCheckEvaluation] = {}
    for ev in result.get_asset_check_evaluations():
        out[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = ev
    return out


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def clean(md, tmp_path_factory, instance) -> tuple[History, dg.ExecuteInProcessResult]:
    h = History(tmp_path_factory.mktemp("dagster_wh"), md)
    h.land(units=2, batches_per_unit=2, seed=8, fault_rate=0.0)
    return h, _materialize(h, instance)


def test_landing_to_gold_with_every_check_passing_on_clean_data(clean) -> None:
    _, result = clean
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    for layer_model in (
        key(BRONZE_READINGS),
        key(SILVER_READINGS_CHECKED),
        key(GOLD_TREND_BY_CV),
        key(GOLD_BATCH_RESULTS),
        key(GOLD_PHASE_SUMMARY),
    ):
        assert layer_model in keys
    checks = _checks(result)
    dbt_checks = [c for name, c in checks.items() if name.split(":")[1] not in PYTHON_CHECKS]
    assert len(dbt_checks) > 80, "dbt data tests run as asset checks"
    failed = {name: c.description for name, c in checks.items() if not c.passed}
    assert not failed, failed
    for name in PYTHON_CHECKS:
        assert any(k.endswith(f":{name}") for k in checks), f"{name} did not run"
    flat = checks[key(GOLD_TREND_BY_CV, "flatlined_signals")]
    assert flat.metadata["batches_checked"].value == 4


def test_faulty_batches_and_redeliveries_fail_the_matching_checks(clean, instance) -> None:
    h, _ = clean
    start = max(int(s.ts_ns[-1]) for s in h.sims) + DAY_NS
    faulty: dict[str, str] = {}
    for i, kind in enumerate(("sensor_flatline", "sensor_dropout", "wrong_buffer")):
        before = {p for p in h.lake.rglob("*") if p.is_file()}
        (sim,) = h.land(
            units=1,
            batches_per_unit=1,
            seed=8,
            fault_rate=1.0,
            fault_kinds=(kind,),
            first_batch=2 + i,
            start_ns=start + 2 * i * DAY_NS,
        )
        faulty[kind] = sim.plan.batch_id
        if kind == "sensor_dropout":
            _leave_committed(
                h.lake, sorted(p for p in h.lake.rglob("*") if p.is_file() and p not in before)
            )
        if kind == "wrong_buffer":
            first_seq = int(sim.seq[sim.keep][0])
    # a redelivery landed with other micro-batch boundaries: 600 readings again, new name
    obj = next((h.lake / "landing" / "readings").rglob(f"SKID-01-{first_seq:012d}-*.parquet"))
    rows = pq.read_table(obj).slice(1000, 600)
    seq = rows.column("seq").to_pylist()
    redelivered = readings_key("SKID-01", rows.column("ts")[0].value, seq[0], seq[-1])
    assert not (h.lake / redelivered).exists()
    (h.lake / redelivered).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, h.lake / redelivered, **PARQUET_OPTIONS)

    result = _materialize(h, instance)
    assert result.success
    # the dbt asset published the interrupted import's objects before building (the
    # dropout batch is judged below) and removed its staging
    assert not (h.lake / STAGING_PREFIX).exists()
    # the second dbt run on this warehouse reused the first one's parse (parse_reused)
    first_run, second_run = sorted((h.duckdb_path.parent / ".dbt" / "runs").iterdir())[-2:]
    assert "Unable to do partial parsing" in (first_run / "dbt.log").read_text()
    assert "skipping partial parsing" in (second_run / "dbt.log").read_text()
    checks = _checks(result)
    failed = {name for name, c in checks.items() if not c.passed}
    assert failed == {
        key(GOLD_TREND_BY_CV, "flatlined_signals"),
        key(GOLD_TREND_BY_CV, "gaps_in_readings"),
        key(GOLD_TREND_BY_CV, "phase_sensor_ranges"),
        key(SILVER_READINGS_CHECKED, "duplicate_rate"),
    }, {n: checks[n].description for n in failed}

    def offending(name: str) -> list[str]:
        return checks[name].metadata["offending_batches"].value

    assert faulty["sensor_flatline"] in offending(key(GOLD_TREND_BY_CV, "flatlined_signals"))
    assert offending(key(GOLD_TREND_BY_CV, "gaps_in_readings")) == [faulty["sensor_dropout"]]
    assert faulty["wrong_buffer"] in offending(key(GOLD_TREND_BY_CV, "phase_sensor_ranges"))
    dup = checks[key(SILVER_READINGS_CHECKED, "duplicate_rate")]
    assert dup.severity == dg.AssetCheckSeverity.WARN
    assert dup.metadata["duplicates"].value == 600
    assert offending(key(SILVER_READINGS_CHECKED, "duplicate_rate")) == [faulty["wrong_buffer"]]
    ranges = checks[key(GOLD_TREND_BY_CV, "phase_sensor_ranges")]
    assert ranges.severity == dg.AssetCheckSeverity.ERROR
    # where: the offending phase and the CV it was judged from, for the engineer
    first = ranges.metadata["offending"].value[0]
    assert {"batch_id", "phase", "from_phase_cv", "cond_ms_cm", "buffer_cond_max_ms_cm"} <= set(
        first
    )
    # the redelivered readings did not reach gold twice
    with h.connect() as con:
        n, distinct = con.execute(
            f"select count(*), count(distinct (unit_id, ts)) from {GOLD_TREND_BY_CV}"
        ).fetchone()
    assert n == distinct


def _leave_committed(lake: Path, objects: list[Path]) -> None:
    """`objects` as an import killed after its commit leaves them: staged and committed,
    none moved into place yet (invisible to dbt until someone publishes them)."""
    staging = "1-killed"
    keys = [p.relative_to(lake).as_posix() for p in objects]
    assert keys
    for p, landing_key in zip(objects, keys, strict=True):
        target = lake / staged_key(staging, landing_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        p.rename(target)
    (lake / staged_key(staging, STAGING_COMMIT)).write_bytes(json_bytes({"keys": keys}))


def test_freshness_against_landing(clean, instance) -> None:
    h, _ = clean
    # landing reports new readings (the landing sensor does this in production)
    instance.report_runless_asset_event(dg.AssetMaterialization(READINGS_KEY))
    landed_at = instance.get_latest_materialization_event(READINGS_KEY).timestamp
    lags = evaluate(instance, max_lag_s=15 * 60, now=landed_at + 60)
    assert all(lag.passed and lag.lag_s == pytest.approx(60) for lag in lags.values())
    stale = evaluate(instance, max_lag_s=15 * 60, now=landed_at + 16 * 60)
    assert not any(lag.passed for lag in stale.values())
    assert "16.0 min" in stale[FRESH_KEYS[0]].describe()

    # the sensor reports one check evaluation per warehouse asset
    with dg.build_sensor_context(instance=instance, resources=_resources(h)) as ctx:
        res = warehouse_freshness_sensor(ctx)
    evals = [e for e in res.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert {e.asset_key for e in evals} == set(FRESH_KEYS)
    assert all(e.check_name == CHECK_NAME and e.passed for e in evals)

    # once gold is rebuilt it has caught up
    _materialize(h, instance)
    caught_up = evaluate(instance, max_lag_s=15 * 60, now=landed_at + 16 * 60)
    assert all(lag.passed and lag.lag_s == 0 for lag in caught_up.values())


def _requested(defs: dg.Definitions, result) -> set[str]:
    return {
        k.to_user_string()
        for k in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(k)
    }


def test_new_landing_data_requests_the_dbt_models(tmp_path: Path) -> None:
    defs = dg.Definitions(
        assets=[*landing_defs.LANDING_SPECS, chrom_dbt_models],
        asset_checks=QUALITY_CHECKS,
        resources=build_resources(Settings.from_env({"CHROM_DATA_DIR": str(tmp_path)})),
    )
    with dg.instance_for_test() as inst:
        first = dg.evaluate_automation_conditions(defs=defs, instance=inst)
        # nothing landed yet: only the seed (no upstream) is built; models wait for landing
        assert _requested(defs, first) == {"silver/signal_specs"}
        # that run happened; then the plant lands data and the landing sensor reports it
        inst.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["silver", "signal_specs"]))
        )
        for spec in landing_defs.LANDING_SPECS:
            inst.report_runless_asset_event(dg.AssetMaterialization(spec.key))
        second = dg.evaluate_automation_conditions(
            defs=defs,
            instance=inst,
            cursor=first.cursor,
            evaluation_time=dt.datetime.now() + dt.timedelta(seconds=1),
        )
        requested = _requested(defs, second)
        models = {
            k.to_user_string()
            for k in chrom_dbt_models.keys
            if k.path[0] in ("bronze", "silver", "gold") and k.path[1] != "signal_specs"
        }
        assert requested == models, sorted(models ^ requested)
        # asked again with nothing new: nothing more (no pile-up of runs)
        third = dg.evaluate_automation_conditions(
            defs=defs,
            instance=inst,
            cursor=second.cursor,
            evaluation_time=dt.datetime.now() + dt.timedelta(seconds=2),
        )
        assert _requested(defs, third) == set()
