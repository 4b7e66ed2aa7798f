#!/usr/bin/env bash
# Sets up everything the project needs on a fresh machine, idempotently:
#   1. uv (from PyPI with pip when missing: no installer downloads from outside PyPI),
#   2. the locked Python environment in .venv (uv sync --frozen),
#   3. InfluxDB 1.x and Chromium (Debian's `influxdb` and `chromium` packages) when missing
#      and we are root; otherwise prints the one command that installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "bootstrap: Python 3.11+ is required as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

# uv: on PATH, or as a module of this Python (pip puts it there wherever its scripts go).
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if ! "$PY" -c 'import uv' 2>/dev/null; then
    echo "bootstrap: installing uv from PyPI" >&2
    "$PY" -m pip install --quiet --user uv 2>/dev/null || "$PY" -m pip install --quiet uv
  fi
  UV=("$PY" -m uv)
fi

# Never let uv download a Python build: use the interpreter we were given.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on this machine) no
# import would ever be cached, and every dbt, Dagster or simulator process would compile
# ~1,400 modules from source at start (1.7 s of each `dbt run` here).
export UV_PYTHON_DOWNLOADS=never
"${UV[@]}" sync --frozen --compile-bytecode --python "$PY" --quiet

# System packages from Debian: InfluxDB 1.x (the live store) and Chromium (the browser the
# UI tests drive; Playwright's own browser downloads are not reachable here).
missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]} (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing ${missing[*]}. Install with:  sudo apt-get install ${missing[*]}" >&2
    echo "           (the live store, its tests and the browser tests need them)" >&2
  fi
fi

# The dbt manifest Dagster builds its assets from, re-parsed when any project file is newer
# than it. `dagster dev` re-parses on load; everything else (tests, the demo) reads this one.
manifest=dbt_chrom/target/manifest.json
if [ ! -f "$manifest" ] || [ -n "$(find dbt_chrom \( -path dbt_chrom/target -o -path dbt_chrom/logs \) -prune -o -type f -newer "$manifest" -print -quit)" ]; then
  (cd dbt_chrom && ../.venv/bin/dbt parse --profiles-dir . --quiet)
fi
