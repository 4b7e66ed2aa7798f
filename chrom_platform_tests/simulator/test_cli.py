"""chrom-sim as a user runs it: determinism, clear start-up errors, streaming."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

from chrom_platform.lib.core.contracts import READING_KEYS, SIGNALS
from chrom_platform_tests.conftest import EQUIPMENT, RECIPES

SIM = [sys.executable, "-m", "simulator.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIM, *args], capture_output=True, text=True, timeout=300)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _backfill(
    tmp: Path, name: str, seed: int, workers: int
) -> tuple[dict[str, str], dict[str, str]]:
    r = _run(
        "backfill",
        "--units",
        "2",
        "--batches-per-unit",
        "3",
        "--seed",
        str(seed),
        "--fault-rate",
        "0.5",
        "--landing",
        str(tmp / name / "lake"),
        "--truth",
        str(tmp / name / "truth"),
        "--workers",
        str(workers),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["batches"] == 6
    assert summary["readings"] > 50_000
    return _digest(tmp / name / "lake"), _digest(tmp / name / "truth")


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    a_lake, a_truth = _backfill(tmp_path, "a", seed=3, workers=1)
    b_lake, b_truth = _backfill(tmp_path, "b", seed=3, workers=2)
    c_lake, _ = _backfill(tmp_path, "c", seed=4, workers=1)
    assert len(a_lake) > 20
    assert a_lake == b_lake
    assert {k: v for k, v in a_truth.items() if k != "manifest.json"} == {
        k: v for k, v in b_truth.items() if k != "manifest.json"
    }
    readings = [k for k in a_lake if k.endswith(".parquet")]
    assert any(a_lake[k] != c_lake.get(k) for k in readings)


def test_bad_config_fails_at_start_naming_file_key_and_problem(tmp_path):
    rc = yaml.safe_load(Path(RECIPES).read_text())
    rc["recipes"][0]["phases"][3]["cv"] = -1
    bad = tmp_path / "recipes.yaml"
    bad.write_text(yaml.safe_dump(rc))
    r = _run(
        "backfill",
        "--recipes",
        str(bad),
        "--equipment",
        EQUIPMENT,
        "--landing",
        str(tmp_path / "lake"),
        "--truth",
        str(tmp_path / "truth"),
    )
    assert r.returncode != 0
    assert str(bad) in r.stderr
    assert "recipes[0].phases[3].cv" in r.stderr
    assert "must be > 0" in r.stderr
    assert not (tmp_path / "lake" / "landing" / "readings").exists()


def test_truth_inside_landing_is_refused_and_bad_arguments_are_named(tmp_path):
    r = _run(
        "backfill", "--landing", str(tmp_path / "lake"), "--truth", str(tmp_path / "lake" / "truth")
    )
    assert r.returncode != 0
    assert "must not be inside the landing zone" in r.stderr
    r = _run(
        "backfill",
        "--units",
        "99",
        "--landing",
        str(tmp_path / "l"),
        "--truth",
        str(tmp_path / "t"),
    )
    assert r.returncode != 0
    assert "--units must be between 1 and 6" in r.stderr
    r = _run(
        "backfill",
        "--fault-kinds",
        "ph_drift,gremlins",
        "--landing",
        str(tmp_path / "l"),
        "--truth",
        str(tmp_path / "t"),
    )
    assert r.returncode != 0
    assert "gremlins" in r.stderr


def test_stream_publishes_every_reading_in_order_and_lands_events(tmp_path):
    out = tmp_path / "readings.jsonl"
    r = _run(
        "stream",
        "--units",
        "3",
        "--batches-per-unit",
        "1",
        "--speed",
        "1e9",
        "--seed",
        "9",
        "--fault-rate",
        "0.5",
        "--landing",
        str(tmp_path / "lake"),
        "--truth",
        str(tmp_path / "truth"),
        "--publish-to",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(line) for line in out.read_text().splitlines()]
    truth = [
        json.loads(line) for line in (tmp_path / "truth" / "batches.jsonl").read_text().splitlines()
    ]
    assert len(msgs) == sum(t["n_readings"] for t in truth)
    assert {m["unit_id"] for m in msgs} == {"SKID-01", "SKID-02", "SKID-03"}
    for m in msgs[:1000]:
        assert m["schema"] == "chrom.reading.v1"
        assert set(READING_KEYS) | set(SIGNALS) <= set(m)
    ts = [m["ts"] for m in msgs]
    assert ts == sorted(ts)  # published in time order across units
    for unit in ("SKID-01", "SKID-02", "SKID-03"):
        seq = [m["seq"] for m in msgs if m["unit_id"] == unit]
        assert seq == sorted(seq)
        assert len(set(seq)) == len(seq)
    events = list((tmp_path / "lake" / "landing" / "batch_events").rglob("*.json"))
    assert len(events) == sum(
        2 + 2 * len(t["phases"]) + 2 * sum(1 for p in t["phases"] if p["hold_s"]) for t in truth
    )
