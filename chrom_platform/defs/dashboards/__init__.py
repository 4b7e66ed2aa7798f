"""Grafana dashboards in the asset graph, and the warehouse snapshot the local Grafana reads."""

from chrom_platform.defs.dashboards.assets import DASHBOARD_ASSETS, warehouse_snapshot

__all__ = ["DASHBOARD_ASSETS", "warehouse_snapshot"]
