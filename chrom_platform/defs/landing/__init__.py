from chrom_platform.defs.landing.assets import LANDING_SPECS, landing_sensor

__all__ = ["LANDING_SPECS", "landing_sensor"]
