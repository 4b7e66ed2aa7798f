"""Data as a plant delivers it: lab results days after their batch, events before readings,
objects sent twice, a corrected master data snapshot, a writer killed mid-write. Whatever
the order, incremental `dbt build`s and analytics runs must end where a full rebuild of the
same landing ends (the property), and a late lab result must re-judge its batch.

The landing a case delivers is one simulated history's objects, copied into a fresh lake
delivery by delivery; each delivery is followed by the build Dagster would run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chrom_platform.lib.analytics import pipeline
from chrom_platform.lib.core.contracts import MASTER_DATA_PREFIX, SAMPLES_PREFIX, master_data_key
from chrom_platform.lib.core.tables import (
    BRONZE_READINGS,
    GOLD_BATCH_ALARMS,
    GOLD_BATCH_PEAKS,
    GOLD_BATCH_RESULTS,
    GOLD_BATCH_VERDICT,
    GOLD_PHASE_SUMMARY,
    GOLD_TREND_BINNED,
    GOLD_TREND_BY_CV,
    SILVER_BATCH_REVISIONS,
    SILVER_BATCHES,
    SILVER_READINGS,
    SILVER_READINGS_CHECKED,
    SILVER_REJECTS,
    SILVER_UNITS,
)
from chrom_platform.lib.io.landing import json_bytes
from chrom_platform.lib.io.objectstore import PARTIAL_PREFIX
from chrom_platform.lib.io.warehouse import DBT_BUILD, WarehouseConfig
from chrom_platform_tests.warehouse_helpers import (
    History,
    assert_same_tables,
    gold_tables,
    run_dbt,
    table,
)

pytestmark = pytest.mark.e2e

#: what a full rebuild and the incremental runs must agree on, and each table's row key
GOLD = {
    GOLD_TREND_BY_CV.name: "unit_id, ts",
    GOLD_PHASE_SUMMARY.name: "batch_id, phase",
    GOLD_BATCH_RESULTS.name: "batch_id",
    GOLD_TREND_BINNED.name: "batch_id, phase, cv_bin",
}
ANALYTICS = {
    GOLD_BATCH_ALARMS.name: "batch_id, source, signal, phase, detail",
    GOLD_BATCH_VERDICT.name: "batch_id",
    GOLD_BATCH_PEAKS.name: "batch_id",
}


@pytest.fixture(scope="module")
def source(md, tmp_path_factory) -> dict[str, Any]:
    """One small history's landed objects (2 units x 2 batches) by kind, and a second
    equipment snapshot: the same skids with a corrected column volume on the first."""
    h = History(tmp_path_factory.mktemp("source"), md)
    h.land(units=2, batches_per_unit=2, seed=33, fault_rate=0.0)
    objects = sorted(p.relative_to(h.lake).as_posix() for p in h.lake.rglob("*") if p.is_file())
    equipment = md.equipment_record()
    equipment["units"][0]["column_volume_l"] = round(
        equipment["units"][0]["column_volume_l"] * 1.05, 4
    )
    from chrom_platform.lib.core.master_data import content_hash

    corrected = (master_data_key("equipment", content_hash(equipment)), json_bytes(equipment))
    revised = _revise_a_batch(h.lake)
    objects += revised
    return {"lake": h.lake, "objects": objects, "corrected_equipment": corrected, "md": md}


def _land_corrected(source: dict[str, Any], lake: Path) -> None:
    """The corrected equipment snapshot into `lake`, landed after what is there already."""
    key, body = source["corrected_equipment"]
    (lake / key).parent.mkdir(parents=True, exist_ok=True)
    (lake / key).write_bytes(body)
    later = (lake / key).stat().st_mtime + 5
    os.utime(lake / key, (later, later))


@pytest.fixture(scope="module")
def rebuilt(
    source: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, pa.Table]:
    """Gold and the analytics of a full rebuild of the whole landing with the corrected
    snapshot: where every arrival order must end. Built once (its tables drop the columns
    that say when a build ran, so one rebuild stands for every example's)."""
    root = tmp_path_factory.mktemp("rebuilt")
    _deliver(source["lake"], root / "lake", source["objects"])
    _land_corrected(source, root / "lake")
    _full(root / "lake", root / "full.duckdb", root / "dbt")
    return _dump(root / "full.duckdb")


def _revise_a_batch(lake: Path) -> list[str]:
    """A corrected re-import of the first batch, as `chrom import --replace` lands it:
    revision 2 of its readings (UV recalibrated, +2 %), events and lab results, as new
    objects beside the first revision. Returns their keys."""
    import pyarrow.parquet as pq

    from chrom_platform.lib.core.contracts import EVENTS_PREFIX, READINGS_PREFIX, revised
    from chrom_platform.lib.io.landing import parquet_bytes, readings_objects

    events = sorted((lake / EVENTS_PREFIX).rglob("*-events.json"))
    batch = json.loads(events[0].read_text().splitlines()[0])["batch_id"]
    keys = []
    parts = [pq.read_table(p) for p in sorted((lake / READINGS_PREFIX).rglob("*.parquet"))]
    readings = pa.concat_tables(parts)
    readings = readings.filter(pc.equal(readings["batch_id"], batch)).sort_by("seq")
    readings = readings.set_column(
        readings.schema.get_field_index("uv_mau"), "uv_mau", pc.multiply(readings["uv_mau"], 1.02)
    )
    for key, part in readings_objects(readings):
        (lake / revised(key, 2)).write_bytes(parquet_bytes(part))
        keys.append(revised(key, 2))
    r2 = events[0].with_name(events[0].name.replace("-events.json", "-events-r2.json"))
    r2.write_bytes(events[0].read_bytes())
    keys.append(r2.relative_to(lake).as_posix())
    for p in sorted((lake / SAMPLES_PREFIX).rglob("*.json")):
        if json.loads(p.read_text())["batch_id"] == batch:
            q = p.with_name(p.name.replace(".json", "-r2.json"))
            q.write_bytes(p.read_bytes())
            keys.append(q.relative_to(lake).as_posix())
    assert len(keys) >= 4
    return keys


def _deliver(src: Path, lake: Path, keys: list[str]) -> None:
    for key in keys:
        (lake / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / key, lake / key)


def _build(lake: Path, db: Path, work: Path) -> None:
    """`dbt build`, then the analytics. Every build must pass, whatever part of the
    landing has arrived (half a batch's readings, events without readings, readings of a
    unit no snapshot declares yet)."""
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=work)
    with WarehouseConfig("local", str(db), str(lake)).connect(read_only=False) as wh:
        pipeline.run(wh)


def _full(lake: Path, db: Path, work: Path) -> None:
    """A full rebuild of the landing: a new database, everything recomputed."""
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=work)
    with WarehouseConfig("local", str(db), str(lake)).connect(read_only=False) as wh:
        pipeline.run(wh, full=True)


def _dump(db: Path) -> dict[str, pa.Table]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return gold_tables(con, {**GOLD, **ANALYTICS})


def test_late_master_data_and_lab_results_rejudge_their_batches(
    source: dict[str, Any], tmp_path: Path
) -> None:
    """Readings and events land before any master data: they wait in silver_rejects as
    `unknown_unit` / `unknown_recipe` (nothing in gold, every build passing); the snapshots
    land and the next build takes them all in. LIMS results land after that: gold's yield
    and alerts, and the analytics' verdict, follow them on the next incremental build."""
    lake, db, work = tmp_path / "lake", tmp_path / "wh.duckdb", tmp_path / "dbt"
    labs = [k for k in source["objects"] if k.startswith(SAMPLES_PREFIX)]
    md_keys = [k for k in source["objects"] if k.startswith(MASTER_DATA_PREFIX)]
    rest = [k for k in source["objects"] if k not in labs and k not in md_keys]
    assert labs
    assert md_keys
    assert rest
    _deliver(source["lake"], lake, rest)
    _build(lake, db, work)
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        waiting = {
            (r["rejected_from"], r["reject_reason"]): r["rows_rejected"]
            for r in table(con, f"select * from {SILVER_REJECTS}")
        }
        in_gold = table(con, f"select count(*) as n from {GOLD_TREND_BY_CV}")[0]["n"]
    assert waiting[("readings", "unknown_unit")] > 10_000, waiting
    assert waiting[("batch_events", "unknown_unit")] > 0, waiting
    assert in_gold == 0
    _deliver(source["lake"], lake, md_keys)
    _build(lake, db, work)

    q = f"select batch_id, step_yield, alerts, _source_loaded_at from {GOLD_BATCH_RESULTS}"
    with duckdb.connect(str(db), read_only=True) as con:
        before = {r["batch_id"]: r for r in table(con, q)}
        verdict_before = {
            r["batch_id"]: r["_source_loaded_at"]
            for r in table(con, f"select batch_id, _source_loaded_at from {GOLD_BATCH_PEAKS}")
        }
    assert len(before) == 4
    assert all("feed_titer_missing" in (r["alerts"] or "") for r in before.values())
    assert all(r["step_yield"] is None for r in before.values())

    _deliver(source["lake"], lake, labs)
    _build(lake, db, work)
    with duckdb.connect(str(db), read_only=True) as con:
        after = {r["batch_id"]: r for r in table(con, q)}
        alarms = table(con, f"select batch_id, signal from {GOLD_BATCH_ALARMS}")
        peaks = {
            r["batch_id"]: r["_source_loaded_at"]
            for r in table(con, f"select batch_id, _source_loaded_at from {GOLD_BATCH_PEAKS}")
        }
    for bid, r in after.items():
        assert "missing" not in (r["alerts"] or ""), (bid, r["alerts"])
        assert r["step_yield"] is not None, (bid, r)
        assert 0.5 < r["step_yield"] < 1.1, (bid, r)
        assert r["_source_loaded_at"] > before[bid]["_source_loaded_at"]
        assert peaks[bid] > verdict_before[bid], "the analytics re-analysed the batch"
    assert not [a for a in alarms if a["signal"] in ("feed_titer_missing", "pool_result_missing")]

    full = tmp_path / "full.duckdb"
    _full(lake, full, tmp_path / "dbt_full")
    assert_same_tables(_dump(db), _dump(full))


def test_a_writers_temporary_file_is_never_loaded(source: dict[str, Any], tmp_path: Path) -> None:
    """A local writer killed between write and rename leaves a hidden temporary file beside
    the objects (a whole copy, or a truncated one): the warehouse never globs it."""
    lake, db = tmp_path / "lake", tmp_path / "wh.duckdb"
    _deliver(source["lake"], lake, source["objects"])
    readings = sorted((lake / "landing" / "readings").rglob("*.parquet"))
    whole = readings[0].with_name(f"{PARTIAL_PREFIX}abc123.parquet")  # an older writer's name
    shutil.copyfile(readings[0], whole)
    truncated = readings[1].with_name(f"{PARTIAL_PREFIX}def456.partial")
    truncated.write_bytes(readings[1].read_bytes()[:100])
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=tmp_path / "dbt")
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        files = {
            r["f"] for r in table(con, f"select distinct _source_file as f from {BRONZE_READINGS}")
        }
        dupes = table(
            con,
            f"select count(*) as n from {SILVER_READINGS_CHECKED} where reject_reason is not null",
        )
    assert len(files) == len(readings)
    assert not [f for f in files if f.rsplit("/", 1)[-1].startswith(".")]
    assert dupes[0]["n"] == 0


def _export(md, out: Path) -> None:
    from simulator.export import export_csv
    from simulator.landing import unit_batches, unit_jobs

    job = unit_jobs(md, landing="", units=1, batches_per_unit=2, seed=41, fault_rate=0.0)[0]
    export_csv(out, list(unit_batches(job, md)), "wide")


def _import_cli(folder: Path, lake: Path, capsys, *extra: str) -> tuple[int, str, str]:
    from chrom_platform_tests.import_helpers import chrom_import

    return chrom_import(folder / "readings", folder / "mapping.yaml", lake, capsys, *extra)


def _set_mapping(folder: Path, edit) -> None:
    import yaml

    doc = yaml.safe_load((folder / "mapping.yaml").read_text())
    edit(doc)
    (folder / "mapping.yaml").write_text(yaml.safe_dump(doc))


def test_a_corrected_reimport_supersedes_the_landed_batch(md, tmp_path: Path, capsys) -> None:
    """A plant's files imported with the wrong UV unit, then corrected (--replace), then
    with the time zone changed (--replace again): silver holds each batch once, in its
    latest revision; the superseded objects stay in the landing, counted in silver_rejects;
    incremental builds end where a full rebuild ends. A re-import of the same files is a
    no-op, a changed one without --replace and another unit reusing a batch id are refused
    naming the landed object."""
    import duckdb

    files, lake, db, work = (
        tmp_path / "files",
        tmp_path / "lake",
        tmp_path / "wh.duckdb",
        tmp_path / "dbt",
    )
    _export(md, files)
    _set_mapping(files, lambda d: d["signals"]["uv_mau"].update(unit="mAU"))  # the mistake
    rc, out, err = _import_cli(files, lake, capsys)
    assert rc == 0, err
    first = sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file())
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=work)
    q_uv = f"select batch_id, count(*) as n, max(uv_mau) as uv from {SILVER_READINGS} group by 1 order by 1"
    with duckdb.connect(str(db), read_only=True) as con:
        wrong = table(con, q_uv)
    assert len(wrong) == 2
    assert all(r["uv"] < 5 for r in wrong), wrong

    rc, out, err = _import_cli(files, lake, capsys)  # the same files again: nothing changes
    assert rc == 0, err
    assert json.loads(out)["imported"]["replaced"] == []
    assert sorted(p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()) == first

    _set_mapping(files, lambda d: d["signals"]["uv_mau"].update(unit="AU"))
    rc, out, err = _import_cli(files, lake, capsys)
    assert rc == 2
    assert "is already landed with other content" in err, err
    assert "--replace" in err
    rc, out, err = _import_cli(files, lake, capsys, "--replace")
    assert rc == 0, err
    assert len(json.loads(out)["imported"]["replaced"]) == 2
    assert set(first) <= {p.relative_to(lake).as_posix() for p in lake.rglob("*")}, "kept"
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=work)
    with duckdb.connect(str(db), read_only=True) as con:
        right = table(con, q_uv)
        superseded = table(
            con,
            f"select rejected_from, rows_rejected from {SILVER_REJECTS} "
            "where reject_reason = 'superseded' order by 1",
        )
    assert [r["n"] for r in right] == [r["n"] for r in wrong], "each reading once"
    for w, r in zip(wrong, right, strict=True):
        assert r["uv"] == pytest.approx(w["uv"] * 1000, rel=1e-6)
    by_source = {r["rejected_from"]: r["rows_rejected"] for r in superseded}
    assert by_source["readings"] == sum(r["n"] for r in wrong)
    assert by_source["batch_events"] > 0

    # the time zone corrected: every reading moves 5.5 h; still each reading once
    _set_mapping(files, lambda d: d["time"].update(timezone="UTC"))
    rc, out, err = _import_cli(files, lake, capsys, "--replace")
    assert rc == 0, err
    run_dbt(DBT_BUILD, duckdb_path=db, landing=lake, work=work)
    with duckdb.connect(str(db), read_only=True) as con:
        moved = table(con, q_uv)
        starts = table(con, f"select batch_id, started_at from {SILVER_BATCHES} order by 1")
        revisions = table(
            con, f"select batch_id, revision from {SILVER_BATCH_REVISIONS} order by 1"
        )
    assert [r["n"] for r in moved] == [r["n"] for r in wrong]
    assert [r["revision"] for r in revisions] == [3, 3]
    assert len(starts) == 2
    with WarehouseConfig("local", str(db), str(lake)).connect(read_only=False) as wh:
        pipeline.run(wh)
    full = tmp_path / "full.duckdb"
    _full(lake, full, tmp_path / "dbt_full")
    assert_same_tables(_dump(db), _dump(full))

    # another unit reusing the ids: refused, naming the unit the batch is landed on
    batches = files / "batches.csv"
    batches.write_text(batches.read_text().replace(",SKID-01,", ",SKID-02,"))
    rc, out, err = _import_cli(files, lake, capsys)
    assert rc == 2
    assert "is already landed on unit SKID-01, not SKID-02" in err, err


@st.composite
def arrivals(draw: st.DrawFn, objects: list[str]) -> list[list[str]]:
    """Deliveries of the landing: every object at least once, in random groups and order,
    some sent again in a later delivery, lab results often last."""
    n = draw(st.integers(min_value=2, max_value=3))
    groups: list[list[str]] = [[] for _ in range(n)]
    late_labs = draw(st.booleans())
    for key in objects:
        if late_labs and key.startswith(SAMPLES_PREFIX):
            i = n - 1
        else:
            i = draw(st.integers(min_value=0, max_value=n - 1))
        groups[i].append(key)
        if i < n - 1 and draw(st.integers(min_value=0, max_value=9)) == 0:
            groups[draw(st.integers(min_value=i + 1, max_value=n - 1))].append(key)  # re-sent
    return [draw(st.permutations(g)) for g in groups]


# three examples of minutes of dbt each: above the suite's 600 s default per test on a
# loaded 2-core machine
@pytest.mark.timeout(1500)
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is minutes of dbt
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_arrival_order_converges_to_a_full_rebuild(
    source: dict[str, Any],
    rebuilt: dict[str, pa.Table],
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
) -> None:
    """Random groupings, orders and repetitions of the landing (a corrected re-import of one
    batch among the objects: its revision 2 may arrive before or after revision 1, events
    before readings, readings before their unit's master data), with the corrected equipment snapshot landing after some delivery:
    after the last incremental build, gold and the analytics equal a full rebuild of the
    landing, and the batch is judged on its revision 2."""
    root = tmp_path_factory.mktemp("arrival")
    lake, db, work = root / "lake", root / "wh.duckdb", root / "dbt"
    plan = data.draw(arrivals(source["objects"]))
    # the correction lands after every copy of the snapshot it corrects: the newest landed
    # snapshot is the current one, so an old one re-sent later would rightly win again
    last_md = max(
        i for i, keys in enumerate(plan) for k in keys if k.startswith(MASTER_DATA_PREFIX)
    )
    correct_after = data.draw(st.integers(min_value=last_md, max_value=len(plan) - 1))
    for i, keys in enumerate(plan):
        _deliver(source["lake"], lake, keys)
        if i == correct_after:
            _land_corrected(source, lake)
        _build(lake, db, work)
    # the landing the rebuild was made of, however it arrived
    landed = {p.relative_to(lake).as_posix() for p in lake.rglob("*") if p.is_file()}
    assert landed == {*source["objects"], source["corrected_equipment"][0]}
    assert len(rebuilt[GOLD_BATCH_RESULTS.name]) == 4
    assert_same_tables(_dump(db), rebuilt)
    # the corrected snapshot is the one both judged with
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        volumes = {r["v"] for r in table(con, f"select column_volume_l as v from {SILVER_UNITS}")}
    assert json.loads(source["corrected_equipment"][1])["units"][0]["column_volume_l"] in volumes
    with duckdb.connect(str(db), read_only=True) as con:
        files = table(
            con,
            f"select distinct _source_file as f from {SILVER_READINGS} "
            f"where batch_id = (select batch_id from {SILVER_BATCH_REVISIONS} where revision = 2)",
        )
    assert files
    assert all(r["f"].endswith("-r2.parquet") for r in files), files
