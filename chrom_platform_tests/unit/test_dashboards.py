"""Dashboards and alert rules as code: the committed files are what the code generates, and
their structure is what Grafana and the tests that run every query rely on."""

from __future__ import annotations

import json
import re

import pytest
import sqlglot
import yaml

from chrom_platform.grafana.alerts import rule_specs
from chrom_platform.grafana.generate import GRAFANA_DIR, all_rendered, boards, differences
from chrom_platform.grafana.queries import (
    INFLUX_UID,
    PROFILES,
    WAREHOUSE_PLUGIN,
    WAREHOUSE_UID,
    substitute,
    to_snowflake,
)


def test_committed_files_are_what_the_code_generates() -> None:
    assert differences() == [], "run `chrom dashboards` and commit infra/grafana/"
    # and nothing stale lies beside them
    on_disk = {
        str(p.relative_to(GRAFANA_DIR))
        for p in GRAFANA_DIR.rglob("*")
        if p.is_file() and p.suffix in (".json", ".yaml")
    }
    assert on_disk == set(all_rendered())


def _targets(panel: dict) -> list[dict]:
    return panel.get("targets") or []


@pytest.mark.parametrize("profile", PROFILES)
def test_every_query_in_the_json_is_one_the_tests_run(profile: str) -> None:
    for b in boards(profile):
        doc = json.loads((GRAFANA_DIR / f"dashboards/{profile}/{b.uid}.json").read_text())
        targets = [t for p in doc["panels"] for t in _targets(p)]
        variables = [v for v in doc["templating"].get("list", []) if v["type"] == "query"]
        annotations = [a for a in doc["annotations"].get("list", []) if a.get("target")]
        assert len(targets) + len(variables) + len(annotations) == len(b.queries), b.uid
        for t in targets:
            uid = t["datasource"]["uid"]
            assert uid in (INFLUX_UID, WAREHOUSE_UID)
            if uid == WAREHOUSE_UID:
                assert t["datasource"]["type"] == WAREHOUSE_PLUGIN[profile]
        names = {v["name"] for v in doc["templating"].get("list", [])}
        assert "unit" in names, b.uid
        assert all("gridPos" in p for p in doc["panels"])


def test_live_run_and_comparison_have_the_unit_recipe_and_batch_variables() -> None:
    by_uid = {b.uid: b for b in boards("local")}
    live = {r.where for r in by_uid["chrom-live-run"].queries if r.where.startswith("variable:")}
    assert live == {"variable:unit", "variable:recipe", "variable:batch"}
    comp = {
        r.where for r in by_uid["chrom-batch-comparison"].queries if r.where.startswith("variable:")
    }
    assert {"variable:unit", "variable:recipe", "variable:batches"} <= comp


@pytest.mark.parametrize("profile", PROFILES)
def test_alert_rules_reference_provisioned_datasources_and_their_own_steps(profile: str) -> None:
    doc = yaml.safe_load((GRAFANA_DIR / f"provisioning/{profile}/alerting.yaml").read_text())
    ds = yaml.safe_load((GRAFANA_DIR / f"provisioning/{profile}/datasources.yaml").read_text())
    uids = {d["uid"] for d in ds["datasources"]} | {"__expr__"}
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert len(rules) == len(rule_specs()) == 5
    for r in rules:
        refs = {q["refId"] for q in r["data"]}
        assert r["condition"] in refs
        assert {q["datasourceUid"] for q in r["data"]} <= uids
        for q in r["data"]:
            if q["datasourceUid"] == "__expr__":
                assert q["model"]["expression"] in refs


@pytest.mark.parametrize("profile", PROFILES)
def test_no_secret_is_written_into_provisioning(profile: str) -> None:
    ds = yaml.safe_load((GRAFANA_DIR / f"provisioning/{profile}/datasources.yaml").read_text())
    for d in ds["datasources"]:
        for value in (d.get("secureJsonData") or {}).values():
            assert re.fullmatch(r"(Token )?\$\{[A-Z_]+\}", value), value


def test_snowflake_sql_keeps_grafana_variables_and_parses() -> None:
    sql = "select distinct unit_id as \"unit_id\" from gold.t where b in (${batches:sqlstring}) and u = '${unit}' and x is not null"
    snow = to_snowflake(sql)
    assert "${batches:sqlstring}" in snow
    assert "'${unit}'" in snow
    filled = substitute(snow, {"batches": ["B1", "B'2"], "unit": "SKID-01"}, sql=True)
    assert "IN ('B1','B''2')" in filled
    assert sqlglot.parse_one(filled, read="snowflake").named_selects == ["unit_id"]
