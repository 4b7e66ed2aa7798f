"""The code location: everything under defs/ (found, never listed), with the resources built in
one place for the settings the environment names."""

import os

import dagster as dg

from chrom_platform.check_config import require
from chrom_platform.resources import build_resources
from chrom_platform.settings import PROJECT_ROOT, Settings


def project_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check and sensor under chrom_platform/defs/, with resources for
    `settings`: what the UI serves, and what the headless build runs (build.py)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        dg.Definitions(
            resources=build_resources(settings),
            # Every computed step here opens the warehouse and takes its single-slot pool,
            # so steps never run side by side anyway: one process per run, not one per step.
            executor=dg.in_process_executor,
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded when Dagster loads the code location, not at import: the environment is read here,
    # and checked for the profile it names (a gcp location never runs on local defaults).
    require(os.environ)
    return project_definitions(Settings.from_env())
