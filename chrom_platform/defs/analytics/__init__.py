"""Process analytics: envelope, drift, column performance, peaks, verdicts and pictures."""

from chrom_platform.defs.analytics.assets import (
    ANALYTICS_ASSETS,
    batch_overlay,
    column_performance_trend,
    process_analytics,
)

__all__ = ["ANALYTICS_ASSETS", "batch_overlay", "column_performance_trend", "process_analytics"]
