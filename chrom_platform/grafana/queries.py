"""The queries behind every panel and alert, and the datasources they run on.

Two datasources, addressed by fixed UIDs so dashboards never depend on how a Grafana named
them: the live store (InfluxDB, InfluxQL: 1.x natively, 2.x and 3.x through their
v1-compatible API) and the warehouse gold tables (DuckDB locally through the
`motherduck-duckdb-datasource` plugin, Snowflake in production through
Grafana Labs' `grafana-snowflake-datasource`, which Grafana Cloud offers).

Warehouse SQL is written once, in DuckDB's dialect, and transpiled to Snowflake's by
sqlglot, the same way for the generated dashboards and for the tests that run them.
Output columns are quoted lowercase identifiers so both warehouses return the same names
(Snowflake upper-cases unquoted ones), which panel overrides and alert labels rely on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

INFLUX_UID = "chrom-influx"
WAREHOUSE_UID = "chrom-warehouse"
#: the Grafana plugin serving the warehouse datasource, per profile
WAREHOUSE_PLUGIN = {
    "local": "motherduck-duckdb-datasource",
    "gcp": "grafana-snowflake-datasource",
}
PROFILES = tuple(WAREHOUSE_PLUGIN)

Kind = Literal["influxql", "sql"]


def influx_ref() -> DataSourceRef:
    return DataSourceRef(type_val="influxdb", uid=INFLUX_UID)


def warehouse_ref(profile: str) -> DataSourceRef:
    return DataSourceRef(type_val=WAREHOUSE_PLUGIN[profile], uid=WAREHOUSE_UID)


def mixed_ref() -> DataSourceRef:
    return DataSourceRef(type_val="datasource", uid="-- Mixed --")


@dataclass(frozen=True)
class Query:
    """One query: its text, where it runs and the columns it must return (tests check
    them against the real stores). `table` asks Grafana for a table rather than series."""

    kind: Kind
    text: str
    columns: tuple[str, ...]
    table: bool = False

    def for_profile(self, profile: str) -> str:
        """The text as the profile's datasource receives it (SQL in its dialect)."""
        if self.kind == "influxql" or profile == "local":
            return self.text
        return to_snowflake(self.text)

    def target(self, ref_id: str, profile: str) -> _Target:
        return _Target(self, ref_id, profile)


class _TargetModel(cogvariants.Dataquery):
    def __init__(self, payload: dict[str, object]) -> None:
        self.payload = payload

    def to_json(self) -> dict[str, object]:
        return self.payload


class _Target(cogbuilder.Builder[cogvariants.Dataquery]):
    """A panel target in the shape each datasource plugin stores its queries."""

    def __init__(self, q: Query, ref_id: str, profile: str) -> None:
        self.q, self.ref_id, self.profile = q, ref_id, profile

    def build(self) -> cogvariants.Dataquery:
        text = self.q.for_profile(self.profile)
        if self.q.kind == "influxql":
            ref = influx_ref()
            body: dict[str, object] = {
                "query": text,
                "rawQuery": True,
                "resultFormat": "table" if self.q.table else "time_series",
            }
        elif self.profile == "local":
            ref = warehouse_ref(self.profile)
            body = {"rawSql": text, "format": "table", "editorMode": "code", "rawQuery": True}
        else:
            ref = warehouse_ref(self.profile)
            body = {"rawSql": text, "format": 1}  # sqlds: 1 = table
        return _TargetModel(
            {"refId": self.ref_id, "datasource": {"type": ref.type_val, "uid": ref.uid}, **body}
        )


# -- SQL dialects -------------------------------------------------------------------------

_GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
#: What Grafana's `regex` format escapes (a backslash before each)
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def to_snowflake(sql: str) -> str:
    """DuckDB SQL -> Snowflake SQL. Grafana variables pass through untouched: they are
    swapped for placeholders sqlglot reads as identifiers or strings, then put back."""
    import sqlglot

    found: list[str] = []

    def hide(m: re.Match[str]) -> str:
        found.append(m.group(0))
        return f"grafanavar{len(found) - 1}x"

    out = sqlglot.transpile(_GRAFANA_VAR.sub(hide, sql), read="duckdb", write="snowflake")[0]
    for i, original in enumerate(found):
        out = out.replace(f"grafanavar{i}x", original)
    return out


def substitute(text: str, values: dict[str, str | list[str]], *, sql: bool) -> str:
    """Grafana's variable interpolation for the forms our queries use: `$name`, `${name}`,
    `${name:sqlstring}` (a multi-value list as quoted SQL strings) and `${name:regex}`."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        fmt = m.group(2)
        if name not in values:
            return m.group(0)  # a Grafana macro such as $timeFilter: left to the caller
        v = values[name]
        items = v if isinstance(v, list) else [v]
        if fmt == "sqlstring":
            return ",".join("'" + i.replace("'", "''") + "'" for i in items)
        if fmt == "regex":
            return "(" + "|".join(_REGEX_SPECIAL.sub(r"\\\g<0>", i) for i in items) + ")"
        if len(items) == 1:
            return items[0]
        return "(" + "|".join(items) + ")" if not sql else ",".join(items)

    return _GRAFANA_VAR.sub(one, text)
