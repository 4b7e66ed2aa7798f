"""What every benchmark section shares: the machine it ran on, and writing a section of
docs/benchmarks.md (replaced in place, so the file keeps the latest figures)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import pyarrow as pa

from chrom_platform.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, pyarrow {pa.__version__}"
    )


def write_section(name: str, body: str) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nFigures written by `make bench`; each section keeps the machine and date it was measured on.\n"
    )
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
