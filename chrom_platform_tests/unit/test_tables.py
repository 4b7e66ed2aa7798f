"""One name per table: the registry (lib/core/tables.py) is every dbt model and every table
the analytics write, and neither the product nor its tests spell a table name anywhere
else, so renaming a model is an edit of its SQL and YAML and of one line of the registry."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import yaml

from chrom_platform.lib.analytics import mspc_run, pipeline
from chrom_platform.lib.core import tables
from chrom_platform.settings import PROJECT_ROOT

REGISTRY = {t.name: t for t in vars(tables).values() if isinstance(t, tables.Table)}
QUALIFIED = re.compile(r"\b(bronze|silver|gold)\.((?:bronze|silver|gold)_[a-z0-9_]+)\b")


def test_the_registry_is_every_dbt_model_in_its_layers_schema() -> None:
    models = PROJECT_ROOT / "dbt_chrom" / "models"
    found = {(p.parent.name, p.stem) for p in models.glob("*/*.sql")}
    assert found == {(t.schema, t.name) for t in tables.DBT_MODELS}
    assert len(found) == 21


def test_the_registry_is_every_table_the_analytics_write_and_dbt_reads_of_them() -> None:
    assert pipeline.TABLES == tables.ANALYTICS_TABLES
    assert mspc_run.TABLES == tables.MSPC_TABLES
    written = {t.name for t in (*tables.ANALYTICS_TABLES, *tables.MSPC_TABLES)}
    sources = yaml.safe_load(
        (PROJECT_ROOT / "dbt_chrom/models/gold/__analytics_sources.yml").read_text()
    )
    declared = {t["name"] for s in sources["sources"] for t in s["tables"]}
    assert declared <= written, declared - written
    assert all(REGISTRY[n].schema == "gold" for n in written)


def _strings(path: Path) -> list[tuple[int, str]]:
    toks = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(t.start[0], t.string) for t in toks if t.type == tokenize.STRING]


def test_no_code_spells_a_table_name_of_its_own() -> None:
    """Every string in the product and its tests (the registry and this file aside) that
    names a table, qualified (`gold.gold_batch_results`) or alone (`"gold_batch_results"`),
    is a finding: prose in docstrings may mention a table, code takes it from the
    registry."""
    found = []
    skip = {PROJECT_ROOT / "chrom_platform/lib/core/tables.py", Path(__file__).resolve()}
    for path in sorted(
        [
            *(PROJECT_ROOT / "chrom_platform").rglob("*.py"),
            *(PROJECT_ROOT / "chrom_platform_tests").rglob("*.py"),
        ]
    ):
        if path.resolve() in skip:
            continue
        for line, text in _strings(path):
            body = text.strip("rRbBuUfF").strip("\"'")
            named = [m.group(0) for m in QUALIFIED.finditer(body) if m.group(2) in REGISTRY]
            if body in REGISTRY:
                named.append(body)
            if named:
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {named}")
    assert not found, "\n".join(found)


def test_a_table_reads_as_sql_and_as_an_asset_key() -> None:
    assert str(tables.GOLD_BATCH_RESULTS) == "gold.gold_batch_results"
    assert tables.SILVER_UNITS.path == ["silver", "silver_units"]
