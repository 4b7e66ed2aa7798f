"""Materializing the whole asset graph without the UI, the one way `chrom evaluate`, the
headless demo and the demo's first build all do it: every executable asset the code location
loads from defs/ (landing -> bronze -> silver -> gold -> analytics -> the dashboards'
snapshot) with the checks on them, in one in-process run on the given instance. Nothing is
listed here: an asset added under defs/ is built too."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from chrom_platform.settings import Settings


def build_job(settings: Settings) -> dg.JobDefinition:
    """The code location's implicit asset job: all executable assets and their checks (the
    live InfluxDB series and the dashboards are external: written by the bridge, drawn by
    Grafana)."""
    from chrom_platform.definitions import project_definitions

    defs = project_definitions(settings)
    executable = defs.resolve_asset_graph().executable_asset_keys
    # a subset of the assets, so checks on the external assets (live freshness: the
    # bridge's business, judged by its sensor) stay out of the build
    return defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=executable)


def build_everything(
    settings: Settings,
    instance: dg.DagsterInstance,
    *,
    raise_on_error: bool = False,
    log_file: Path | None = None,
) -> dg.ExecuteInProcessResult:
    """`log_file`: Dagster's and dbt's log of the run goes there instead of the console (the
    demo's terminal shows its own progress; the run's events are in the instance too).
    dagster-dbt echoes dbt's output to stdout, so stdout and stderr go there too meanwhile."""
    job = build_job(settings)
    if log_file is None:
        return job.execute_in_process(instance=instance, raise_on_error=raise_on_error)
    with output_to(log_file):
        return job.with_logger_defs({"file": _file_logger(log_file)}).execute_in_process(
            instance=instance,
            raise_on_error=raise_on_error,
            run_config={"loggers": {"file": {}}},
        )


@contextlib.contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Meanwhile, what is printed (stdout and stderr) is appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_file, "a") as out,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        yield


def _file_logger(path: Path) -> dg.LoggerDefinition:
    @dg.logger(None, description=f"the run's log, appended to {path}")
    def to_file(_init_context: dg.InitLoggerContext) -> logging.Logger:
        log = logging.Logger("chrom.build", level=logging.DEBUG)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        return log

    return to_file


def failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key or "?" for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def build_log(settings: Settings) -> Path:
    """Where Dagster's and dbt's log of a headless build goes (the terminal shows progress)."""
    return settings.data_dir / "logs" / "build.log"


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, list[str]]:
    """The names of the checks a build ran, passed and failed."""
    out: dict[str, list[str]] = {"passed": [], "failed": []}
    for e in result.get_asset_check_evaluations():
        out["passed" if e.passed else "failed"].append(e.check_name)
    return {k: sorted(v) for k, v in out.items()}
