"""Settings: the one place the environment is read, when asked (never at import).

`CHROM_PROFILE` picks the profile: `local` (default; one laptop) or `gcp` (production).
Every other setting has a local default under the project's `.data/` folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("local", "gcp")


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        profile = env.get("CHROM_PROFILE", "local")
        if profile not in PROFILES:
            raise SettingsError(
                f"CHROM_PROFILE: unknown profile {profile!r}; expected one of {PROFILES}"
            )
        data_dir = Path(env.get("CHROM_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
        return cls(
            profile=profile,
            data_dir=data_dir,
            landing_uri=env.get("CHROM_LANDING_URI", str(data_dir / "lake")),
            truth_dir=Path(env.get("CHROM_TRUTH_DIR", data_dir / "truth")),
            influx_url=env.get("CHROM_INFLUX_URL", "http://127.0.0.1:8086"),
            influx_database=env.get("CHROM_INFLUX_DATABASE", "chrom"),
        )
