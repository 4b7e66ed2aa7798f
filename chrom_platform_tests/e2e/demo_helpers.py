"""What the demo tests share."""

from __future__ import annotations

import os
from pathlib import Path


def demo_env(data_dir: Path) -> dict[str, str]:
    """The environment a newcomer's shell gives `make demo`: no CHROM_ or DAGSTER_ settings
    of ours (the tests' own InfluxDB credentials among them), only the demo's data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROM_", "DAGSTER_"))}
    env["CHROM_DATA_DIR"] = str(data_dir)
    return env
