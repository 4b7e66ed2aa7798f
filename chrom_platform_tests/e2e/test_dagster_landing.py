"""Dagster: the code location loads; the landing sensor reports what lands, once."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from chrom_platform.definitions import defs as lazy_defs
from chrom_platform.defs.landing.assets import landing_sensor
from chrom_platform.resources import build_resources
from chrom_platform.settings import Settings
from chrom_platform_tests.conftest import START_NS
from simulator.landing import backfill


def test_code_location_loads_with_landing_assets(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROM_DATA_DIR", str(tmp_path))
    defs = lazy_defs()
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {
        "landing/readings",
        "landing/batch_events",
        "landing/sample_results",
        "landing/master_data",
    } <= keys
    assert defs.resolve_sensor_def("landing_sensor").name == "landing_sensor"
    spec = next(
        s
        for s in defs.assets
        if isinstance(s, dg.AssetSpec) and s.key == dg.AssetKey(["landing", "readings"])
    )
    assert spec.description
    assert "Parquet" in spec.description


def test_unknown_profile_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("CHROM_PROFILE", "laptop")
    with pytest.raises(ValueError, match="CHROM_PROFILE: unknown profile 'laptop'"):
        lazy_defs()


def test_landing_sensor_reports_new_objects_once(md, tmp_path):
    lake = str(tmp_path / "lake")
    backfill(
        landing=lake,
        truth_dir=tmp_path / "truth",
        units=2,
        batches_per_unit=2,
        seed=1,
        fault_rate=0.0,
        start_ns=START_NS,
    )
    resources = build_resources(
        Settings.from_env({"CHROM_DATA_DIR": str(tmp_path), "CHROM_LANDING_URI": lake})
    )
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            first = landing_sensor(ctx)
        assert isinstance(first, dg.SensorResult)
        by_key = {e.asset_key.to_user_string(): e for e in first.asset_events}
        assert set(by_key) == {
            "landing/readings",
            "landing/batch_events",
            "landing/sample_results",
            "landing/master_data",
        }
        assert by_key["landing/batch_events"].metadata["objects"].value == 4
        assert by_key["landing/readings"].metadata["new_objects_by_unit"].value.keys() == {
            "SKID-01",
            "SKID-02",
        }

        # same cursor, nothing new: skip
        with dg.build_sensor_context(
            instance=instance, resources=resources, cursor=first.cursor
        ) as ctx:
            again = landing_sensor(ctx)
        assert again.skip_reason is not None
        assert not again.asset_events

        # one more batch on one unit: only what changed is reported
        backfill(
            landing=lake,
            truth_dir=None,
            units=1,
            batches_per_unit=1,
            first_batch=2,
            seed=1,
            fault_rate=0.0,
            start_ns=START_NS + 10 * 86_400 * 10**9,
        )
        with dg.build_sensor_context(
            instance=instance, resources=resources, cursor=first.cursor
        ) as ctx:
            third = landing_sensor(ctx)
        by_key = {e.asset_key.to_user_string(): e for e in third.asset_events}
        assert by_key["landing/batch_events"].metadata["new_objects"].value == 1
        assert by_key["landing/batch_events"].metadata["objects"].value == 5
        assert "landing/master_data" not in by_key  # same content, same object: not new
        assert json.loads(third.cursor)["readings"] > json.loads(first.cursor)["readings"]


def test_an_imports_report_lands_with_it_and_shows_in_the_ui(md, tmp_path, capsys):
    """`chrom import` keeps its report with the landing; the landing sensor shows the newest
    in the `landing/import_reports` asset's metadata. The same files again add no report."""
    from chrom_platform_tests.import_helpers import chrom_import
    from simulator.export import export_csv
    from simulator.landing import unit_batches, unit_jobs

    files, lake = tmp_path / "files", tmp_path / "lake"
    job = unit_jobs(md, landing="", units=1, batches_per_unit=2, seed=43, fault_rate=0.0)[0]
    export_csv(files, list(unit_batches(job, md)), "wide")
    rc, out, err = chrom_import(files / "readings", files / "mapping.yaml", lake, capsys)
    assert rc == 0, err
    summary = json.loads(out)["imported"]
    (report,) = (lake / "landing" / "imports").iterdir()
    landed = json.loads(report.read_text())
    assert landed["file_names"] == sorted(p.name for p in (files / "readings").iterdir())
    assert landed["files"] == summary["files"] == 2
    assert landed["inferred"] == summary["inferred"]
    assert landed["readings"] == summary["readings"] > 0

    resources = build_resources(
        Settings.from_env({"CHROM_DATA_DIR": str(tmp_path), "CHROM_LANDING_URI": str(lake)})
    )
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            first = landing_sensor(ctx)
        by_key = {e.asset_key.to_user_string(): e for e in first.asset_events}
        shown = by_key["landing/import_reports"].metadata["newest_report"].value
        assert shown == {"object": f"landing/imports/{report.name}", **landed}
        # the same files again: the same report, nothing new to show
        rc, _, err = chrom_import(files / "readings", files / "mapping.yaml", lake, capsys)
        assert rc == 0, err
        assert len(list((lake / "landing" / "imports").iterdir())) == 1
        with dg.build_sensor_context(
            instance=instance, resources=resources, cursor=first.cursor
        ) as ctx:
            again = landing_sensor(ctx)
        assert "landing/import_reports" not in {
            e.asset_key.to_user_string() for e in again.asset_events or []
        }
