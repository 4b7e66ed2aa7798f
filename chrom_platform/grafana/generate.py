"""Write (or check) everything Grafana needs under infra/grafana/:

    infra/grafana/dashboards/<profile>/<uid>.json      five dashboards per profile
    infra/grafana/provisioning/<profile>/datasources.yaml
    infra/grafana/provisioning/<profile>/dashboards.yaml
    infra/grafana/provisioning/<profile>/alerting.yaml  alert rules

The committed files are what Grafana (and Terraform) read; a test fails when they differ
from what this code generates, so a change to a query is a change to the code first.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from chrom_platform.grafana.alerts import rule_groups
from chrom_platform.grafana.boards import BOARDS, Board, to_json
from chrom_platform.grafana.provisioning import dashboard_provider, datasources
from chrom_platform.grafana.queries import PROFILES
from chrom_platform.settings import PROJECT_ROOT

GRAFANA_DIR = PROJECT_ROOT / "infra" / "grafana"


def boards(profile: str) -> list[Board]:
    return [make(profile) for make in BOARDS]


def rendered(profile: str) -> dict[str, str]:
    """Relative path -> file text, for one profile."""
    out: dict[str, str] = {}
    for b in boards(profile):
        out[f"dashboards/{profile}/{b.uid}.json"] = (
            json.dumps(to_json(b.dashboard), indent=2, sort_keys=True) + "\n"
        )
    for name, doc in (
        ("datasources", datasources(profile)),
        ("dashboards", dashboard_provider(profile)),
        ("alerting", rule_groups(profile)),
    ):
        out[f"provisioning/{profile}/{name}.yaml"] = yaml.safe_dump(
            doc, sort_keys=False, width=100, allow_unicode=True
        )
    return out


def all_rendered() -> dict[str, str]:
    return {k: v for p in PROFILES for k, v in rendered(p).items()}


def differences(root: Path = GRAFANA_DIR) -> list[str]:
    """Files that are missing or differ from what the code generates."""
    return [rel for rel, text in all_rendered().items() if _read(root / rel) != text]


def write(root: Path = GRAFANA_DIR) -> list[str]:
    changed = differences(root)
    for rel, text in all_rendered().items():
        if rel in changed:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return changed


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
