"""Engineering units a plant's files may carry, and the factor to each signal's canonical
unit (`SIGNAL_SPECS[signal].unit`). One table for every reader of foreign data (`chrom
import` today), so "mL/min" means the same thing everywhere.

Only units that convert by a factor are listed: a temperature-like offset unit would need
more than a multiplication, and no signal here has one.
"""

from __future__ import annotations

from chrom_platform.lib.core.contracts import SIGNAL_SPECS

#: signal -> {unit as written in a file -> factor to the canonical unit}. Spellings a
#: historian commonly writes are listed; matching is exact after trimming (µ and u both).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "flow_lpm": {
        "L/min": 1.0,
        "l/min": 1.0,
        "mL/min": 1e-3,
        "ml/min": 1e-3,
        "L/h": 1.0 / 60.0,
        "l/h": 1.0 / 60.0,
        "mL/h": 1e-3 / 60.0,
        "m3/h": 1000.0 / 60.0,
    },
    "pressure_bar": {
        "bar": 1.0,
        "mbar": 1e-3,
        "kPa": 0.01,
        "MPa": 10.0,
        "psi": 0.0689475729,
    },
    "uv_mau": {"mAU": 1.0, "AU": 1000.0},
    "cond_ms_cm": {
        "mS/cm": 1.0,
        "µS/cm": 1e-3,
        "uS/cm": 1e-3,
        "S/m": 10.0,
    },
    "ph": {"pH": 1.0, "": 1.0},
}

#: Lab results: concentration units to g/L (the unit `silver_sample_results` requires).
CONCENTRATION_FACTORS: dict[str, float] = {"g/L": 1.0, "mg/mL": 1.0, "mg/L": 1e-3, "g/l": 1.0}


def factor(signal: str, unit: str) -> float:
    """The factor from `unit` to `signal`'s canonical unit; ValueError naming the known ones."""
    if signal not in UNIT_FACTORS:
        raise ValueError(f"unknown signal {signal!r}; known: {list(UNIT_FACTORS)}")
    known = UNIT_FACTORS[signal]
    u = unit.strip()
    if u not in known:
        canonical = SIGNAL_SPECS[signal].unit
        raise ValueError(
            f"unknown unit {unit!r} for {signal} (canonical {canonical}); "
            f"known: {[k for k in known if k]}"
        )
    return known[u]


def concentration_factor(unit: str) -> float:
    u = unit.strip()
    if u not in CONCENTRATION_FACTORS:
        raise ValueError(
            f"unknown concentration unit {unit!r}; known: {list(CONCENTRATION_FACTORS)}"
        )
    return CONCENTRATION_FACTORS[u]
