"""The Dagster instance settings the platform runs with (dagster.yaml), written into the
Dagster home by the demo and the tests. In production the same settings go into the
deployment's instance config (Helm values or Dagster+ deployment settings)."""

from __future__ import annotations

from pathlib import Path

INSTANCE_YAML = """\
# Written by chrom_platform/local/instance.py.
telemetry:
  enabled: false
concurrency:
  pools:
    # Ops and checks of a pool wait for a free slot across all runs. The one pool in use is
    # `warehouse`: DuckDB allows one process on its file, so its limit is 1.
    granularity: op
    default_limit: 1
  runs:
    max_concurrent_runs: 4
"""


def write_instance_config(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(INSTANCE_YAML)
    return path
