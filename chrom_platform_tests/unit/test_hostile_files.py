"""Hostile and broken files given to `chrom import` and to master data: each is refused
with the file, line or key and the problem named, at a cost that does not explode (no
alias expansion, no quadratic header check, bounded recipes), exit 2 from the command, and
nothing read from outside the mapping's folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from chrom_platform.lib.core.config_files import MAX_DEPTH, ConfigFileError, load_yaml
from chrom_platform.lib.core.master_data import MAX_PHASES, ConfigError, MasterData
from chrom_platform.lib.io.importing import ImportRejected, import_files, load_mapping
from chrom_platform.lib.io.importing.readers import MAX_COLUMNS
from chrom_platform.lib.io.objectstore import open_store
from chrom_platform_tests.conftest import EQUIPMENT, RECIPES
from chrom_platform_tests.import_helpers import chrom_import
from simulator.export import export_csv
from simulator.landing import unit_batches, unit_jobs

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.fixture(scope="module")
def exported(md: MasterData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exported")
    job = unit_jobs(md, landing="", units=1, batches_per_unit=1, seed=5, fault_rate=0.0)[0]
    export_csv(root / "wide", list(unit_batches(job, md)), "wide")
    return root / "wide"


@pytest.fixture
def wide(exported: Path, tmp_path: Path) -> Path:
    shutil.copytree(exported, tmp_path / "wide")
    return tmp_path / "wide"


def _reading_file(folder: Path) -> Path:
    return sorted((folder / "readings").glob("*.csv"))[0]


def _problems(folder: Path, md: MasterData, lake: Path) -> list:
    mapping = load_mapping(folder / "mapping.yaml")
    data = sorted((folder / "readings").glob("*.csv"))
    with pytest.raises(ImportRejected) as e:
        import_files(data, mapping=mapping, md=md, store=open_store(str(lake)))
    assert not lake.exists() or not any(p.is_file() for p in lake.rglob("*")), "nothing lands"
    return e.value.problems


def _cli_import(folder: Path, lake: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc, _, err = chrom_import(folder / "readings", folder / "mapping.yaml", lake, capsys)
    return rc, err


# --- YAML -----------------------------------------------------------------------------


def test_yaml_aliases_are_refused_before_any_expansion() -> None:
    with pytest.raises(ConfigFileError) as e:
        load_yaml(BILLION_LAUGHS)
    assert e.value.line == 2, "the first alias is on line 2"
    assert "aliases" in e.value.problem


def test_yaml_nesting_is_bounded() -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(ConfigFileError, match=f"deeper than {MAX_DEPTH}"):
        load_yaml(deep)
    # a plain document within the bound loads as data
    assert load_yaml("a: [1, {b: 2}]\n") == {"a": [1, {"b": 2}]}


def test_a_billion_laughs_mapping_is_a_config_error_naming_the_file(wide: Path) -> None:
    m = wide / "mapping.yaml"
    m.write_text(BILLION_LAUGHS)
    with pytest.raises(ConfigError) as e:
        load_mapping(m)
    assert e.value.source == str(m)
    assert "line 2" in e.value.problem
    assert "aliases" in e.value.problem


def test_master_data_with_aliases_or_bad_encoding_names_the_file(tmp_path: Path) -> None:
    from chrom_platform.lib.core.master_data import load_master_data

    eq = tmp_path / "equipment.yaml"
    eq.write_text("x: &x [1, 2]\ny: *x\n")
    with pytest.raises(ConfigError, match=r"equipment\.yaml: \(file\): line 2: YAML aliases"):
        load_master_data(eq, RECIPES)
    eq.write_bytes("units: []\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"equipment\.yaml: \(file\): line 2: not UTF-8"):
        load_master_data(eq, RECIPES)


def test_a_recipe_with_too_many_phases_is_refused_naming_the_key(tmp_path: Path) -> None:
    from chrom_platform.lib.core.master_data import load_master_data

    doc = yaml.safe_load(Path(RECIPES).read_text())
    phase = doc["recipes"][0]["phases"][-1]
    doc["recipes"][0]["phases"] = [{**phase, "name": f"p{i}"} for i in range(MAX_PHASES * 5)]
    rp = tmp_path / "recipes.yaml"
    rp.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load_master_data(EQUIPMENT, rp)
    assert e.value.key == "recipes[0].phases"
    assert f"{MAX_PHASES * 5} phases; a recipe has at most {MAX_PHASES}" in e.value.problem


# --- CSV encodings and sizes -----------------------------------------------------------


def test_invalid_utf8_names_its_line_and_exits_2(
    wide: Path, md: MasterData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _reading_file(wide)
    lines = f.read_bytes().splitlines(keepends=True)
    # far beyond the first 64 KiB: found while reading, not by the up-front look
    n = len(lines) - 3
    lines[n - 1] = lines[n - 1].replace(b",", b",\xff", 1)
    f.write_bytes(b"".join(lines))
    problems = _problems(wide, md, tmp_path / "lake")
    hits = [p for p in problems if p.file == str(f) and "not UTF-8" in p.problem]
    assert [p.line for p in hits] == [n], problems
    rc, err = _cli_import(wide, tmp_path / "lake2", capsys)
    assert rc == 2
    assert f"{f}:{n}: not UTF-8" in err
    assert "Traceback" not in err


def test_utf16_and_binary_files_exit_2_naming_the_file(
    wide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _reading_file(wide)
    text = f.read_text()
    f.write_bytes(text.encode("utf-16"))
    rc, err = _cli_import(wide, tmp_path / "lake", capsys)
    assert rc == 2
    assert f"{f}:1: UTF-16 text" in err, err
    f.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + os.urandom(2000))  # an .xlsx, say
    rc, err = _cli_import(wide, tmp_path / "lake", capsys)
    assert rc == 2
    assert str(f) in err, err
    assert "Traceback" not in err, err


def test_an_oversized_cell_names_its_line(wide: Path, md: MasterData, tmp_path: Path) -> None:
    f = _reading_file(wide)
    lines = f.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",", "," + "9" * 200_000, 1)
    f.write_text("".join(lines))
    problems = _problems(wide, md, tmp_path / "lake")
    assert any(
        p.line == 5 and "not readable as CSV: field larger than field limit" in p.problem
        for p in problems
    ), problems


def test_a_header_of_too_many_columns_is_one_problem(
    wide: Path, md: MasterData, tmp_path: Path
) -> None:
    f = _reading_file(wide)
    lines = f.read_text().splitlines(keepends=True)
    extra = "".join(f",x{i}" for i in range(MAX_COLUMNS * 10))
    f.write_text(lines[0].rstrip("\n") + extra + "\n" + "".join(lines[1:]))
    problems = [p for p in _problems(wide, md, tmp_path / "lake") if p.file == str(f)]
    assert len(problems) == 1, problems
    assert f"columns; at most {MAX_COLUMNS:,}" in problems[0].problem


def test_many_unknown_and_repeated_columns_list_a_bounded_report(
    wide: Path, md: MasterData, tmp_path: Path
) -> None:
    f = _reading_file(wide)
    lines = f.read_text().splitlines(keepends=True)
    extra = ",dup" * 3_000 + "".join(f",u{i}" for i in range(3_000))
    f.write_text(lines[0].rstrip("\n") + extra + "\n" + "".join(lines[1:]))
    mapping = load_mapping(wide / "mapping.yaml")
    with pytest.raises(ImportRejected) as e:
        import_files([f], mapping=mapping, md=md, store=open_store(str(tmp_path / "lake")))
    listed = "\n".join(map(str, e.value.problems))
    assert "column 'dup': column appears twice in the header" in listed
    assert listed.count("column 'dup': unknown column") == 1, "a name is reported once"
    assert e.value.more > 0, "the rest are counted, not listed"
    assert len(e.value.problems) <= 50


# --- files outside the mapping's folder -------------------------------------------------


def test_a_mapping_cannot_read_a_file_outside_its_folder(wide: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("root:$6$very-secret-hash:19000:0:99999:7:::\n")
    m = wide / "mapping.yaml"
    doc = yaml.safe_load(m.read_text())
    for path in (str(secret), "../secret.csv"):
        doc["batches"] = path
        m.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as e:
            load_mapping(m)
        assert "outside the mapping's folder" in e.value.problem
        assert "very-secret" not in str(e.value)
    # a symlink in the folder that points out of it is refused the same way
    (wide / "batches_link.csv").symlink_to(secret)
    doc["batches"] = "batches_link.csv"
    m.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="outside the mapping's folder"):
        load_mapping(m)


# --- the clock rule live readings follow --------------------------------------------------


def test_an_import_ahead_of_the_clock_is_refused(md: MasterData, tmp_path: Path) -> None:
    """A batch running past this machine's clock (by more than CHROM_MAX_CLOCK_AHEAD_S)
    would become its unit's newest landed data and make the landing consumer take the
    unit's live readings for duplicates until then: refused at the first such scan, the
    rule named. The same batch three days in the past imports."""
    import time

    from chrom_platform.lib.core.contracts import MAX_CLOCK_AHEAD_S

    def export(start_ns: int) -> Path:
        out = tmp_path / str(start_ns)
        job = unit_jobs(
            md, landing="", units=1, batches_per_unit=1, seed=5, fault_rate=0.0, start_ns=start_ns
        )[0]
        export_csv(out, list(unit_batches(job, md)), "wide")
        return out

    now = time.time_ns()
    ahead = export(now + 3_600 * 10**9)
    problems = _problems(ahead, md, tmp_path / "lake")
    hits = [p for p in problems if "ahead of this machine's clock" in p.problem]
    assert hits, problems
    assert f"at most {MAX_CLOCK_AHEAD_S:g} s (CHROM_MAX_CLOCK_AHEAD_S" in hits[0].problem
    assert any(p.column == "Timestamp" for p in hits), "the readings, not only the labs"
    past = export(now - 3 * 86_400 * 10**9)
    mapping = load_mapping(past / "mapping.yaml")
    data = sorted((past / "readings").glob("*.csv"))
    report = import_files(data, mapping=mapping, md=md, store=open_store(str(tmp_path / "l2")))
    assert report.batches == 1
