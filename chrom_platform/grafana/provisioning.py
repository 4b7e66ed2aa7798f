"""Datasource provisioning per profile (Grafana's provisioning file format, apiVersion 1).

Values come from the environment of the Grafana server when it reads the file (Grafana
expands `$VAR` in provisioning files), so no secret is ever written here. Terraform
provisions the same datasources on Grafana Cloud (infra/grafana), with the same UIDs.

Plugins:
- InfluxDB: core `influxdb` plugin, InfluxQL. InfluxDB 1.x natively; 2.x/Cloud through the
  v1-compatible API (a DBRP mapping for the bucket, token in an Authorization header).
- DuckDB (local): `motherduck-duckdb-datasource` (unsigned: allow it in grafana.ini).
- Snowflake (gcp): `grafana-snowflake-datasource` (Grafana Labs; on Grafana Cloud).
"""

from __future__ import annotations

from typing import Any

from chrom_platform.grafana.queries import INFLUX_UID, WAREHOUSE_PLUGIN, WAREHOUSE_UID

INFLUX_NAME = "Chromatography live (InfluxDB)"
WAREHOUSE_NAME = "Chromatography warehouse"


def datasources(profile: str) -> dict[str, Any]:
    influx: dict[str, Any] = {
        "name": INFLUX_NAME,
        "uid": INFLUX_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": "${CHROM_INFLUX_URL}",
        "jsonData": {
            "version": "InfluxQL",
            "dbName": "${CHROM_INFLUX_DATABASE}",
            "httpMode": "POST",
        },
    }
    if profile == "local":
        # the local InfluxDB runs with authentication; Grafana reads as its read-only user
        # (user and password in the server's credentials.json: local/influx_server.py)
        influx["user"] = "${CHROM_INFLUX_READER_USER}"
        influx["secureJsonData"] = {"password": "${CHROM_INFLUX_READER_PASSWORD}"}
        warehouse: dict[str, Any] = {
            "name": WAREHOUSE_NAME,
            "uid": WAREHOUSE_UID,
            "type": WAREHOUSE_PLUGIN[profile],
            # the copy Dagster refreshes after each build (dashboards/warehouse_snapshot), never
            # the warehouse file itself: DuckDB lets no reader in beside a writing process
            "jsonData": {"path": "${CHROM_DATA_DIR}/warehouse/grafana.duckdb"},
        }
    else:
        influx["jsonData"]["httpHeaderName1"] = "Authorization"
        influx["secureJsonData"] = {"httpHeaderValue1": "Token ${CHROM_GRAFANA_INFLUX_TOKEN}"}
        warehouse = {
            "name": WAREHOUSE_NAME,
            "uid": WAREHOUSE_UID,
            "type": WAREHOUSE_PLUGIN[profile],
            "access": "proxy",
            "jsonData": {
                "account": "${SNOWFLAKE_ACCOUNT}",
                "authType": "keypair",
                "username": "${CHROM_GRAFANA_SNOWFLAKE_USER}",
                "role": "CHROM_READER",
                "warehouse": "${SNOWFLAKE_WAREHOUSE}",
                "database": "${SNOWFLAKE_DATABASE}",
                "defaultInterpolation": "",
            },
            "secureJsonData": {"privateKey": "${CHROM_GRAFANA_SNOWFLAKE_PRIVATE_KEY}"},
        }
    return {"apiVersion": 1, "datasources": [influx, warehouse]}


def dashboard_provider(profile: str) -> dict[str, Any]:
    """Grafana loads the generated dashboards from this folder (path as mounted)."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "chromatography",
                "folder": "Chromatography",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": f"/etc/grafana/dashboards/chrom/{profile}"},
            }
        ],
    }
