"""`chrom import`'s bad-file suite: each kind of bad file gets its own error naming file,
line and column, and nothing lands. Files are the simulator's own export (`chrom-sim
export-csv`), each test breaking one thing in a copy."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from chrom_platform.lib.core.master_data import ConfigError, MasterData
from chrom_platform.lib.io.importing import ImportRejected, import_files, load_mapping
from chrom_platform.lib.io.objectstore import open_store
from simulator.export import export_csv
from simulator.landing import unit_batches, unit_jobs

B1, B2 = "SKID-01-B00001", "SKID-01-B00002"


@pytest.fixture(scope="module")
def exported(md: MasterData, tmp_path_factory) -> Path:
    """One unit's two batches, exported in both shapes (short phases: fast to read)."""
    root = tmp_path_factory.mktemp("exported")
    job = unit_jobs(md, landing="", units=1, batches_per_unit=2, seed=3, fault_rate=0.0)[0]
    sims = list(unit_batches(job, md))
    export_csv(root / "wide", sims, "wide")
    export_csv(root / "long", sims, "long")
    return root


@pytest.fixture
def files(exported: Path, tmp_path: Path) -> Path:
    shutil.copytree(exported, tmp_path / "in")
    return tmp_path / "in"


def _import(folder: Path, md: MasterData, lake: Path, data: list[Path] | None = None):
    mapping = load_mapping(folder / "mapping.yaml")
    if data is None:
        data = (
            sorted((folder / "readings").glob("*.csv"))
            if mapping.shape == "wide"
            else [folder / "historian.csv"]
        )
    return import_files(data, mapping=mapping, md=md, store=open_store(str(lake)))


def _rejected(folder: Path, md: MasterData, lake: Path, **kw) -> list:
    with pytest.raises(ImportRejected) as e:
        _import(folder, md, lake, **kw)
    assert not lake.exists() or not any(p.is_file() for p in lake.rglob("*")), "nothing lands"
    return e.value.problems


def _edit(path: Path, fn: Callable[[list[str]], list[str]]) -> None:
    path.write_text("".join(fn(path.read_text().splitlines(keepends=True))))


def _cells(line: str) -> list[str]:
    return line.rstrip("\n").split(",")


def _row(cells: list[str]) -> str:
    return ",".join(cells) + "\n"


def _one(problems: list, *, file: str, line: int | None, column: str | None, says: str) -> None:
    hits = [
        p
        for p in problems
        if p.file.endswith(file) and p.line == line and p.column == column and says in p.problem
    ]
    assert hits, f"expected {file}:{line} {column!r} '{says}' in:\n" + "\n".join(map(str, problems))


def test_the_exported_files_import_cleanly(files: Path, md: MasterData, tmp_path: Path) -> None:
    for shape in ("wide", "long"):
        report = _import(files / shape, md, tmp_path / f"lake-{shape}")
        assert report.batches == 2
        assert report.readings > 20_000
        assert report.lab_results == 4


def test_missing_column(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "wide" / "readings" / f"{B1}.csv"
    _edit(f, lambda ls: [_row(_cells(x)[:7] + _cells(x)[8:]) for x in ls])  # drop pH
    _one(
        _rejected(files / "wide", md, tmp_path / "lake"),
        file=f.name,
        line=1,
        column="pH",
        says="missing column",
    )


def test_unknown_column(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "wide" / "readings" / f"{B2}.csv"
    _edit(
        f, lambda ls: [_row([*_cells(x), "Operator" if i == 0 else "jd"]) for i, x in enumerate(ls)]
    )
    _one(
        _rejected(files / "wide", md, tmp_path / "lake"),
        file=f.name,
        line=1,
        column="Operator",
        says="unknown column",
    )


def test_time_that_goes_back_and_duplicate_time(
    files: Path, md: MasterData, tmp_path: Path
) -> None:
    f1 = files / "wide" / "readings" / f"{B1}.csv"
    f2 = files / "wide" / "readings" / f"{B2}.csv"
    _edit(f1, lambda ls: [*ls[:100], ls[101], ls[100], *ls[102:]])  # lines 101 and 102 swapped
    _edit(f2, lambda ls: [*ls[:50], ls[49], *ls[50:]])  # line 50 twice
    problems = _rejected(files / "wide", md, tmp_path / "lake")
    _one(
        problems, file=f1.name, line=102, column="Timestamp", says="time goes back: before line 101"
    )
    _one(
        problems, file=f2.name, line=51, column="Timestamp", says="duplicate time: same as line 50"
    )


def test_two_scans_in_one_second(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "wide" / "readings" / f"{B1}.csv"

    def half_second_later(ls: list[str]) -> list[str]:
        c = _cells(ls[10])
        c[0] = c[0][:-3] + "937"  # the scan after line 10 comes 200 ms after it, same second
        return [*ls[:11], _row(c), *ls[11:]]

    _edit(f, half_second_later)
    _one(
        _rejected(files / "wide", md, tmp_path / "lake"),
        file=f.name,
        line=12,
        column=None,
        says="same second",
    )


def test_empty_file_and_header_without_rows(files: Path, md: MasterData, tmp_path: Path) -> None:
    d = files / "wide" / "readings"
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text((d / f"{B1}.csv").read_text().splitlines()[0] + "\n")
    problems = _rejected(files / "wide", md, tmp_path / "lake")
    _one(problems, file="empty.csv", line=None, column=None, says="empty file: no header")
    _one(problems, file="header_only.csv", line=None, column=None, says="a header and no rows")


@pytest.mark.parametrize("value", ["abc", "nan", "inf", ""])
def test_values_that_are_not_finite_numbers(
    files: Path, md: MasterData, tmp_path: Path, value: str
) -> None:
    f = files / "wide" / "readings" / f"{B1}.csv"

    def bad(ls: list[str]) -> list[str]:
        c = _cells(ls[20])
        c[6] = value  # conductivity
        return [*ls[:20], _row(c), *ls[21:]]

    _edit(f, bad)
    problems = _rejected(files / "wide", md, tmp_path / "lake")
    _one(problems, file=f.name, line=21, column="Conductivity [uS/cm]", says="not a finite number")


def test_unknown_phase_and_phase_out_of_recipe_order(
    files: Path, md: MasterData, tmp_path: Path
) -> None:
    f1 = files / "wide" / "readings" / f"{B1}.csv"
    f2 = files / "wide" / "readings" / f"{B2}.csv"
    _edit(f1, lambda ls: [x.replace(",Wash 1,", ",Wash_1,") for x in ls])
    # B2: the scans labelled Elution come back as Load at the end
    _edit(f2, lambda ls: [*ls[:-5], *(x.replace(",Storage,", ",Load,") for x in ls[-5:])])
    problems = _rejected(files / "wide", md, tmp_path / "lake")
    first_wash = next(i for i, x in enumerate(f1.read_text().splitlines(), 1) if ",Wash_1," in x)
    _one(
        problems,
        file=f1.name,
        line=first_wash,
        column="Step",
        says="'Wash_1' is not a phase of recipe",
    )
    _one(
        problems,
        file=f2.name,
        line=len(f2.read_text().splitlines()) - 4,
        column="Step",
        says="out of recipe order",
    )


def test_batch_overlapping_another_on_the_same_unit(
    files: Path, md: MasterData, tmp_path: Path
) -> None:
    d = files / "wide"
    copy = d / "readings" / "copy.csv"
    copy.write_text((d / "readings" / f"{B1}.csv").read_text().replace(B1, "SKID-01-X"))
    with open(d / "batches.csv", "a") as f:
        f.write("SKID-01-X,SKID-01,MAB1-PROA-V3,9,12.0\n")
    problems = _rejected(d, md, tmp_path / "lake")
    assert any(
        "SKID-01-X overlaps batch SKID-01-B00001" in p.problem
        or "B00001 overlaps batch SKID-01-X" in p.problem
        for p in problems
    ), problems


def test_batch_overlapping_one_already_landed(files: Path, md: MasterData, tmp_path: Path) -> None:
    d = files / "wide"
    lake = tmp_path / "lake"
    _import(d, md, lake, data=[d / "readings" / f"{B1}.csv"])
    landed = sorted(p for p in lake.rglob("*") if p.is_file())
    again = d / "readings" / "again.csv"
    again.write_text((d / "readings" / f"{B1}.csv").read_text().replace(B1, "SKID-01-Y"))
    with open(d / "batches.csv", "a") as f:
        f.write("SKID-01-Y,SKID-01,MAB1-PROA-V3,9,12.0\n")
    with pytest.raises(ImportRejected) as e:
        _import(d, md, lake, data=[again])
    _one(
        e.value.problems,
        file="again.csv",
        line=2,
        column=None,
        says="overlaps batch SKID-01-B00001",
    )
    assert sorted(p for p in lake.rglob("*") if p.is_file()) == landed, "nothing more landed"


def test_batch_missing_from_the_batch_list_and_unknown_unit(
    files: Path, md: MasterData, tmp_path: Path
) -> None:
    d = files / "wide"
    _edit(d / "batches.csv", lambda ls: [ls[0], ls[1].replace(",SKID-01,", ",SKID-99,")])
    problems = _rejected(d, md, tmp_path / "lake")
    _one(problems, file="batches.csv", line=2, column="unit_id", says="unknown unit 'SKID-99'")
    _one(problems, file=f"{B2}.csv", line=2, column="Batch", says="not in the batches file")


def test_implausible_time(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "wide" / "readings" / f"{B1}.csv"

    def epoch(ls: list[str]) -> list[str]:
        c = _cells(ls[1])
        c[0] = "01.01.1970 05:30:00.000"
        return [ls[0], _row(c), *ls[2:]]

    _edit(f, epoch)
    _one(
        _rejected(files / "wide", md, tmp_path / "lake"),
        file=f.name,
        line=2,
        column="Timestamp",
        says="implausible time",
    )


def test_unknown_unit_in_the_mapping_names_the_key(files: Path) -> None:
    m = files / "wide" / "mapping.yaml"
    doc = yaml.safe_load(m.read_text())
    doc["signals"]["flow_lpm"]["unit"] = "gal/min"
    m.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load_mapping(m)
    assert e.value.key == "signals.flow_lpm.unit"
    assert "unknown unit 'gal/min' for flow_lpm" in e.value.problem
    assert "mL/min" in e.value.problem


@pytest.mark.parametrize(
    ("edit", "key", "says"),
    [
        ({"deadbnd": 0.05}, "tags.{tag}", "unknown keys ['deadbnd']"),
        ({"deadband": -0.05}, "tags.{tag}.deadband", "expected the historian's deadband"),
        ({"deadband": "0.05"}, "tags.{tag}.deadband", "a number >= 0 in"),
    ],
)
def test_a_tag_key_the_mapping_does_not_know_or_a_bad_deadband(
    files: Path, edit: dict[str, object], key: str, says: str
) -> None:
    """A misspelled key of a tag (or a signal's column) is an error, never silently
    ignored; a deadband is a number >= 0 in the tag's own unit."""
    m = files / "long" / "mapping.yaml"
    doc = yaml.safe_load(m.read_text())
    tag = next(t for t, spec in doc["tags"].items() if spec["signal"] == "cond_ms_cm")
    doc["tags"][tag].update(edit)
    m.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load_mapping(m)
    assert e.value.key == key.format(tag=tag)
    assert says in e.value.problem


def test_a_deadband_is_converted_to_the_signals_unit(files: Path) -> None:
    m = files / "long" / "mapping.yaml"
    doc = yaml.safe_load(m.read_text())
    flow = next(t for t, spec in doc["tags"].items() if spec["signal"] == "flow_lpm")
    doc["tags"][flow].update({"unit": "L/h", "deadband": 6.0})
    m.write_text(yaml.safe_dump(doc))
    unit = doc["tags"][flow]["unit_id"]
    assert load_mapping(m).deadbands(unit) == {"flow_lpm": pytest.approx(0.1)}


def test_unknown_lab_unit(files: Path, md: MasterData, tmp_path: Path) -> None:
    d = files / "wide"
    _edit(d / "lab_results.csv", lambda ls: [ls[0], ls[1].replace(",mg/mL,", ",mmol/L,"), *ls[2:]])
    _one(
        _rejected(d, md, tmp_path / "lake"),
        file="lab_results.csv",
        line=2,
        column="unit",
        says="unknown concentration unit",
    )


def test_unknown_tag(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "long" / "historian.csv"
    _edit(f, lambda ls: [*ls[:7], ls[7].replace("SKID-01/", "SKID-01/XX-"), *ls[8:]])
    _one(
        _rejected(files / "long", md, tmp_path / "lake"),
        file="historian.csv",
        line=8,
        column="tag",
        says="unknown tag",
    )


def test_a_tag_without_a_value_at_a_scan(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "long" / "historian.csv"
    lines = f.read_text().splitlines(keepends=True)
    ph = next(i for i, x in enumerate(lines) if i > 500 and "AT-203.PH" in x)
    _edit(f, lambda ls: [*ls[:ph], *ls[ph + 1 :]])
    problems = _rejected(files / "long", md, tmp_path / "lake")
    assert any("no ph value (tag SKID-01/AT-203.PH)" in p.problem for p in problems), problems


def test_mixed_time_zones(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "long" / "historian.csv"

    def naive(ls: list[str]) -> list[str]:
        c = _cells(ls[30])
        c[0] = c[0][:-6]  # drop the offset
        return [*ls[:30], _row(c), *ls[31:]]

    _edit(f, naive)
    problems = _rejected(files / "long", md, tmp_path / "lake")
    _one(problems, file="historian.csv", line=31, column="timestamp", says="mixed time zones")


def test_a_row_with_too_few_cells(files: Path, md: MasterData, tmp_path: Path) -> None:
    f = files / "wide" / "readings" / f"{B1}.csv"
    _edit(f, lambda ls: [*ls[:40], _row(_cells(ls[40])[:5]), *ls[41:]])
    _one(
        _rejected(files / "wide", md, tmp_path / "lake"),
        file=f.name,
        line=41,
        column=None,
        says="5 cells, the header has 9",
    )
