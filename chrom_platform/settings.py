"""Settings: where the platform's settings are read from the environment, when asked (never
at import). Only secrets and emulators are read where they are used (the Snowflake key's
passphrase when connecting, STORAGE_EMULATOR_HOST), and dbt reads its own profiles.yml.

`CHROM_PROFILE` picks the profile: `local` (default; one laptop) or `gcp` (production).
Every other setting has a local default under the project's `.data/` folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chrom_platform.lib.io.warehouse import WarehouseConfig
from chrom_platform.lib.streaming.config import StreamingConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("local", "gcp")
#: dbt targets of dbt_chrom/profiles.yml: DuckDB and Snowflake
DBT_TARGETS = ("local", "prod")


#: Snowflake connection parameters (snowflake-connector names) and their variables; the
#: same variables dbt_chrom/profiles.yml reads for its `prod` target.
SNOWFLAKE_ENV = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "private_key_file": "SNOWFLAKE_PRIVATE_KEY_PATH",
}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    """Everything the environment sets, composed of the parts' own configs: a setting is
    declared once, in the config of the part that uses it (StreamingConfig, WarehouseConfig),
    and the Dagster resources are those same objects."""

    profile: str
    data_dir: Path
    landing_uri: str
    truth_dir: Path
    #: the queue, InfluxDB, master data, the live clock tolerance and freshness window
    streaming: StreamingConfig
    #: the warehouse: a DuckDB file (local) or Snowflake (gcp, dbt target `prod`)
    warehouse: WarehouseConfig
    #: where the analytics write their pictures and HTML reports
    reports_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        profile = env.get("CHROM_PROFILE", "local")
        if profile not in PROFILES:
            raise SettingsError(
                f"CHROM_PROFILE: unknown profile {profile!r}; expected one of {PROFILES}"
            )
        data_dir = Path(env.get("CHROM_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
        dbt_target = env.get("CHROM_DBT_TARGET", "prod" if profile == "gcp" else "local")
        if dbt_target not in DBT_TARGETS:
            raise SettingsError(
                f"CHROM_DBT_TARGET: unknown dbt target {dbt_target!r}; expected one of {DBT_TARGETS}"
            )
        landing_uri = env.get("CHROM_LANDING_URI", str(data_dir / "lake"))
        return cls(
            profile=profile,
            data_dir=data_dir,
            landing_uri=landing_uri,
            truth_dir=Path(env.get("CHROM_TRUTH_DIR", data_dir / "truth")),
            reports_dir=Path(env.get("CHROM_REPORTS_DIR", data_dir / "reports")).resolve(),
            streaming=StreamingConfig(
                transport_uri=env.get("CHROM_TRANSPORT_URI", str(data_dir / "queue" / "queue.db")),
                influx_url=env.get("CHROM_INFLUX_URL", "http://127.0.0.1:8086"),
                influx_database=env.get("CHROM_INFLUX_DATABASE", "chrom"),
                equipment_path=env.get(
                    "CHROM_EQUIPMENT", str(PROJECT_ROOT / "simulator/config/equipment.yaml")
                ),
                recipes_path=env.get(
                    "CHROM_RECIPES", str(PROJECT_ROOT / "simulator/config/recipes.yaml")
                ),
                influx_token=env.get("CHROM_INFLUX_TOKEN") or None,
                influx_org=env.get("CHROM_INFLUX_ORG") or None,
                influx_username=env.get("CHROM_INFLUX_USER") or None,
                influx_password=env.get("CHROM_INFLUX_PASSWORD") or None,
                # the analytics export the golden envelope beside the landing zone
                envelope_uri=landing_uri,
                # the consumers judge with the master data the warehouse reads: the newest
                # snapshot in the landing zone (the files above until one has landed)
                master_data_uri=landing_uri,
                max_ahead_s=_float(env, "CHROM_MAX_CLOCK_AHEAD_S", StreamingConfig.max_ahead_s),
                live_stale_after_s=_float(
                    env, "CHROM_LIVE_STALE_AFTER_S", StreamingConfig.live_stale_after_s
                ),
            ),
            warehouse=WarehouseConfig(
                target=dbt_target,
                duckdb_path=str(
                    Path(
                        env.get("CHROM_DUCKDB_PATH", data_dir / "warehouse" / "chrom.duckdb")
                    ).resolve()
                ),
                landing_uri=landing_uri,
                snowflake={key: env[var] for key, var in SNOWFLAKE_ENV.items() if env.get(var)},
                max_lag_min=_float(env, "CHROM_WAREHOUSE_MAX_LAG_MIN", WarehouseConfig.max_lag_min),
            ),
        )


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number from the environment (seconds or minutes, as the name says)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name}: must be > 0, got {raw!r}")
    return value
