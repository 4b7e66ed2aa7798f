"""Master data: the reference column, round trip of landed JSON, and clear errors."""

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
            lambda r: r["recipes"][0]["phases"][2].update(name="Rinse"),
            "recipes[0].phases[2].name",
            "unknown phase 'Rinse'",
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
            "out of process order",
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
