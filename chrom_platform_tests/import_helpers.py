"""`chrom import` as a user runs it, in-process: the command's exit code and what it printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from chrom_platform import cli as chrom_cli
from chrom_platform_tests.conftest import EQUIPMENT, RECIPES


def chrom_import(
    data: Path,
    mapping: Path,
    lake: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    equipment: str | Path = EQUIPMENT,
    recipes: str | Path = RECIPES,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `chrom import DATA --mapping ... --quiet EXTRA`."""
    capsys.readouterr()  # what earlier steps printed is not this import's
    rc = chrom_cli.main(
        [
            "import",
            str(data),
            "--mapping",
            str(mapping),
            "--equipment",
            str(equipment),
            "--recipes",
            str(recipes),
            "--landing",
            str(lake),
            "--quiet",
            *extra,
        ]
    )
    out = capsys.readouterr()
    return rc, out.out, out.err
