"""Master data: the reference column, round trip of landed JSON, and clear errors."""

import os
from pathlib import Path

import pytest
import yaml

from chrom_platform.lib.core.master_data import ConfigError, load_master_data, parse_master_data
from chrom_platform_tests.conftest import EQUIPMENT, RECIPES


def test_reference_column_volume_comes_from_geometry(md):
    u = md.units["SKID-01"]
    assert u.column_diameter_cm == 120
    assert u.bed_height_cm == 20
    assert u.column_volume_l == pytest.approx(226.19, abs=0.01)
    assert u.flow_lpm(300) == pytest.approx(56.55, abs=0.01)


def test_landed_records_parse_back_to_the_same_master_data(md):
    again = parse_master_data(
        md.equipment_record(),
        md.recipes_record(),
        equipment_source="eq.json",
        recipes_source="rc.json",
    )
    assert again == md


def test_a_recipes_own_rules_land_and_parse_back(md):
    """What a plant tunes per recipe (breakthrough rule, golden-envelope say, specs, ramps)
    lands in the snapshot and parses back to the same master data."""
    rc = yaml.safe_load(Path(RECIPES).read_text())
    rc["recipes"][0]["breakthrough"] = {"percent_of_feed": 5, "noise_k": 4}
    rc["recipes"][0]["envelope"] = {"pin": ["SKID-01-B00003"], "exclude": ["SKID-01-B00004"]}
    rc["recipes"][0]["envelope"].update(min_batches=5, window=30, z_limit=4.5, persistence=3)
    rc["recipes"][1]["envelope"] = {"min_batches": 6}  # a setting without any say
    rc["recipes"][1]["multivariate"] = {"min_batches": 8, "batch_false_alarm": 0.005}
    rc["recipes"][0]["phases"][3]["gradient_cv"] = 1.5
    eq = yaml.safe_load(Path(EQUIPMENT).read_text())
    own = parse_master_data(eq, rc, equipment_source="eq", recipes_source="rc")
    r = own.recipes["MAB1-PROA-V3"]
    assert (r.breakthrough_fraction, r.breakthrough_noise_k) == (0.05, 4.0)
    assert (r.envelope_pin, r.envelope_exclude) == (("SKID-01-B00003",), ("SKID-01-B00004",))
    assert r.buffers["EQ"].cond_range == (15.2, 16.8)
    assert r.envelope_settings == {"min_batches": 5, "window": 30, "z_limit": 4.5, "persistence": 3}
    other = own.recipes[rc["recipes"][1]["recipe"]]
    assert (other.envelope_settings, other.envelope_pin) == ({"min_batches": 6}, ())
    assert other.multivariate_settings == {"min_batches": 8, "batch_false_alarm": 0.005}
    again = parse_master_data(
        own.equipment_record(), own.recipes_record(), equipment_source="e", recipes_source="r"
    )
    assert again == own
    assert again != md


def test_a_units_instruments_override_the_defaults_and_land_with_it(md):
    """A unit that declares its flow meter's accuracy gets it, the rest of its signals and
    every other unit the platform's defaults; the landed snapshot carries all of them and
    parses back to the same master data."""
    from chrom_platform.lib.core.master_data import DEFAULT_ACCURACY, Accuracy

    eq = yaml.safe_load(Path(EQUIPMENT).read_text())
    eq["units"][0]["instrument_accuracy"] = {"flow_lpm": {"absolute": 0.01, "of_reading": 0.002}}
    rc = yaml.safe_load(Path(RECIPES).read_text())
    own = parse_master_data(eq, rc, equipment_source="eq", recipes_source="rc")
    first, second = list(own.units.values())[:2]
    assert first.instrument_accuracy["flow_lpm"] == Accuracy(0.01, 0.002)
    assert first.instrument_accuracy["ph"] == DEFAULT_ACCURACY["ph"]
    assert second.instrument_accuracy == DEFAULT_ACCURACY
    assert first.instrument_accuracy["flow_lpm"].at(2.5) == pytest.approx(0.015)
    record = own.equipment_record()
    assert record["units"][0]["instrument_accuracy"]["flow_lpm"] == {
        "absolute": 0.01,
        "of_reading": 0.002,
    }
    again = parse_master_data(record, rc, equipment_source="e", recipes_source="r")
    assert again == own
    assert again != md


def _write_bad(tmp_path: Path, which: str, mutate) -> tuple[str, str]:
    eq = yaml.safe_load(Path(EQUIPMENT).read_text())
    rc = yaml.safe_load(Path(RECIPES).read_text())
    mutate(eq if which == "eq" else rc)
    ep, rp = tmp_path / "equipment.yaml", tmp_path / "recipes.yaml"
    ep.write_text(yaml.safe_dump(eq))
    rp.write_text(yaml.safe_dump(rc))
    return str(ep), str(rp)


@pytest.mark.parametrize(
    ("which", "mutate", "key", "problem"),
    [
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][2].update(kind="rinse"),
            "recipes[0].phases[2].kind",
            "unknown kind 'rinse'",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][2].pop("kind"),
            "recipes[0].phases[2].kind",
            "missing required field",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][2].update(name="Wash 2"),
            "recipes[0].phases[3].name",
            "phase 'Wash 2' appears twice",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][2].update(kind="load", cv="load"),
            "recipes[0].phases",
            "exactly one phase of kind load, found 2",
        ),
        (
            "rc",
            lambda r: r["recipes"][1].update(step_yield={"min": 0.9, "max": 0.85}),
            "recipes[1].step_yield",
            "min 0.9 must be below max 0.85",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].pop("step_yield"),
            "recipes[0].step_yield",
            "expected a mapping",
        ),
        (
            "rc",
            lambda r: r["recipes"][1]["phases"][0].update(cv=-2),
            "recipes[1].phases[0].cv",
            "must be > 0",
        ),
        (
            "eq",
            lambda e: e["units"][1].update(column_diameter_cm=0),
            "units[1].column_diameter_cm",
            "must be > 0",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(column_volume_l=0),
            "units[0].column_volume_l",
            "must be > 0",
        ),
        (
            "eq",
            lambda e: e["units"][2].pop("bed_height_cm"),
            "units[2].bed_height_cm",
            "missing required field",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(hetp_cm="small"),
            "units[0].hetp_cm",
            "expected a number",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(resin="Unobtainium"),
            "units[0].resin",
            "unknown resin",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][1].update(buffer="NOPE"),
            "recipes[0].phases[1].buffer",
            "unknown buffer",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"].reverse(),
            "recipes[0].phases",
            "needs a phase of kind elution after its load",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(column_volume_l=300),
            "units[0].column_volume_l",
            "disagrees with the packed geometry",
        ),
        # identities travel in every reading: one the readings' rule refuses is refused here
        (
            "eq",
            lambda e: e["units"][1].update(unit_id="SKID/02"),
            "units[1].unit_id",
            "'SKID/02' is not a valid identity",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(recipe="MAB1'; --"),
            "recipes[0].recipe",
            "is not a valid identity",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][4].update(gradient_cv=6),
            "recipes[0].phases[4].gradient_cv",
            "6 CV is longer than the phase (4 CV)",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"pin": ["B1"], "exclude": ["B1"]}),
            "recipes[0].envelope",
            "pinned and excluded at once: ['B1']",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"min_batches": 2}),
            "recipes[0].envelope.min_batches",
            "must be >= 3",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"persistence": 2.5}),
            "recipes[0].envelope.persistence",
            "expected a whole number, got 2.5",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"min_batches": 10, "window": 8}),
            "recipes[0].envelope.window",
            "window 8 is below min_batches 10",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(
                multivariate={"min_batches": 20, "mature_batches": 10}
            ),
            "recipes[0].multivariate.mature_batches",
            "mature_batches 10 is below min_batches 20",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(multivariate={"batch_false_alarm": 0.5}),
            "recipes[0].multivariate.batch_false_alarm",
            "must be <= 0.2",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"z_limt": 4}),
            "recipes[0].envelope",
            "z_limt",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(breakthrough={"percent_of_feed": 80}),
            "recipes[0].breakthrough.percent_of_feed",
            "must be <= 50",
        ),
        (
            "rc",
            lambda r: r["recipes"][0].update(envelope={"pin": "B1"}),
            "recipes[0].envelope.pin",
            "expected a list of batch ids",
        ),
        (
            "rc",
            lambda r: r["recipes"][0]["phases"][1].update(gradient_cv=2),
            "recipes[0].phases[1].gradient_cv",
            "the load pumps the feed: no gradient",
        ),
        (
            "eq",
            lambda e: e["units"][1].update(instrument_accuracy={"flow": {"absolute": 0.1}}),
            "units[1].instrument_accuracy",
            "unknown keys ['flow']",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(
                instrument_accuracy={"ph": {"absolute": 0.01, "resolution": 0.001}}
            ),
            "units[0].instrument_accuracy.ph",
            "unknown keys ['resolution']",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(instrument_accuracy={"uv_mau": {"absolute": -2}}),
            "units[0].instrument_accuracy.uv_mau.absolute",
            "must be >= 0",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(instrument_accuracy={"uv_mau": {"of_reading": 0.01}}),
            "units[0].instrument_accuracy.uv_mau.absolute",
            "missing required field",
        ),
        (
            "eq",
            lambda e: e["units"][0].update(instrument_accuracy={"ph": {"absolute": 0}}),
            "units[0].instrument_accuracy.ph",
            "an instrument resolves something",
        ),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path, which, mutate, key, problem):
    ep, rp = _write_bad(tmp_path, which, mutate)
    with pytest.raises(ConfigError) as exc:
        load_master_data(ep, rp)
    msg = str(exc.value)
    assert (ep if which == "eq" else rp) in msg
    assert key in msg
    assert problem in msg


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_master_data(tmp_path / "nope.yaml", RECIPES)
    bad = tmp_path / "equipment.yaml"
    bad.write_text("units: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_master_data(bad, RECIPES)


#: Another plant's capture recipe: its own names and order, no equilibration, two elution
#: steps, a regeneration; nothing in it is named as the simulator names its phases.
OTHER_PLANT_RECIPE = {
    "buffers": [
        {"name": "B-WASH", "cond_ms_cm": 12.0, "ph": 7.2, "viscosity_mpa_s": 1.0, "uv_mau": 0.0},
        {"name": "B-FEED", "cond_ms_cm": 14.0, "ph": 7.0, "viscosity_mpa_s": 1.2, "uv_mau": 300.0},
        {"name": "B-LOW", "cond_ms_cm": 3.0, "ph": 3.6, "viscosity_mpa_s": 1.0, "uv_mau": 0.0},
        {"name": "B-REGEN", "cond_ms_cm": 20.0, "ph": 12.5, "viscosity_mpa_s": 1.05, "uv_mau": 0.0},
    ],
    "recipes": [
        {
            "recipe": "PLANT-B_CAPTURE.v7",
            "product": "mAb-X",
            "extinction_l_g_cm": 1.5,
            "target_loading_g_l": 30.0,
            "step_yield": {"min": 0.75, "max": 0.95},
            "pooling": {
                "start": {"mode": "percent_of_max", "percent": 10},
                "end": {"mode": "percent_of_max", "percent": 10},
            },
            "phases": [
                {
                    "name": "Feed_Load",
                    "kind": "load",
                    "cv": "load",
                    "velocity_cm_h": 200,
                    "buffer": "B-FEED",
                },
                {
                    "name": "Wash_1",
                    "kind": "wash",
                    "cv": 3,
                    "velocity_cm_h": 250,
                    "buffer": "B-WASH",
                },
                {
                    "name": "Eluate (pool)",
                    "kind": "elution",
                    "cv": 3,
                    "velocity_cm_h": 150,
                    "buffer": "B-LOW",
                },
                {
                    "name": "Elute_tail",
                    "kind": "elution",
                    "cv": 1,
                    "velocity_cm_h": 150,
                    "buffer": "B-LOW",
                },
                {
                    "name": "Regen",
                    "kind": "regeneration",
                    "cv": 2,
                    "velocity_cm_h": 150,
                    "buffer": "B-REGEN",
                },
            ],
        }
    ],
}


def test_a_recipe_in_another_plants_names_and_order_loads_and_simulates(md):
    """Phases are the recipe's own: names, order and kinds; the simulator finds its load and
    elution by kind, so a batch of it lands product in its first elution phase."""
    from simulator.batch import plan_batch, simulate

    other = parse_master_data(
        md.equipment_record(), OTHER_PLANT_RECIPE, equipment_source="eq", recipes_source="rc"
    )
    r = other.recipes["PLANT-B_CAPTURE.v7"]
    assert r.phase_names() == ("Feed_Load", "Wash_1", "Eluate (pool)", "Elute_tail", "Regen")
    assert (r.load.name, r.elution.name) == ("Feed_Load", "Eluate (pool)")
    # landed and parsed back, the kinds travel with the names
    again = parse_master_data(
        other.equipment_record(), other.recipes_record(), equipment_source="e", recipes_source="r"
    )
    assert again.recipes == other.recipes
    unit = other.units["SKID-01"]
    sim = simulate(
        plan_batch(
            unit=unit,
            resin=other.resins[unit.resin],
            recipe=r,
            unit_index=0,
            batch_index=0,
            earliest_start_ns=1_700_000_000_000_000_000,
            seed=3,
            fault_rate=0.0,
        ),
        noise=False,
    )
    names = list(r.phase_names())
    uv = sim.signals["uv_mau"]
    in_elution = sim.phase_idx == names.index("Eluate (pool)")
    in_wash = sim.phase_idx == names.index("Wash_1")
    assert uv[in_elution].max() > 5 * uv[in_wash].max()  # the product peak elutes where it should
    assert sim.truth["pool_mass_g"] > 0.5 * sim.truth["load_mass_g"]


def _snapshot(store, md, volume_factor: float, mtime_s: float) -> str:
    from chrom_platform.lib.core.contracts import master_data_key
    from chrom_platform.lib.core.master_data import content_hash
    from chrom_platform.lib.io.landing import json_bytes

    equipment = md.equipment_record()
    equipment["units"][0]["bed_height_cm"] *= volume_factor
    equipment["units"][0]["column_volume_l"] = round(
        equipment["units"][0]["column_volume_l"] * volume_factor, 4
    )
    key = master_data_key("equipment", content_hash(equipment))
    store.put(key, json_bytes(equipment))
    os.utime(store.path(key), (mtime_s, mtime_s))
    return key


def test_the_consumers_master_data_is_the_snapshot_dbt_picks(md, tmp_path) -> None:
    """Nothing landed: the configured files. Then the newest landed snapshot by landing
    second and, within a second, the greatest key (dbt's `latest_master_data`); a kind not
    landed yet comes from the files. Parsed once per snapshot."""
    from chrom_platform.lib.io.landing import LandedMasterData
    from chrom_platform.lib.io.objectstore import LocalObjectStore

    store = LocalObjectStore(tmp_path)
    source = LandedMasterData(store, fallback=lambda: md, refresh_s=0)
    assert source.get() is md
    unit = next(iter(md.units))
    a = _snapshot(store, md, 1.05, 1_800_000_000.2)
    b = _snapshot(store, md, 1.10, 1_800_000_000.9)  # the same second
    first = source.get()
    newest = max(a, b)
    assert source.newest()[0].key == newest
    assert source.newest()[1] is None  # no recipes landed: the files' recipes
    assert first.recipes.keys() == md.recipes.keys()
    factor = 1.05 if newest == a else 1.10
    assert first.units[unit].column_volume_l == round(md.units[unit].column_volume_l * factor, 4)
    assert source.get() is first  # unchanged: not parsed again
    assert source.loads == 2
    other = min(a, b)
    os.utime(store.path(other), (1_800_000_002.0, 1_800_000_002.0))  # a later second wins
    assert source.newest()[0].key == other
    taken = source.get()
    assert taken is not first
    assert source.loads == 3
    # a broken snapshot lands last: the consumer keeps judging with what it had
    bad = "landing/master_data/equipment/equipment-zzzz.json"
    store.put(bad, b'{"units": [{"unit_id": "SKID-01"}]}')
    os.utime(store.path(bad), (1_800_000_009.0, 1_800_000_009.0))
    assert source.newest()[0].key == bad
    assert source.get() is taken


def test_a_serving_consumer_takes_up_newer_master_data_between_rounds(md, tmp_path) -> None:
    """What `chrom-bridge serve` does each round: a newer snapshot replaces the master data
    its decoder and live scoring judge with; the persistence counts carry over."""
    from chrom_platform.lib.io.influx import InfluxV1Sink
    from chrom_platform.lib.io.transport.sqlite_queue import SqliteQueue
    from chrom_platform.lib.streaming.bridge import LiveBridge

    current = [md]
    bridge = LiveBridge(
        SqliteQueue(tmp_path / "q.db"),
        InfluxV1Sink("http://127.0.0.1:9", "x"),
        md,
        master_data_source=lambda: current[0],
    )
    bridge.follow_master_data()
    assert bridge.md is md
    decoder = bridge.decoder
    equipment = md.equipment_record()
    equipment["units"].append({**equipment["units"][0], "unit_id": "SKID-99"})
    landed = parse_master_data(
        equipment, md.recipes_record(), equipment_source="test", recipes_source="test"
    )
    current[0] = landed
    assert "SKID-99" not in decoder.units
    bridge.follow_master_data()
    assert bridge.md is landed
    assert "SKID-99" in bridge.decoder.units  # a reading of the new unit is now judged
