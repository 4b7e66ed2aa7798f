"""`chrom evaluate --sweep` on a tiny grid: every method judged on the same batches, each
threshold calibrated on clean batches it then lets through, and a sweep that could not be
judged refused with a clear error."""

from __future__ import annotations

import json

import pytest

from chrom_platform.cli import main
from chrom_platform.evaluation.sweep import (
    METHODS,
    SHIPPED,
    SweepConfig,
    render_sweep,
    run_sweep,
)


@pytest.fixture(scope="module")
def tiny() -> dict:
    cfg = SweepConfig(
        seed=3,
        units=1,
        history=12,
        evaluation=4,
        severities=(10.0,),
        kinds=("early_breakthrough", "pump_fault"),
        workers=1,
    )
    cfg.validate()
    return run_sweep(cfg)


def test_every_method_is_judged_on_every_cell(tiny) -> None:
    cells = {(c["method"], c["kind"], c["severity"]) for c in tiny["results"]}
    assert cells == {
        (m, k, 10.0) for m in (*METHODS, *SHIPPED) for k in ("early_breakthrough", "pump_fault")
    }
    # two test batches per cell, each the twin of a clean test batch
    assert all(c["batches"] == 2 for c in tiny["results"])
    assert tiny["false_alarms"]["mspc"]["batches"] == 4


def test_thresholds_let_the_fault_free_batches_through(tiny) -> None:
    for m in METHODS:
        assert tiny["false_alarms"][m]["rate"] <= tiny["false_alarm_target"]


def test_the_load_uv_rule_cannot_see_a_pump_fault_but_sees_breakthrough(tiny) -> None:
    by = {(c["method"], c["kind"]): c for c in tiny["results"]}
    assert by[("uv_area_rule", "pump_fault")]["detected"] == 0
    assert by[("uv_area_rule", "early_breakthrough")]["detected"] == 2
    text = render_sweep(tiny)
    assert "| pump_fault | mspc |" in text
    # beside each calibrated row, the same method at the thresholds the product ships
    assert "| pump_fault | mspc as shipped |" in text
    assert tiny["shipped_thresholds"] == {"envelope": 6.0, "mspc": 1.0, "envelope+mspc": 1.0}
    shipped = {c["kind"]: c for c in tiny["results"] if c["method"] == "mspc as shipped"}
    calibrated = {c["kind"]: c for c in tiny["results"] if c["method"] == "mspc"}
    for kind, c in shipped.items():  # the same batches, another threshold
        assert c["batches"] == calibrated[kind]["batches"]
    # both together alarm whenever either does, at their shipped thresholds
    rates = tiny["shipped_false_alarms"]
    assert rates["envelope+mspc"] >= max(rates["envelope"], rates["mspc"])


def test_a_sweep_that_cannot_be_judged_is_refused_and_any_process_runs(tmp_path, capsys) -> None:
    assert main(["evaluate", "--sweep", "--history", "5"]) == 2
    assert "--history must be >= 12" in capsys.readouterr().err
    assert main(["evaluate", "--sweep", "--severities", "0.1"]) == 2
    assert "severity must be" in capsys.readouterr().err
    # another plant's process: its load phase is found from master data, not by its name
    out = tmp_path / "s.json"
    args = ["evaluate", "--sweep", "--process", "fc-capture", "--units", "1", "--history", "12"]
    assert main([*args, "--evaluation", "2", "--severities", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["process"] == "fc-capture"
    assert result["config"]["history"] == 12
