"""Equipment and recipe master data: the model, its validation and its loaders.

The simulator reads this from YAML and lands it as JSON (as an MES would); the bridge and the
warehouse read the landed JSON. Both go through `parse_master_data`, so a bad file fails the
same way everywhere: at start, naming the file, the key and the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chrom_platform.lib.core.config_files import ConfigFileError, load_yaml, read_text
from chrom_platform.lib.core.contracts import (
    IDENTITY_CHARS,
    IDENTITY_MAX_CHARS,
    SIGNALS,
    identity_ok,
)

#: What a recipe phase does, whatever the plant calls it: the analytics key on the kind, never
#: on the name (a plant's "Wash_1", "Post-load wash" and "Wash 1" are all a `wash`).
PHASE_KINDS: tuple[str, ...] = (
    "equilibration",
    "load",
    "wash",
    "elution",
    "strip",
    "cip",
    "regeneration",
    "storage",
    "other",
)


#: Phases per recipe. Real chromatography recipes have 5-20; the bound keeps a broken or
#: hostile file (100k phases) from costing minutes in every consumer that plans a batch.
MAX_PHASES = 200


class ConfigError(ValueError):
    """Invalid master data. The message names the source, the key path and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True)
class Resin:
    name: str
    permeability_m2: float
    total_porosity: float
    dbc10_g_l: float
    breakthrough_width_g_l: float
    dbc_loss_per_cycle: float


@dataclass(frozen=True)
class Accuracy:
    """What a unit's instrument for one signal resolves: an absolute part, in the signal's
    unit, plus a share of the reading. No deviation smaller than this is judged (the
    envelope's and the multivariate model's scale never go below it)."""

    absolute: float
    of_reading: float = 0.0

    def at(self, reading: float) -> float:
        return self.absolute + abs(reading) * self.of_reading


#: A unit's instruments when its master data does not say (`instrument_accuracy:`): the
#: process instruments of a production-scale skid (a flow meter of a few hundred L/min, a
#: 2 mm UV cell). A smaller skid's meters resolve finer and should say so: a 0.1 L/min floor
#: is ten times the noise of a 2 L/min meter, and hides a pump fault until it is that large.
DEFAULT_ACCURACY: dict[str, Accuracy] = {
    "flow_lpm": Accuracy(0.1, 0.005),
    "pressure_bar": Accuracy(0.005, 0.005),
    "uv_mau": Accuracy(2.0, 0.005),
    "cond_ms_cm": Accuracy(0.05, 0.005),
    "ph": Accuracy(0.01, 0.0),
}


@dataclass(frozen=True)
class Unit:
    unit_id: str
    column_id: str
    resin: str
    column_diameter_cm: float
    bed_height_cm: float
    column_volume_l: float
    hetp_cm: float
    asymmetry: float
    pressure_limit_bar: float
    system_holdup_l: float
    system_pressure_bar_per_lpm: float
    flow_deadband_lpm: float
    uv_path_length_cm: float
    uv_max_mau: float
    fouling_per_cycle: float
    #: per signal (every one of contracts.SIGNALS): the declared ones, DEFAULT_ACCURACY else
    instrument_accuracy: Mapping[str, Accuracy] = field(
        default_factory=lambda: dict(DEFAULT_ACCURACY)
    )

    @property
    def area_cm2(self) -> float:
        return math.pi * (self.column_diameter_cm / 2.0) ** 2

    def flow_lpm(self, velocity_cm_h: float) -> float:
        """Volumetric flow for a linear velocity on this column (cm/h x cm2 -> L/min)."""
        return velocity_cm_h * self.area_cm2 / 60_000.0


@dataclass(frozen=True)
class Buffer:
    name: str
    cond_ms_cm: float
    ph: float
    viscosity_mpa_s: float
    uv_mau: float
    #: the buffer's specification (release ranges): the settled outlet of a phase pumping it
    #: must read inside them; None where master data gives no range (then not judged)
    cond_range: tuple[float, float] | None = None
    ph_range: tuple[float, float] | None = None

    def record(self) -> dict[str, Any]:
        spec = {
            k: list(v)
            for k, v in (("cond_ms_cm", self.cond_range), ("ph", self.ph_range))
            if v is not None
        }
        return {
            "name": self.name,
            "cond_ms_cm": self.cond_ms_cm,
            "ph": self.ph,
            "viscosity_mpa_s": self.viscosity_mpa_s,
            "uv_mau": self.uv_mau,
            **({"spec": spec} if spec else {}),
        }


@dataclass(frozen=True)
class Phase:
    #: the recipe's own name for it
    name: str
    #: what it does (PHASE_KINDS)
    kind: str
    #: Column volumes to pump; None for the load, whose volume follows the feed titer.
    cv: float | None
    velocity_cm_h: float
    buffer: str
    hold_after_min: tuple[float, float] = (0.0, 0.0)
    hold_probability: float = 0.0
    #: Column volumes over which the inlet changes linearly from the previous phase's buffer
    #: to this one's (0: a step change). A linear gradient elution has it equal to `cv`; a
    #: ramped wash less. Transition analysis (HETP, asymmetry) applies to steps only.
    gradient_cv: float = 0.0


@dataclass(frozen=True)
class PoolCriterion:
    mode: str  # "absolute" (mAU) or "percent_of_max"
    value: float

    def threshold(self, peak_max_mau: float) -> float:
        return self.value if self.mode == "absolute" else self.value / 100.0 * peak_max_mau

    def record(self) -> dict[str, Any]:
        return {"mode": self.mode, "mau" if self.mode == "absolute" else "percent": self.value}


@dataclass(frozen=True)
class Recipe:
    recipe: str
    product: str
    extinction_l_g_cm: float
    target_loading_g_l: float
    pool_start: PoolCriterion
    pool_end: PoolCriterion
    phases: tuple[Phase, ...]
    #: the step yield a good batch of this recipe reaches (pool mass over load mass): outside
    #: it, the batch result raises step_yield_low or step_yield_high
    step_yield_min: float
    step_yield_max: float
    buffers: Mapping[str, Buffer] = field(default_factory=dict)
    #: how far the flow may stray from its set point (a fraction); None: not judged
    flow_tolerance: float | None = None
    #: engineers' say on the golden envelope: batches always in it (pinned) or never in it
    #: (excluded), whatever the platform's own verdict
    envelope_pin: tuple[str, ...] = ()
    envelope_exclude: tuple[str, ...] = ()
    #: how the recipe's envelope judges (ENVELOPE_SETTINGS given in master data; the rest
    #: are the platform's defaults)
    envelope_settings: Mapping[str, float] = field(default_factory=dict)
    #: how the recipe's multivariate model judges (MULTIVARIATE_SETTINGS given in master
    #: data; the rest are the platform's defaults)
    multivariate_settings: Mapping[str, float] = field(default_factory=dict)
    #: the load breakthrough rule: alarm when the outlet UV stays above the load's baseline
    #: by this share of the feed's product UV, or this many times the baseline's own noise,
    #: whichever is more (None: the platform's defaults, lib/analytics)
    breakthrough_fraction: float | None = None
    breakthrough_noise_k: float | None = None

    def phase_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.phases)

    def phases_of_kind(self, *kinds: str) -> tuple[Phase, ...]:
        """The recipe's phases of these kinds, in recipe order."""
        return tuple(p for p in self.phases if p.kind in kinds)

    @property
    def load(self) -> Phase:
        """The load phase (a capture recipe has exactly one)."""
        return self.phases_of_kind("load")[0]

    @property
    def elution(self) -> Phase:
        """The phase the product elutes in: the first elution after the load."""
        return self.phases_of_kind("elution")[0]


@dataclass(frozen=True)
class MasterData:
    resins: Mapping[str, Resin]
    units: Mapping[str, Unit]
    recipes: Mapping[str, Recipe]

    def unit(self, unit_id: str) -> Unit:
        return self.units[unit_id]

    def equipment_record(self) -> dict[str, Any]:
        """The landed equipment snapshot (JSON-ready), column volume included."""
        return {
            "resins": [asdict(r) for r in self.resins.values()],
            "units": [asdict(u) for u in self.units.values()],
        }

    def recipes_record(self) -> dict[str, Any]:
        """The landed recipe snapshot, in the same shape as recipes.yaml (it re-parses)."""
        buffers: dict[str, Buffer] = {}
        recipes = []
        for r in self.recipes.values():
            buffers.update(r.buffers)
            recipes.append(
                {
                    "recipe": r.recipe,
                    "product": r.product,
                    "extinction_l_g_cm": r.extinction_l_g_cm,
                    "target_loading_g_l": r.target_loading_g_l,
                    "pooling": {"start": r.pool_start.record(), "end": r.pool_end.record()},
                    "step_yield": {"min": r.step_yield_min, "max": r.step_yield_max},
                    **(
                        {"flow_tolerance_pct": round(r.flow_tolerance * 100, 6)}
                        if r.flow_tolerance is not None
                        else {}
                    ),
                    **(
                        {
                            "breakthrough": {
                                k: v
                                for k, v in (
                                    ("percent_of_feed", _pct(r.breakthrough_fraction)),
                                    ("noise_k", r.breakthrough_noise_k),
                                )
                                if v is not None
                            }
                        }
                        if r.breakthrough_fraction is not None or r.breakthrough_noise_k is not None
                        else {}
                    ),
                    **(
                        {
                            "envelope": {
                                **(
                                    {
                                        "pin": list(r.envelope_pin),
                                        "exclude": list(r.envelope_exclude),
                                    }
                                    if r.envelope_pin or r.envelope_exclude
                                    else {}
                                ),
                                **dict(r.envelope_settings),
                            }
                        }
                        if r.envelope_pin or r.envelope_exclude or r.envelope_settings
                        else {}
                    ),
                    **(
                        {"multivariate": dict(r.multivariate_settings)}
                        if r.multivariate_settings
                        else {}
                    ),
                    "phases": [
                        {
                            "name": p.name,
                            "kind": p.kind,
                            "cv": "load" if p.cv is None else p.cv,
                            "velocity_cm_h": p.velocity_cm_h,
                            "buffer": p.buffer,
                            "hold_after_min": list(p.hold_after_min),
                            "hold_probability": p.hold_probability,
                            # only when set: a step recipe's snapshot (and its hash) stays
                            **({"gradient_cv": p.gradient_cv} if p.gradient_cv else {}),
                        }
                        for p in r.phases
                    ],
                }
            )
        return {"buffers": [b.record() for b in buffers.values()], "recipes": recipes}


def content_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# validation helpers


class _Reader:
    """Reads typed values out of nested mappings, raising ConfigError with the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def mapping(self, obj: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(obj).__name__}")
        return obj

    def seq(self, obj: Mapping[str, Any], name: str, key: str) -> list[Any]:
        if name not in obj:
            raise self.fail(f"{key}.{name}" if key else name, "missing required field")
        val = obj[name]
        if not isinstance(val, list) or not val:
            raise self.fail(f"{key}.{name}" if key else name, "expected a non-empty list")
        return val

    def string(self, obj: Mapping[str, Any], name: str, key: str) -> str:
        if name not in obj or obj[name] is None:
            raise self.fail(f"{key}.{name}", "missing required field")
        val = obj[name]
        if not isinstance(val, str) or not val.strip():
            raise self.fail(f"{key}.{name}", f"expected a non-empty string, got {val!r}")
        return val

    def identity(self, obj: Mapping[str, Any], name: str, key: str) -> str:
        """A unit, recipe or phase name: it travels in every reading, so it must pass the
        readings' identity rule (contracts.identity_ok) or none of its readings would."""
        val = self.string(obj, name, key)
        if not identity_ok(val):
            raise self.fail(
                f"{key}.{name}",
                f"{val!r} is not a valid identity: 1..{IDENTITY_MAX_CHARS} of {IDENTITY_CHARS},"
                " no space at either end",
            )
        return val

    def number(
        self,
        obj: Mapping[str, Any],
        name: str,
        key: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
        default: float | None = None,
    ) -> float:
        path = f"{key}.{name}"
        if name not in obj or obj[name] is None:
            if default is not None:
                return default
            raise self.fail(path, "missing required field")
        val = obj[name]
        if isinstance(val, bool) or not isinstance(val, int | float):
            raise self.fail(path, f"expected a number, got {val!r}")
        val = float(val)
        if not math.isfinite(val):
            raise self.fail(path, f"must be finite, got {val}")
        if gt is not None and not val > gt:
            raise self.fail(path, f"must be > {gt:g}, got {val:g}")
        if ge is not None and not val >= ge:
            raise self.fail(path, f"must be >= {ge:g}, got {val:g}")
        if le is not None and not val <= le:
            raise self.fail(path, f"must be <= {le:g}, got {val:g}")
        return val


def _parse_equipment(doc: Any, source: str) -> tuple[dict[str, Resin], dict[str, Unit]]:
    rd = _Reader(source)
    root = rd.mapping(doc, "(top level)")
    resins: dict[str, Resin] = {}
    for i, r in enumerate(rd.seq(root, "resins", "")):
        key = f"resins[{i}]"
        r = rd.mapping(r, key)
        name = rd.string(r, "name", key)
        resins[name] = Resin(
            name=name,
            permeability_m2=rd.number(r, "permeability_m2", key, gt=0),
            total_porosity=rd.number(r, "total_porosity", key, gt=0, le=1),
            dbc10_g_l=rd.number(r, "dbc10_g_l", key, gt=0),
            breakthrough_width_g_l=rd.number(r, "breakthrough_width_g_l", key, gt=0),
            dbc_loss_per_cycle=rd.number(r, "dbc_loss_per_cycle", key, ge=0, le=0.01, default=0.0),
        )
    units: dict[str, Unit] = {}
    for i, u in enumerate(rd.seq(root, "units", "")):
        key = f"units[{i}]"
        u = rd.mapping(u, key)
        unit_id = rd.identity(u, "unit_id", key)
        if unit_id in units:
            raise rd.fail(f"{key}.unit_id", f"duplicate unit_id {unit_id!r}")
        resin = rd.string(u, "resin", key)
        if resin not in resins:
            raise rd.fail(f"{key}.resin", f"unknown resin {resin!r}; known: {sorted(resins)}")
        d = rd.number(u, "column_diameter_cm", key, gt=0)
        h = rd.number(u, "bed_height_cm", key, gt=0)
        geometric_cv = math.pi * (d / 2) ** 2 * h / 1000.0
        cv = rd.number(u, "column_volume_l", key, gt=0, default=geometric_cv)
        if abs(cv - geometric_cv) > 0.02 * geometric_cv:
            raise rd.fail(
                f"{key}.column_volume_l",
                f"{cv:g} L disagrees with the packed geometry ({geometric_cv:.2f} L) by more than 2%",
            )
        units[unit_id] = Unit(
            unit_id=unit_id,
            column_id=rd.string(u, "column_id", key),
            resin=resin,
            column_diameter_cm=d,
            bed_height_cm=h,
            column_volume_l=round(cv, 4),
            hetp_cm=rd.number(u, "hetp_cm", key, gt=0),
            asymmetry=rd.number(u, "asymmetry", key, ge=1.0, le=3.0),
            pressure_limit_bar=rd.number(u, "pressure_limit_bar", key, gt=0),
            system_holdup_l=rd.number(u, "system_holdup_l", key, ge=0),
            system_pressure_bar_per_lpm=rd.number(u, "system_pressure_bar_per_lpm", key, ge=0),
            flow_deadband_lpm=rd.number(u, "flow_deadband_lpm", key, gt=0),
            uv_path_length_cm=rd.number(u, "uv_path_length_cm", key, gt=0),
            uv_max_mau=rd.number(u, "uv_max_mau", key, gt=0),
            fouling_per_cycle=rd.number(u, "fouling_per_cycle", key, ge=0, le=0.01, default=0.0),
            instrument_accuracy=_accuracy(rd, u, key),
        )
    return resins, units


def _accuracy(rd: _Reader, u: Mapping[str, Any], key: str) -> dict[str, Accuracy]:
    """A unit's optional `instrument_accuracy: {signal: {absolute, of_reading}}`, over the
    platform's defaults for the signals it does not name."""
    section = _optional_section(rd, u, "instrument_accuracy", key, set(SIGNALS))
    out = dict(DEFAULT_ACCURACY)
    for signal, spec in (section or {}).items():
        where = f"{key}.instrument_accuracy"
        spec = _optional_section(rd, {signal: spec}, signal, where, {"absolute", "of_reading"})
        assert spec is not None
        at = f"{where}.{signal}"
        out[signal] = Accuracy(
            absolute=rd.number(spec, "absolute", at, ge=0),
            of_reading=rd.number(spec, "of_reading", at, ge=0, le=0.5, default=0.0),
        )
        if out[signal].absolute == 0 and out[signal].of_reading == 0:
            raise rd.fail(at, "an instrument resolves something: absolute or of_reading > 0")
    return out


def _criterion(rd: _Reader, obj: Any, key: str) -> PoolCriterion:
    obj = rd.mapping(obj, key)
    mode = rd.string(obj, "mode", key)
    if mode == "absolute":
        return PoolCriterion(mode, rd.number(obj, "mau", key, gt=0))
    if mode == "percent_of_max":
        return PoolCriterion(mode, rd.number(obj, "percent", key, gt=0, le=100))
    raise rd.fail(f"{key}.mode", f"unknown mode {mode!r}; expected 'absolute' or 'percent_of_max'")


def _parse_recipes(doc: Any, source: str) -> dict[str, Recipe]:
    rd = _Reader(source)
    root = rd.mapping(doc, "(top level)")
    buffers: dict[str, Buffer] = {}
    for i, b in enumerate(rd.seq(root, "buffers", "")):
        key = f"buffers[{i}]"
        b = rd.mapping(b, key)
        name = rd.string(b, "name", key)
        buffers[name] = Buffer(
            name=name,
            cond_ms_cm=rd.number(b, "cond_ms_cm", key, ge=0),
            ph=rd.number(b, "ph", key, ge=0, le=14),
            viscosity_mpa_s=rd.number(b, "viscosity_mpa_s", key, gt=0),
            uv_mau=rd.number(b, "uv_mau", key, ge=0),
            **_buffer_spec(rd, b, key),
        )
    recipes: dict[str, Recipe] = {}
    for i, r in enumerate(rd.seq(root, "recipes", "")):
        recipe = _recipe(rd, rd.mapping(r, f"recipes[{i}]"), f"recipes[{i}]", buffers)
        recipes[recipe.recipe] = recipe
    return recipes


def _recipe(rd: _Reader, r: Mapping[str, Any], key: str, buffers: dict[str, Buffer]) -> Recipe:
    """One recipe: its phases (exactly one load, an elution after it), pooling, step-yield
    range and the monitoring settings it gives."""
    name = rd.identity(r, "recipe", key)
    phases = _phases(rd, r, key, buffers)
    kinds = [p.kind for p in phases]
    if kinds.count("load") != 1:
        raise rd.fail(
            f"{key}.phases",
            f"a capture recipe has exactly one phase of kind load, found {kinds.count('load')}",
        )
    if "elution" not in kinds[kinds.index("load") + 1 :]:
        raise rd.fail(
            f"{key}.phases", "a capture recipe needs a phase of kind elution after its load"
        )
    pooling = rd.mapping(r.get("pooling"), f"{key}.pooling")
    sy = rd.mapping(r.get("step_yield"), f"{key}.step_yield")
    sy_min = rd.number(sy, "min", f"{key}.step_yield", gt=0, le=2)
    sy_max = rd.number(sy, "max", f"{key}.step_yield", gt=0, le=2)
    if sy_min >= sy_max:
        raise rd.fail(f"{key}.step_yield", f"min {sy_min:g} must be below max {sy_max:g}")
    used = {p.buffer for p in phases}
    return Recipe(
        recipe=name,
        product=rd.string(r, "product", key),
        extinction_l_g_cm=rd.number(r, "extinction_l_g_cm", key, gt=0),
        target_loading_g_l=rd.number(r, "target_loading_g_l", key, gt=0),
        pool_start=_criterion(rd, pooling.get("start"), f"{key}.pooling.start"),
        pool_end=_criterion(rd, pooling.get("end"), f"{key}.pooling.end"),
        phases=tuple(phases),
        step_yield_min=sy_min,
        step_yield_max=sy_max,
        buffers={b: buffers[b] for b in sorted(used)},
        flow_tolerance=(
            rd.number(r, "flow_tolerance_pct", key, gt=0, le=50) / 100.0
            if r.get("flow_tolerance_pct") is not None
            else None
        ),
        **_envelope_decisions(rd, r, key),
        **_multivariate(rd, r, key),
        **_breakthrough_rule(rd, r, key),
    )


def _phases(rd: _Reader, r: Mapping[str, Any], key: str, buffers: dict[str, Buffer]) -> list[Phase]:
    """A recipe's phases in its own order, each name once, of a known kind and buffer."""
    phases: list[Phase] = []
    raw_phases = rd.seq(r, "phases", key)
    if len(raw_phases) > MAX_PHASES:
        raise rd.fail(
            f"{key}.phases",
            f"{len(raw_phases)} phases; a recipe has at most {MAX_PHASES}",
        )
    names: set[str] = set()
    for j, p in enumerate(raw_phases):
        pkey = f"{key}.phases[{j}]"
        p = rd.mapping(p, pkey)
        pname = rd.identity(p, "name", pkey)
        if pname in names:
            raise rd.fail(f"{pkey}.name", f"phase {pname!r} appears twice")
        names.add(pname)
        kind = rd.string(p, "kind", pkey)
        if kind not in PHASE_KINDS:
            raise rd.fail(f"{pkey}.kind", f"unknown kind {kind!r}; known: {list(PHASE_KINDS)}")
        if kind == "load":
            if p.get("cv") not in (None, "load"):
                raise rd.fail(f"{pkey}.cv", "the load volume follows the feed titer: cv: load")
            cv: float | None = None
        else:
            cv = rd.number(p, "cv", pkey, gt=0)
        buf = rd.string(p, "buffer", pkey)
        if buf not in buffers:
            raise rd.fail(f"{pkey}.buffer", f"unknown buffer {buf!r}; known: {sorted(buffers)}")
        hold = p.get("hold_after_min", [0, 0])
        if (
            not isinstance(hold, list)
            or len(hold) != 2
            or not all(isinstance(x, int | float) and x >= 0 for x in hold)
            or hold[0] > hold[1]
        ):
            raise rd.fail(
                f"{pkey}.hold_after_min", f"expected [min, max] minutes >= 0, got {hold!r}"
            )
        phases.append(
            Phase(
                name=pname,
                kind=kind,
                cv=cv,
                velocity_cm_h=rd.number(p, "velocity_cm_h", pkey, gt=0, le=2000),
                buffer=buf,
                hold_after_min=(float(hold[0]), float(hold[1])),
                hold_probability=rd.number(p, "hold_probability", pkey, ge=0, le=1, default=0.0)
                if hold[1] > 0
                else 0.0,
                gradient_cv=_gradient_cv(rd, p, pkey, kind, cv),
            )
        )
    return phases


def _pct(fraction: float | None) -> float | None:
    return None if fraction is None else round(fraction * 100, 9)


def _optional_section(
    rd: _Reader, r: Mapping[str, Any], name: str, key: str, known: set[str]
) -> Mapping[str, Any] | None:
    """An optional mapping of a record (None when absent), its keys checked."""
    if r.get(name) is None:
        return None
    section = rd.mapping(r[name], f"{key}.{name}")
    unknown = set(section) - known
    if unknown:
        raise rd.fail(f"{key}.{name}", f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return section


def _breakthrough_rule(rd: _Reader, r: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A recipe's optional `breakthrough: {percent_of_feed: 3, noise_k: 3}`."""
    bt = _optional_section(rd, r, "breakthrough", key, {"percent_of_feed", "noise_k"})
    if bt is None:
        return {}
    out: dict[str, Any] = {}
    if bt.get("percent_of_feed") is not None:
        out["breakthrough_fraction"] = (
            rd.number(bt, "percent_of_feed", f"{key}.breakthrough", gt=0, le=50) / 100.0
        )
    if bt.get("noise_k") is not None:
        out["breakthrough_noise_k"] = rd.number(bt, "noise_k", f"{key}.breakthrough", ge=1, le=20)
    return out


#: a recipe's envelope monitoring settings (`envelope:` in recipes.yaml): name -> (whole
#: number?, low, high). Absent ones take the platform's defaults (analytics EnvelopeParams).
ENVELOPE_SETTINGS: dict[str, tuple[bool, float, float]] = {
    "min_batches": (True, 3, 1000),  # released batches before an envelope judges
    "window": (True, 3, 10_000),  # the newest released batches it is built from
    "z_limit": (False, 2, 50),  # |z| beyond which a bin is outside
    "persistence": (True, 1, 100),  # bins in a row outside before a drift alarm
}


#: a recipe's multivariate model settings (`multivariate:`), as ENVELOPE_SETTINGS
MULTIVARIATE_SETTINGS: dict[str, tuple[bool, float, float]] = {
    "min_batches": (True, 3, 1000),  # eligible batches before a model exists
    "mature_batches": (True, 3, 10_000),  # reference batches before its alarms fail a batch
    "batch_false_alarm": (False, 0.0001, 0.2),  # the share of good batches it may alarm on
    "persistence": (True, 1, 100),  # bins in a row beyond the limits before an alarm
    "window": (True, 3, 10_000),  # the newest eligible batches it is fitted on
    "refit_every": (True, 1, 1000),  # new eligible batches before it is refitted
}


def _settings(
    rd: _Reader, doc: Mapping[str, Any], key: str, spec: dict[str, tuple[bool, float, float]]
) -> dict[str, float]:
    """The settings of `spec` a section gives, each checked (a whole number where it must
    be, within its range), and a window no smaller than the minimum it is built from."""
    out: dict[str, float] = {}
    for name, (whole, low, high) in spec.items():
        if doc.get(name) is None:
            continue
        v = rd.number(doc, name, key, ge=low, le=high)
        if whole and v != int(v):
            raise rd.fail(f"{key}.{name}", f"expected a whole number, got {v:g}")
        out[name] = int(v) if whole else v
    for above in ("window", "mature_batches"):
        if out.get(above, 1e9) < out.get("min_batches", 0):
            raise rd.fail(
                f"{key}.{above}", f"{above} {out[above]} is below min_batches {out['min_batches']}"
            )
    return out


def _multivariate(rd: _Reader, r: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A recipe's optional `multivariate: {min_batches, mature_batches, batch_false_alarm,
    persistence, window, refit_every}`: how its multivariate model judges."""
    mv = _optional_section(rd, r, "multivariate", key, set(MULTIVARIATE_SETTINGS))
    if mv is None:
        return {}
    return {
        "multivariate_settings": _settings(rd, mv, f"{key}.multivariate", MULTIVARIATE_SETTINGS)
    }


def _envelope_decisions(rd: _Reader, r: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A recipe's optional `envelope: {pin: [batch ids], exclude: [batch ids], min_batches,
    window, z_limit, persistence}`: engineers' say on which batches, and how it judges."""
    env = _optional_section(rd, r, "envelope", key, {"pin", "exclude", *ENVELOPE_SETTINGS})
    if env is None:
        return {}
    settings = _settings(rd, env, f"{key}.envelope", ENVELOPE_SETTINGS)
    out: dict[str, Any] = {"envelope_settings": settings}
    for name in ("pin", "exclude"):
        ids = env.get(name, []) or []
        if not isinstance(ids, list) or not all(isinstance(b, str) and identity_ok(b) for b in ids):
            raise rd.fail(f"{key}.envelope.{name}", f"expected a list of batch ids, got {ids!r}")
        out[f"envelope_{name}"] = tuple(ids)
    both = set(out["envelope_pin"]) & set(out["envelope_exclude"])
    if both:
        raise rd.fail(f"{key}.envelope", f"pinned and excluded at once: {sorted(both)}")
    return out


def _buffer_spec(rd: _Reader, b: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A buffer's optional `spec: {cond_ms_cm: [lo, hi], ph: [lo, hi]}`, each range around
    its nominal value."""
    if b.get("spec") is None:
        return {}
    spec = rd.mapping(b["spec"], f"{key}.spec")
    out: dict[str, Any] = {}
    for name, field_name in (("cond_ms_cm", "cond_range"), ("ph", "ph_range")):
        if name not in spec:
            continue
        rng = spec[name]
        path = f"{key}.spec.{name}"
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in rng)
            or not rng[0] < rng[1]
        ):
            raise rd.fail(path, f"expected [low, high] with low < high, got {rng!r}")
        nominal = float(b[name])
        if not rng[0] <= nominal <= rng[1]:
            raise rd.fail(
                path, f"the range {rng[0]:g}-{rng[1]:g} leaves out the nominal {nominal:g}"
            )
        out[field_name] = (float(rng[0]), float(rng[1]))
    unknown = set(spec) - {"cond_ms_cm", "ph"}
    if unknown:
        raise rd.fail(f"{key}.spec", f"unknown keys {sorted(unknown)}; known: ['cond_ms_cm', 'ph']")
    return out


def _gradient_cv(rd: _Reader, p: Mapping[str, Any], key: str, kind: str, cv: float | None) -> float:
    g = rd.number(p, "gradient_cv", key, ge=0, default=0.0)
    if g and kind == "load":
        raise rd.fail(f"{key}.gradient_cv", "the load pumps the feed: no gradient")
    if cv is not None and g > cv:
        raise rd.fail(f"{key}.gradient_cv", f"{g:g} CV is longer than the phase ({cv:g} CV)")
    return g


def parse_master_data(
    equipment: Any, recipes: Any, *, equipment_source: str, recipes_source: str
) -> MasterData:
    resins, units = _parse_equipment(equipment, equipment_source)
    return MasterData(resins=resins, units=units, recipes=_parse_recipes(recipes, recipes_source))


def _load_doc(path: Path) -> Any:
    try:
        text = read_text(path)
        return load_yaml(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except OSError as e:
        raise ConfigError(str(path), "(file)", f"cannot read: {e.strerror}") from e
    except ConfigFileError as e:
        raise ConfigError(str(path), "(file)", str(e)) from e
    except json.JSONDecodeError as e:
        raise ConfigError(str(path), f"line {e.lineno}", f"not valid JSON: {e.msg}") from e


def load_master_data(equipment_path: Path | str, recipes_path: Path | str) -> MasterData:
    """Load and validate master data from YAML (simulator config) or landed JSON files."""
    ep, rp = Path(equipment_path), Path(recipes_path)
    return parse_master_data(
        _load_doc(ep), _load_doc(rp), equipment_source=str(ep), recipes_source=str(rp)
    )
