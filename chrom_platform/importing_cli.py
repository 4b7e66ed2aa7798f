"""`chrom import`'s terminal side: files and folders in, a progress bar on large imports,
what was imported or every problem found (exit 2, nothing landed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chrom_platform.lib.core.master_data import ConfigError, load_master_data
from chrom_platform.lib.io.importing import ImportRejected, import_files, load_mapping
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform.settings import Settings, SettingsError

#: Imports of more bytes than this show a progress bar (smaller ones finish at once).
PROGRESS_BYTES = 20_000_000


def data_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for the *.csv files in it, in name order."""
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("*.csv")) if p.is_dir() else [p])
    return out


def _bar(done: int, total: int, path: Path) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(
        f"\r  reading [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {path.name[:40]:<40}",
        end="" if done < total else "\n",
        file=sys.stderr,
        flush=True,
    )


def run_import(args: argparse.Namespace) -> int:
    try:
        mapping = load_mapping(args.mapping)
        md = load_master_data(args.equipment, args.recipes)
        # the live consumers' clock tolerance, so an import never gets ahead of a stream
        max_ahead_s = Settings.from_env().streaming.max_ahead_s
    except (ConfigError, SettingsError) as e:
        print(f"chrom import: {e}", file=sys.stderr)
        return 2
    files = data_files(args.files)
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(f"chrom import: not a file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in files)
    show = not args.quiet and size > PROGRESS_BYTES
    try:
        report = import_files(
            files,
            mapping=mapping,
            md=md,
            store=open_store(args.landing),
            on_file=_bar if show else None,
            replace=args.replace,
            max_ahead_s=max_ahead_s,
        )
    except ImportRejected as e:
        print(
            f"chrom import: rejected, nothing landed: {len(e.problems) + e.more} problem(s)",
            file=sys.stderr,
        )
        for p in e.problems:
            print(f"  {p}", file=sys.stderr)
        if e.more:
            print(f"  ... and {e.more} more", file=sys.stderr)
        return 2
    print(json.dumps({"imported": report.summary(), "rejected": 0, "landing": args.landing}))
    return 0
