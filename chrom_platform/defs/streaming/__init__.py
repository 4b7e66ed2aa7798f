from chrom_platform.defs.streaming.assets import (
    LIVE_ASSET,
    LIVE_DRIFT_ASSET,
    live_bridge_sensor,
    live_points_fresh,
)

__all__ = ["LIVE_ASSET", "LIVE_DRIFT_ASSET", "live_bridge_sensor", "live_points_fresh"]
