"""The README's "A plant's own files, from import to gold" sequence, run as written: the
plant-realistic export, `chrom import` and `chrom build`, in a scratch folder that has the
project's `.venv` and `simulator/` (the commands' relative paths) and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import duckdb

from chrom_platform.lib.core.tables import GOLD_BATCH_RESULTS, SILVER_HOLDS

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### A plant's own files, from import to gold"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(SECTION) :]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block is not None, "the section has no bash block"
    return [c.strip() for c in block.group(1).replace("\\\n", " ").splitlines() if c.strip()]


def test_readme_plant_import_and_build(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "simulator").symlink_to(ROOT / "simulator")
    commands = readme_commands()
    assert [c.split()[0:2] for c in commands] == [
        [".venv/bin/chrom-sim", "export-csv"],
        [".venv/bin/chrom", "import"],
        [".venv/bin/chrom", "build"],
    ]
    outputs = []
    for cmd in commands:
        p = subprocess.run(
            ["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=400
        )
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
        outputs.append(p.stdout)

    imported = json.loads(outputs[1])["imported"]
    assert imported["batches"] == 2
    inferred = imported["inferred"]
    # the plant's habits were each found and said
    for key in ("holds", "unlabelled_scans", "scans_same_second", "lab_results_unused"):
        assert inferred[key]["count"] > 0, key

    built = json.loads(outputs[2][outputs[2].index("{") :])
    assert built["success"] is True
    assert built["failed_steps"] == []
    assert built["materializations"] > 10
    home = tmp_path / ".data" / "plant" / "dagster"
    assert (home / "dagster.yaml").is_file()
    with duckdb.connect(str(tmp_path / ".data/plant/warehouse/chrom.duckdb"), read_only=True) as c:
        rows = c.sql(
            "select batch_id, feed_titer_g_l is not null, pool_conc_g_l is not null "
            f"from {GOLD_BATCH_RESULTS} order by batch_id"
        ).fetchall()
        holds = c.sql(f"select count(*) from {SILVER_HOLDS}").fetchall()[0]
    # both batches reached gold with the plant's lab results mapped to their roles
    assert [r[1:] for r in rows] == [(True, True), (True, True)]
    assert holds is not None
    assert holds[0] == inferred["holds"]["count"]
