"""Settings: the one place the environment is read, when asked (never at import).

`CHROM_PROFILE` picks the profile: `local` (default; one laptop) or `gcp` (production).
Every other setting has a local default under the project's `.data/` folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chrom_platform.lib.streaming import StreamingConfig
    from chrom_platform.lib.warehouse import WarehouseConfig

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
    profile: str
    data_dir: Path
    landing_uri: str
    truth_dir: Path
    influx_url: str
    influx_database: str
    #: the queue: a SQLite file (local) or pubsub://<project> (gcp)
    transport_uri: str
    equipment_path: Path
    recipes_path: Path
    #: InfluxDB 2.x/3.x/Cloud (gcp profile): token, org and bucket; unset locally (v1 API)
    influx_token: str | None = None
    influx_org: str | None = None
    #: InfluxDB 1.x user (the local server runs with authentication; see influx_server.py)
    influx_username: str | None = None
    influx_password: str | None = None
    #: a running unit with no live point for this long fails the live freshness check
    live_stale_after_s: float = 120.0
    #: the warehouse: a DuckDB file (local) or Snowflake (gcp, dbt target `prod`)
    duckdb_path: Path = PROJECT_ROOT / ".data" / "warehouse" / "chrom.duckdb"
    dbt_target: str = "local"
    #: Snowflake connection (gcp): account, user, role, warehouse, database, key file
    snowflake: tuple[tuple[str, str], ...] = ()
    #: silver and gold may lag the newest landing data by this much before their
    #: freshness checks fail
    warehouse_max_lag_min: float = 15.0
    #: where the analytics write their pictures and HTML reports
    reports_dir: Path = PROJECT_ROOT / ".data" / "reports"
    #: a reading stamped further ahead of the receiving clock is dead-lettered
    max_clock_ahead_s: float = 300.0

    def warehouse(self) -> WarehouseConfig:
        """The warehouse these settings name (DuckDB locally, Snowflake for gcp)."""
        from chrom_platform.lib.warehouse import WarehouseConfig

        return WarehouseConfig(
            target=self.dbt_target,
            duckdb_path=str(self.duckdb_path),
            landing_uri=self.landing_uri,
            snowflake=dict(self.snowflake),
        )

    def streaming(self) -> StreamingConfig:
        """The streaming parts (queue, InfluxDB sink, master data) these settings name."""
        from chrom_platform.lib.streaming import StreamingConfig

        return StreamingConfig(
            transport_uri=self.transport_uri,
            influx_url=self.influx_url,
            influx_database=self.influx_database,
            equipment_path=str(self.equipment_path),
            recipes_path=str(self.recipes_path),
            influx_token=self.influx_token,
            influx_org=self.influx_org,
            influx_username=self.influx_username,
            influx_password=self.influx_password,
            envelope_uri=self.landing_uri,
            max_ahead_s=self.max_clock_ahead_s,
        )

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
        return cls(
            profile=profile,
            data_dir=data_dir,
            landing_uri=env.get("CHROM_LANDING_URI", str(data_dir / "lake")),
            truth_dir=Path(env.get("CHROM_TRUTH_DIR", data_dir / "truth")),
            influx_url=env.get("CHROM_INFLUX_URL", "http://127.0.0.1:8086"),
            influx_database=env.get("CHROM_INFLUX_DATABASE", "chrom"),
            transport_uri=env.get("CHROM_TRANSPORT_URI", str(data_dir / "queue" / "queue.db")),
            equipment_path=Path(
                env.get("CHROM_EQUIPMENT", PROJECT_ROOT / "simulator/config/equipment.yaml")
            ),
            recipes_path=Path(
                env.get("CHROM_RECIPES", PROJECT_ROOT / "simulator/config/recipes.yaml")
            ),
            influx_token=env.get("CHROM_INFLUX_TOKEN") or None,
            influx_org=env.get("CHROM_INFLUX_ORG") or None,
            influx_username=env.get("CHROM_INFLUX_USER") or None,
            influx_password=env.get("CHROM_INFLUX_PASSWORD") or None,
            live_stale_after_s=_float(env, "CHROM_LIVE_STALE_AFTER_S", 120.0),
            duckdb_path=Path(
                env.get("CHROM_DUCKDB_PATH", data_dir / "warehouse" / "chrom.duckdb")
            ).resolve(),
            dbt_target=dbt_target,
            snowflake=tuple((key, env[var]) for key, var in SNOWFLAKE_ENV.items() if env.get(var)),
            warehouse_max_lag_min=_float(env, "CHROM_WAREHOUSE_MAX_LAG_MIN", 15.0),
            reports_dir=Path(env.get("CHROM_REPORTS_DIR", data_dir / "reports")).resolve(),
            max_clock_ahead_s=_float(env, "CHROM_MAX_CLOCK_AHEAD_S", 300.0),
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
