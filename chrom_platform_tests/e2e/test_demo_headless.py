"""`make demo` headless, as CI and a newcomer without a browser run it: the whole story."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from chrom_platform.lib.core.tables import GOLD_BATCH_DRIFT
from chrom_platform.settings import PROJECT_ROOT
from chrom_platform_tests.e2e.demo_helpers import demo_env
from chrom_platform_tests.warehouse_helpers import key


def test_headless_demo_tells_the_whole_story(tmp_path):
    """History, first build, a live batch that drifts mid-run, live drift in InfluxDB, gold
    catching up, and the drift check failing on exactly the live batch."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "chrom_platform.local.demo",
            "--headless",
            # one unit: the story is the same on each, and the suite's two cores are shared
            "--units",
            "1",
            "--batches-per-unit",
            "12",
        ],
        env=demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert r.returncode == 0, r.stderr[-4000:] + r.stdout[-4000:]
    progress, _, summary_text = r.stdout.partition("\n{")
    summary = json.loads("{" + summary_text)
    # the terminal is the demo's own progress and summary; Dagster's and dbt's logs (and
    # any library's warnings) go to the build log it names
    assert [x for x in progress.splitlines() if not x.startswith("[demo] ")] == []
    noise = re.compile(r"dagster - |DEBUG|STEP_|RUN_|Running with dbt|Warning")
    assert [x for x in r.stderr.splitlines() if noise.search(x)] == []
    assert "Running with dbt=" in (tmp_path / "logs" / "build.log").read_text()
    assert summary["backfilled"]
    assert summary["batches"] == 12
    # progress is visible, not silence
    assert "building landing -> bronze -> silver -> gold -> analytics" in r.stdout
    assert summary["first_build"]["checks"]["passed"]
    # the live batch: next on the first unit, in InfluxDB with its drift alarm
    live = summary["live"]
    assert live["batch_id"] == "SKID-01-B00013"
    assert live["points"] > 10_000
    assert "cond_ms_cm" in live["signals"]
    assert live["first_alarm_batch_cv"] > 0
    # gold caught up (the live batch is in it) and the drift check names the live batch
    assert summary["batches_in_gold"] == 13
    assert summary["second_build"]["success"]
    assert summary["drift_check"] == {"passed": False, "batches": [live["batch_id"]]}
    assert key(GOLD_BATCH_DRIFT) in summary["assets"]
    assert "dashboards/live_run" in summary["assets"]
    # InfluxDB was stopped at the end of the headless run
    assert not (tmp_path / "influxdb" / "server.json").exists()
