"""The warehouse: the dbt project's models as assets, their checks, freshness and automation."""

from chrom_platform.defs.warehouse.checks import QUALITY_CHECKS
from chrom_platform.defs.warehouse.dbt import chrom_dbt_models, dbt_project
from chrom_platform.defs.warehouse.freshness import (
    FRESHNESS_CHECKS,
    warehouse_automation_sensor,
    warehouse_freshness_sensor,
)

__all__ = [
    "FRESHNESS_CHECKS",
    "QUALITY_CHECKS",
    "chrom_dbt_models",
    "dbt_project",
    "warehouse_automation_sensor",
    "warehouse_freshness_sensor",
]
