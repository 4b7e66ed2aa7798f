"""Grafana dashboards as assets.

Each dashboard is an external asset whose upstream is exactly what its queries read (gold
tables, live InfluxDB measurements), so the lineage runs from landing to the screen an
engineer looks at. On the local profile, `dashboards/warehouse_snapshot` copies those gold
tables into a separate DuckDB file after each build: Grafana's DuckDB plugin holds its file
open, and DuckDB lets no reader in beside a writing process, so Grafana reads the copy
(replaced atomically; the plugin reloads a changed file) and never blocks a Dagster run.
"""

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from chrom_platform.defs.conventions import LIVE_DRIFT_KEY, LIVE_KEY, LIVE_MSPC_KEY
from chrom_platform.grafana.boards import Board
from chrom_platform.grafana.generate import GRAFANA_DIR, boards
from chrom_platform.lib.io.warehouse import WAREHOUSE_POOL, WarehouseConfig, duckdb_snapshot

#: InfluxDB measurement -> the live asset that writes it (bridge_health and live_status are
#: the bridge's own reports, written with the readings)
MEASUREMENT_ASSET = {
    "chromatography": LIVE_KEY,
    "drift": LIVE_DRIFT_KEY,
    "mspc": LIVE_MSPC_KEY,
    "live_status": LIVE_KEY,
    "bridge_health": LIVE_KEY,
}
SNAPSHOT_FILE = "grafana.duckdb"


def _gold(table: str) -> dg.AssetKey:
    return dg.AssetKey(["gold", table])


def snapshot_tables() -> list[str]:
    return sorted({t for b in boards("local") for t in b.reads()[0]})


def snapshot_path(cfg: WarehouseConfig) -> Path:
    """Beside the warehouse file (CHROM_DATA_DIR/warehouse/grafana.duckdb by default)."""
    return Path(cfg.duckdb_path).with_name(SNAPSHOT_FILE)


def dashboard_specs() -> list[dg.AssetSpec]:
    specs = []
    for make, b in zip(_makers(), boards("local"), strict=True):
        tables, measurements = b.reads()
        deps: set[dg.AssetKey] = {_gold(t) for t in tables} | {
            MEASUREMENT_ASSET[m] for m in measurements
        }
        specs.append(
            dg.AssetSpec(
                dg.AssetKey(["dashboards", b.uid.removeprefix("chrom-").replace("-", "_")]),
                description=f"Grafana: {b.title}. {(make.__doc__ or '').strip()}",
                deps=sorted(deps, key=str),
                group_name="dashboards",
                kinds={"grafana"},
                metadata={
                    "dashboard_json": dg.MetadataValue.path(
                        str(GRAFANA_DIR / "dashboards" / "local" / f"{b.uid}.json")
                    ),
                    "grafana_uid": b.uid,
                },
            )
        )
    return specs


def _makers() -> tuple[Callable[[str], Board], ...]:
    from chrom_platform.grafana.boards import BOARDS

    return BOARDS


@dg.asset(
    key=dg.AssetKey(["dashboards", "warehouse_snapshot"]),
    group_name="dashboards",
    deps=[_gold(t) for t in snapshot_tables()],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    automation_condition=dg.AutomationCondition.eager(),
)
def warehouse_snapshot(
    context: dg.AssetExecutionContext, warehouse: dg.ResourceParam[WarehouseConfig]
) -> dg.MaterializeResult:
    """The gold tables the dashboards read, copied into `grafana.duckdb` beside the
    warehouse (local profile): Grafana reads the copy, so it never holds the file Dagster
    writes. On Snowflake Grafana reads gold directly and there is nothing to copy."""
    cfg = warehouse
    if cfg.target != "local":
        return dg.MaterializeResult(metadata={"skipped": "Grafana reads Snowflake directly"})
    dest = snapshot_path(cfg)
    counts = duckdb_snapshot(cfg.duckdb_path, dest, snapshot_tables())
    context.log.info(f"Grafana snapshot {dest}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(dest)),
            "rows": dg.MetadataValue.json(counts),
            "size_mb": round(dest.stat().st_size / 1e6, 2),
        }
    )


DASHBOARD_ASSETS: list[dg.AssetSpec | dg.AssetsDefinition] = [
    *dashboard_specs(),
    warehouse_snapshot,
]
