"""The code location: everything under defs/ (found, never listed), with the resources built in
one place for the settings the environment names."""

import os
import warnings

import dagster as dg

from chrom_platform.check_config import require
from chrom_platform.resources import build_resources
from chrom_platform.settings import PROJECT_ROOT, Settings


def project_definitions(settings: Settings) -> dg.Definitions:
    """Every asset, check and sensor under chrom_platform/defs/, with resources for
    `settings`: what the UI serves, and what the headless build runs (build.py)."""
    return dg.Definitions.merge(
        defs_folder(),
        dg.Definitions(
            resources=build_resources(settings),
            # Every computed step here opens the warehouse and takes its single-slot pool,
            # so steps never run side by side anyway: one process per run, not one per step.
            executor=dg.in_process_executor,
        ),
    )


def defs_folder() -> dg.Definitions:
    """Every definition under defs/, found as `dg.load_from_defs_folder` finds them, without
    the catalog of every installed integration's component types it adds for the UI: to list
    them it imports each integration (dagster-snowflake alone pulls in snowflake.core), 3.6 s
    of the 4.9 s a load took here, paid by every process that loads the code location (code
    server, each run, `chrom build`). The project defines no YAML components to pick from it.
    `build_defs_at_path` is the loader Dagster documents for testing a defs folder."""
    tree = dg.ComponentTree.for_project(path_within_project=PROJECT_ROOT)
    with warnings.catch_warnings():
        # dagster's own loader under it uses preview helpers; load_from_defs_folder silences
        # them the same way, and a warning here would reach every run's log
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return tree.build_defs_at_path(tree.defs_module_path)


@dg.definitions
def defs() -> dg.Definitions:
    # Loaded when Dagster loads the code location, not at import: the environment is read here,
    # and checked for the profile it names (a gcp location never runs on local defaults).
    require(os.environ)
    return project_definitions(Settings.from_env())
