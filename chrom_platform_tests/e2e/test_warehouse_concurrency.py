"""DuckDB allows one process on its file. Concurrent materializations (separate processes, as
the UI, sensors and automation launch them) must queue on the `warehouse` pool instead of
failing with a lock error. A control run without the pool limit, started while another
process holds the file, shows what the pool prevents and that the test can fail."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from chrom_platform.defs.warehouse.dbt import WAREHOUSE_HELD, WAREHOUSE_RELEASED
from chrom_platform.lib.io.warehouse import DBT_BUILD
from chrom_platform.local.instance import write_instance_config
from chrom_platform_tests.warehouse_helpers import History

#: one selection that holds the warehouse for a while (every silver model) and two small ones
#: started beside it: they must wait for it, not collide with it
SELECTIONS = ["group:silver", "key:gold/gold_phase_summary", "key:silver/silver_units"]
LOCK_ERROR = "Could not set lock on file"


def _env(h: History, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CHROM_DATA_DIR": str(h.root / "data"),
        "CHROM_LANDING_URI": str(h.lake),
        "CHROM_DUCKDB_PATH": str(h.duckdb_path),
    }


def _concurrently(env: dict[str, str], selections: list[str]) -> list[tuple[int, str]]:
    """`dagster asset materialize` once per selection, all at once; (exit code, output) each.
    Output goes to files: the runs log a lot, and a full pipe would stall them."""
    dagster = Path(sys.executable).parent / "dagster"
    logs = Path(env["DAGSTER_HOME"]) / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    for i, sel in enumerate(selections):
        log = logs / f"materialize-{len(list(logs.iterdir()))}-{i}.log"
        with open(log, "w") as out:
            cmd = [str(dagster), "asset", "materialize", "-m", "chrom_platform.definitions"]
            proc = subprocess.Popen(
                [*cmd, "--select", sel], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        procs.append((proc, log))
    return [(proc.wait(timeout=420), log.read_text()) for proc, log in procs]


@pytest.fixture(scope="module")
def history(md, tmp_path_factory) -> History:
    h = History(tmp_path_factory.mktemp("concurrency"), md)
    h.land(units=1, batches_per_unit=1, seed=3, fault_rate=0.0)
    # the first build by dbt itself: what follows rebuilds parts of an existing warehouse
    r = h.dbt(*DBT_BUILD)
    assert r.returncode == 0, r.stdout[-4000:]
    return h


def test_concurrent_materializations_queue_on_the_warehouse_pool(history: History) -> None:
    home = history.root / "dagster_home"
    write_instance_config(home)
    env = _env(history, home)
    with dg.DagsterInstance.from_config(str(home)) as instance:  # create storage once
        assert instance.event_log_storage.supports_global_concurrency_limits
    # three at once that all open the DuckDB file
    results = _concurrently(env, SELECTIONS)
    for code, out in results:
        assert code == 0, out[-4000:]
        assert LOCK_ERROR not in out
    assert any("blocked by limit for pool warehouse" in out for _, out in results), (
        "the runs never had to wait: the test did not exercise concurrency"
    )

    # no two steps had the warehouse file at the same time, across all runs: a dbt step from
    # the moment it says it holds the file to the moment it lets it go (the pool can admit
    # two steps at once, see duckdb_file_lock; the second then waits inside its step), any
    # other step from its start to its end
    with dg.DagsterInstance.from_config(str(home)) as instance:
        spans = []
        for run in instance.get_runs():
            starts: dict[str, float] = {}
            held: dict[str, tuple[float, float]] = {}
            for rec in instance.all_logs(run.run_id):
                ev, key = rec.dagster_event, rec.step_key
                # every step of these runs opens the DuckDB file, except the freshness
                # check, which reads the instance only (and has no pool)
                if key is None or "behind_landing" in key:
                    continue
                if rec.user_message == WAREHOUSE_HELD:
                    held[key] = (rec.timestamp, float("inf"))
                elif rec.user_message == WAREHOUSE_RELEASED:
                    held[key] = (held[key][0], rec.timestamp)
                if ev is None:
                    continue
                if ev.event_type == dg.DagsterEventType.STEP_START:
                    starts[key] = rec.timestamp
                elif ev.event_type in (
                    dg.DagsterEventType.STEP_SUCCESS,
                    dg.DagsterEventType.STEP_FAILURE,
                ):
                    s0, e0 = held.get(key, (starts[key], rec.timestamp))
                    assert e0 < float("inf"), f"{key} never let the warehouse file go"
                    spans.append((s0, e0, run.run_id, key))
    spans.sort()
    assert len({s[2] for s in spans}) == len(SELECTIONS)
    assert sum("chrom_dbt_models" in s[3] for s in spans) == len(SELECTIONS)
    for (_s0, e0, r0, k0), (s1, _e1, r1, k1) in itertools.pairwise(spans):
        assert s1 >= e0, f"{k0} ({r0[:8]}) and {k1} ({r1[:8]}) overlapped"


def test_without_the_pool_limit_a_run_collides_with_the_process_on_the_file(
    history: History,
) -> None:
    """The control: with an unlimited pool nothing makes a run wait, so one started while
    a process outside the platform writes the file (this test's own connection, which takes
    no warehouse lock) fails on DuckDB's lock: the collision the pool and the lock prevent
    among the platform's own processes, certain rather than a matter of two runs' timing."""
    home = history.root / "dagster_home_unlimited"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(history, home)
    with dg.DagsterInstance.from_config(str(home)):
        pass
    with duckdb.connect(str(history.duckdb_path)):  # read-write: DuckDB's exclusive lock
        ((code, out),) = _concurrently(env, ["key:silver/silver_units"])
    assert code != 0
    assert LOCK_ERROR in out, out[-1500:]
