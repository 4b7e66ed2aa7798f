"""`chrom import` at plant scale: wall time and peak memory of importing a wide export of
~10 million rows, against the same import by a baseline commit (a git worktree of it) on
the same files in the same run, and against a tenth of the files (how cost scales).

Each import runs in its own process (`chrom import`, as a user runs it); its peak resident
memory is that process's ru_maxrss, read by a small wrapper when the import returns."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chrom_platform.settings import PROJECT_ROOT

#: Runs `chrom import` in-process and prints its wall time and memory as JSON: the resident
#: set once the import's code is loaded (`base_kib`), and the peak from then on (`peak_kib`:
#: the kernel's high-water mark, reset after loading, since the loading itself peaks higher
#: than a small import and would hide what rows cost).
_WRAPPER = """
import json, sys, time
from chrom_platform import cli
import chrom_platform.importing_cli, chrom_platform.lib.io.importing, pyarrow.parquet

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = kib("VmRSS")
t0 = time.perf_counter()
rc = cli.main(sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "peak_kib": kib("VmHWM"), "base_kib": base}))
"""


def export(out: Path, units: int, batches_per_unit: int, shape: str = "wide") -> int:
    """A plant export by `chrom-sim export-csv` (wide: one CSV per batch; long: one
    historian file, a row per tag and scan); its data rows."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator.cli",
            "export-csv",
            f"--units={units}",
            f"--batches-per-unit={batches_per_unit}",
            f"--shape={shape}",
            f"--out={out}",
            "--seed=7",
        ],
        check=True,
        capture_output=True,
    )
    return sum(sum(1 for _ in f.open()) - 1 for f in readings_files(out))


def readings_files(out: Path) -> list[Path]:
    """The files `chrom import` takes from an export: wide CSVs, or the historian file."""
    return sorted((out / "readings").glob("*.csv")) or [out / "historian.csv"]


def one_file(files: list[Path], out: Path) -> Path:
    """`files` (wide CSVs with one header) as one CSV: an export of many batches in a file."""
    with out.open("w") as w:
        for i, f in enumerate(files):
            with f.open() as r:
                head = r.readline()
                if i == 0:
                    w.write(head)
                shutil.copyfileobj(r, w)
    return out


def run_import(code_root: Path, files: list[Path], folder: Path, lake: Path) -> dict[str, float]:
    """`chrom import` of `files` by the code at `code_root` (this checkout or a worktree)."""
    shutil.rmtree(lake, ignore_errors=True)
    names = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:8]
    listing = folder / f"files-{len(files)}-{names}"
    listing.mkdir(exist_ok=True)
    for f in files:  # a folder holding just these files (the CLI takes folders)
        target = listing / f.name
        if not target.exists():
            target.symlink_to(f)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRAPPER,
            "import",
            str(listing),
            "--mapping",
            str(folder / "mapping.yaml"),
            "--equipment",
            str(PROJECT_ROOT / "simulator/config/equipment.yaml"),
            "--recipes",
            str(PROJECT_ROOT / "simulator/config/recipes.yaml"),
            "--landing",
            str(lake),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=code_root,
        env={**os.environ, "PYTHONPATH": str(code_root)},
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(f"import failed ({code_root}): {proc.stderr[-2000:]}")
    return {
        "seconds": out["seconds"],
        "peak_bytes": out["peak_kib"] * 1024,
        "base_bytes": out["base_kib"] * 1024,
    }


def idle_peak(code_root: Path) -> int:
    """Peak resident bytes of a process that only loads `chrom import`'s code: what every
    import costs before it reads a row."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource\nfrom chrom_platform import cli\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=code_root,
        env={**os.environ, "PYTHONPATH": str(code_root)},
    )
    return int(proc.stdout.strip()) * 1024


def baseline_worktree(ref: str, where: Path) -> Path:
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), ref],
        check=True,
        capture_output=True,
        cwd=PROJECT_ROOT,
    )
    return where


def bench_import(units: int, batches_per_unit: int, baseline_ref: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="chrom-bench-import-"))
    try:
        t0 = time.perf_counter()
        folder = tmp / "export"
        rows = export(folder, units, batches_per_unit)
        export_s = time.perf_counter() - t0
        files = readings_files(folder)
        tenth = files[: max(1, len(files) // 10)]
        tenth_rows = sum(sum(1 for _ in f.open()) - 1 for f in tenth)
        size = sum(f.stat().st_size for f in files)
        res: dict = {
            "rows": rows,
            "files": len(files),
            "csv_bytes": size,
            "export_s": export_s,
            "tenth_rows": tenth_rows,
        }
        res["idle_peak_bytes"] = idle_peak(PROJECT_ROOT)
        res["landed_bytes"] = 0
        res["now"] = run_import(PROJECT_ROOT, files, folder, tmp / "lake")
        res["landed_bytes"] = sum(
            p.stat().st_size for p in (tmp / "lake").rglob("*") if p.is_file()
        )
        res["now_tenth"] = run_import(PROJECT_ROOT, tenth, folder, tmp / "lake")
        # one file holding many batches is held whole while it is checked
        single = folder / "single"
        single.mkdir()
        for name, part in (("one_wide_tenth", tenth), ("one_wide", files)):
            one = [one_file(part, single / f"{name}.csv")]
            res[f"now_{name}"] = run_import(PROJECT_ROOT, one, folder, tmp / "lake")
        # a historian's long export (one file, a row per tag and scan), at a tenth and a
        # fortieth of the batches
        long_files: dict[str, list[Path]] = {}
        small = max(1, batches_per_unit // 40)
        for name, batches in (
            ("long_small", small),
            ("long", max(2 * small, batches_per_unit // 10)),
        ):
            where = tmp / f"export-{name}"
            res[f"{name}_rows"] = export(where, units, batches, "long")
            long_files[name] = readings_files(where)
            res[f"{name}_csv_bytes"] = sum(f.stat().st_size for f in long_files[name])
            res[f"now_{name}"] = run_import(PROJECT_ROOT, long_files[name], where, tmp / "lake")
            long_folder = where
        if baseline_ref:
            base = baseline_worktree(baseline_ref, tmp / "baseline")
            try:
                res["baseline"] = run_import(base, files, folder, tmp / "lake")
                res["baseline_long"] = run_import(
                    base, long_files["long"], long_folder, tmp / "lake"
                )
                res["baseline_ref"] = baseline_ref
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(base)],
                    cwd=PROJECT_ROOT,
                    capture_output=True,
                )
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
