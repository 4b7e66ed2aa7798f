"""Terraform cannot run here (no provider downloads): these tests parse every `.tf` file with
python-hcl2 and check what a reviewer would: variables declared and documented, no secret
literal, no admin or owner role, and resource names that match what the application uses.
`terraform validate` and `plan` stay with the user (README, production section)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from chrom_platform.bridge_cli import build_parser as bridge_parser
from chrom_platform.grafana.queries import INFLUX_UID, WAREHOUSE_UID
from chrom_platform.lib.core.contracts import EVENTS_PREFIX, READINGS_PREFIX
from chrom_platform.lib.io.transport import (
    DEAD_LETTER_TOPIC,
    LANDING_SUBSCRIPTION,
    LIVE_BRIDGE_SUBSCRIPTION,
    READINGS_TOPIC,
)
from chrom_platform.lib.io.transport.base import DEAD_LETTER_SUBSCRIPTION, readings_topology
from chrom_platform.settings import PROJECT_ROOT

INFRA = PROJECT_ROOT / "infra"
ROOTS = ("gcp", "snowflake", "grafana_cloud")
DBT = PROJECT_ROOT / "dbt_chrom"
#: the only IAM roles any workload gets
ALLOWED_GCP_ROLES = {
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/storage.objectUser",  # objects only: re-writing a deterministic landing name
    "roles/storage.objectViewer",
    "roles/secretmanager.secretAccessor",
}
ADMIN = re.compile(
    r"roles/(owner|editor)\b|roles/[\w.]*admin\b|\b(ACCOUNTADMIN|SECURITYADMIN|SYSADMIN|USERADMIN|ORGADMIN)\b",
    re.IGNORECASE,
)


def _clean(v: Any) -> Any:
    """python-hcl2 keeps quotes around keys and strings: strip them."""
    if isinstance(v, dict):
        return {
            _clean(k): _clean(x) for k, x in v.items() if k not in ("__is_block__", "__comments__")
        }
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def load(root: str) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted((INFRA / root).glob("*.tf")):
        with path.open() as f:
            doc = _clean(hcl2.load(f))
        for k, v in doc.items():
            merged.setdefault(k, []).extend(v)
    return merged


def resources(root: str, kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for block in load(root).get("resource", []):
        for k, named in block.items():
            if k == kind:
                out.update(named)
    return out


def text(root: str) -> str:
    return "\n".join(p.read_text() for p in sorted((INFRA / root).glob("*.tf")))


def locals_(root: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in load(root).get("locals", []):
        out.update(block)
    return out


@pytest.mark.parametrize("root", ROOTS)
def test_every_file_parses_and_providers_are_pinned(root: str) -> None:
    doc = load(root)
    assert doc.get("resource"), root
    (tf,) = doc["terraform"]
    for name, spec in tf["required_providers"][0].items():
        assert "source" in spec, name
        assert re.search(r"[<>=~]", spec["version"]), f"{name}: unpinned"


@pytest.mark.parametrize("root", ROOTS)
def test_every_variable_used_is_declared_documented_and_used(root: str) -> None:
    declared = {
        name: spec for block in load(root).get("variable", []) for name, spec in block.items()
    }
    used = set(re.findall(r"\bvar\.(\w+)", text(root)))
    assert used <= set(declared), f"undeclared: {used - set(declared)}"
    assert set(declared) <= used, f"declared but unused: {set(declared) - used}"
    for name, spec in declared.items():
        assert len(spec.get("description", "")) > 15, f"{name}: undocumented"
        assert "type" in spec, name
        if re.search(r"token|private_key|password|secret", name):
            assert spec.get("sensitive") is True, f"{name} must be sensitive"


@pytest.mark.parametrize("root", ROOTS)
def test_no_secret_literal(root: str) -> None:
    src = text(root)
    assert "PRIVATE KEY-----" not in src
    literal = re.compile(
        r"""^\s*"?(\w*(password|token|secret|private_?key|privateKey|httpHeaderValue)\w*)"?\s*=\s*"(?![^"]*\$\{)[^"]+"$""",
        re.IGNORECASE | re.MULTILINE,
    )
    assert not literal.findall(src), literal.findall(src)


@pytest.mark.parametrize("root", ROOTS)
def test_no_admin_or_owner_role(root: str) -> None:
    assert not ADMIN.search(text(root)), ADMIN.search(text(root))


def test_gcp_workloads_get_only_the_roles_their_work_needs() -> None:
    roles: set[str] = set()
    for kind in (
        "google_pubsub_topic_iam_member",
        "google_pubsub_subscription_iam_member",
        "google_storage_bucket_iam_member",
        "google_secret_manager_secret_iam_member",
        "google_project_iam_member",
    ):
        roles |= {r["role"] for r in resources("gcp", kind).values()}
    assert roles <= ALLOWED_GCP_ROLES, roles - ALLOWED_GCP_ROLES
    assert not resources("gcp", "google_project_iam_member"), "no project-wide grants"
    # one service account per workload
    sas = resources("gcp", "google_service_account")["workload"]["for_each"]
    for workload in ("chrom-publisher", "chrom-bridge", "chrom-landing", "chrom-dagster"):
        assert workload in sas


def test_queue_names_are_the_applications() -> None:
    variables = {n: s for b in load("gcp")["variable"] for n, s in b.items()}
    assert variables["readings_topic"]["default"] == READINGS_TOPIC
    dead = resources("gcp", "google_pubsub_topic")["dead_letter"]["name"]
    assert dead.replace("${var.readings_topic}", READINGS_TOPIC) == DEAD_LETTER_TOPIC
    subs = locals_("gcp")["subscriptions"]
    assert subs == {"live": LIVE_BRIDGE_SUBSCRIPTION, "landing": LANDING_SUBSCRIPTION}
    audit = resources("gcp", "google_pubsub_subscription")["dead_letter_audit"]
    assert audit["name"] == DEAD_LETTER_SUBSCRIPTION
    # dead letters are kept as long as the application's topology says (the local queue too)
    audit_cfg = next(c for c in readings_topology()[1] if c.name == DEAD_LETTER_SUBSCRIPTION)
    assert audit["message_retention_duration"] == f"{audit_cfg.retention_s:.0f}s"
    consumers = resources("gcp", "google_pubsub_subscription")["consumers"]
    # one subscription per entry of local.subscriptions, named exactly by it
    assert consumers["for_each"] == "${local.subscriptions}"
    assert consumers["name"] == "${each.value}"
    assert consumers["enable_message_ordering"] is True
    assert consumers["dead_letter_policy"][0]["dead_letter_topic"]
    # delivery settings are the application's topology (what the local queue runs too)
    _, subs = readings_topology()
    live = next(c for c in subs if c.name == LIVE_BRIDGE_SUBSCRIPTION)
    assert consumers["ack_deadline_seconds"] == live.ack_deadline_s
    assert variables["max_delivery_attempts"]["default"] == live.max_delivery_attempts


def test_bucket_is_private_uniform_and_has_lifecycle_rules() -> None:
    b = resources("gcp", "google_storage_bucket")["landing"]
    assert b["uniform_bucket_level_access"] is True
    assert b["public_access_prevention"] == "enforced"
    assert len(b["lifecycle_rule"]) >= 1


def test_consumers_run_the_bridge_command_with_the_applications_settings() -> None:
    pool = resources("gcp", "google_cloud_run_v2_worker_pool")["consumer"]
    (container,) = pool["template"][0]["containers"]
    for only in ("live", "landing"):
        args = [a.replace("${each.key}", only) for a in container["args"]]
        parsed = bridge_parser().parse_args(args)  # a valid chrom-bridge command line
        assert parsed.only == only
    settings_src = (PROJECT_ROOT / "chrom_platform" / "settings.py").read_text()
    env_names = re.findall(r'name\s*=\s*"(CHROM_\w+)"', text("gcp"))
    assert env_names
    for n in env_names:
        assert f'"{n}"' in settings_src, f"{n} is not a setting the application reads"


def test_snowflake_objects_match_dbt_and_the_landing_layout() -> None:
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    layers = {
        cfg["+schema"].upper()
        for cfg in project["models"]["chrom"].values()
        if isinstance(cfg, dict) and "+schema" in cfg
    }
    loc = locals_("snowflake")
    assert set(loc["schemas"]) == {"RAW", *layers}
    sources = yaml.safe_load((DBT / "models/bronze/__sources.yml").read_text())["sources"][0]
    assert sources["schema"].upper() == "RAW"
    assert set(loc["raw_tables"]) == {t["identifier"].upper() for t in sources["tables"]}
    prefixes = {v["prefix"].rstrip("/") for v in loc["raw_tables"].values()}
    for landed in (READINGS_PREFIX, EVENTS_PREFIX):
        assert landed.removeprefix("landing/") in prefixes
    # the names dbt's prod target defaults to (dbt_chrom/profiles.yml)
    profiles = (DBT / "profiles.yml").read_text()
    variables = {n: s for b in load("snowflake")["variable"] for n, s in b.items()}
    assert f"'SNOWFLAKE_DATABASE', '{variables['database']['default']}'" in profiles
    wh = resources("snowflake", "snowflake_warehouse")["transform"]
    assert f"'SNOWFLAKE_WAREHOUSE', '{wh['name']}'" in profiles
    user = resources("snowflake", "snowflake_service_user")["transformer"]
    assert f"'SNOWFLAKE_USER', '{user['name']}'" in profiles
    for w in resources("snowflake", "snowflake_warehouse").values():
        assert w["auto_resume"] is True
        assert "auto_suspend" in w
    # a pipe per raw table, auto-ingesting, writing (RAW, SOURCE_FILE, LOADED_AT)
    pipe = resources("snowflake", "snowflake_pipe")["raw"]
    assert pipe["auto_ingest"] is True
    assert "RAW, SOURCE_FILE, LOADED_AT" in text("snowflake")
    users = resources("snowflake", "snowflake_service_user")
    assert all("rsa_public_key" in u and "password" not in u for u in users.values())


def test_grafana_cloud_provisions_what_the_dashboards_address() -> None:
    ds = resources("grafana_cloud", "grafana_data_source")
    assert {d["uid"] for d in ds.values()} == {INFLUX_UID, WAREHOUSE_UID}
    sf_roles = set(
        resources("snowflake", "snowflake_account_role")["role"]["for_each"].split('"')[1::2]
    )
    warehouse = ds["warehouse"]["json_data_encoded"]
    assert "CHROM_READER" in sf_roles
    assert "CHROM_READER" in warehouse
    assert resources("snowflake", "snowflake_warehouse")["reader"]["name"] in warehouse
    assert resources("snowflake", "snowflake_service_user")["grafana"]["name"] in warehouse
    # it reads the generated files, which exist
    generated = INFRA / "grafana"
    assert len(list((generated / "dashboards/gcp").glob("*.json"))) == 5
    rules = yaml.safe_load((generated / "provisioning/gcp/alerting.yaml").read_text())
    used = set(re.findall(r"rule\.value(?:\.|\[\")(\w+)", text("grafana_cloud")))
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert used <= set(rule), used - set(rule)


def test_containers_and_dagster_deployment_are_documented() -> None:
    docker = INFRA / "docker"
    for name in ("bridge.Dockerfile", "dagster.Dockerfile"):
        src = (docker / name).read_text()
        assert "uv sync --frozen" in src
    assert "chrom-bridge" in (docker / "bridge.Dockerfile").read_text()
    values = yaml.safe_load((INFRA / "dagster" / "values.yaml").read_text())
    deployments = values["dagster-user-deployments"]["deployments"]
    assert deployments[0]["dagsterApiGrpcArgs"]
    env = {e["name"] for e in deployments[0]["env"]}
    assert "CHROM_PROFILE" in env
    assert Path(INFRA / "README.md").read_text().count("terraform") >= 3
