"""An import lands all or nothing, as the warehouse sees it: killed while it stages, the
landing is as it was; killed after its commit, the next build (or the next import) publishes
the rest. Kills are placed at every kind of step boundary: between two staged objects, after
the commit record, between two moves, before the commit record is removed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chrom_platform.lib.core.contracts import LANDING, STAGING_PREFIX
from chrom_platform.lib.core.master_data import MasterData
from chrom_platform.lib.io.importing import import_files, load_mapping
from chrom_platform.lib.io.importing.build import ImportReport
from chrom_platform.lib.io.landing import finish_staged
from chrom_platform.lib.io.objectstore import LocalObjectStore

pytestmark = pytest.mark.e2e


class Killed(BaseException):
    """The process dying at this point: nothing after it runs (no handler catches it)."""


class DyingStore(LocalObjectStore):
    """A real local store whose writer dies before its n-th put, or its n-th move, or the
    removal of a staging's commit record."""

    def __init__(
        self,
        root: Path,
        *,
        puts: int | None = None,
        moves: int | None = None,
        commit_removal: bool = False,
    ) -> None:
        super().__init__(root)
        self.left = {"put": puts, "move": moves}
        self.commit_removal = commit_removal

    def _step(self, kind: str) -> None:
        left = self.left[kind]
        if left is not None:
            if left == 0:
                raise Killed(kind)
            self.left[kind] = left - 1

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self._step("put")
        super().put(key, data, durable=durable)

    def move(self, src: str, dst: str) -> None:
        self._step("move")
        super().move(src, dst)

    def delete(self, key: str) -> None:
        if self.commit_removal and key.endswith("_commit.json"):
            raise Killed("delete")
        super().delete(key)


@pytest.fixture(scope="module")
def export(md: MasterData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plant's wide export: one unit, two batches, with lab results and batch list."""
    from simulator.export import export_csv
    from simulator.landing import unit_batches, unit_jobs

    out = tmp_path_factory.mktemp("export")
    job = unit_jobs(md, landing="", units=1, batches_per_unit=2, seed=43, fault_rate=0.0)[0]
    export_csv(out, list(unit_batches(job, md)), "wide")
    return out


def _import(export: Path, md: MasterData, store: LocalObjectStore) -> ImportReport:
    return import_files(
        sorted((export / "readings").glob("*.csv")),
        mapping=load_mapping(export / "mapping.yaml"),
        md=md,
        store=store,
    )


def _landing(lake: Path) -> dict[str, str]:
    """What the warehouse and the landing sensor can see: every object under landing/."""
    return {
        p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((lake / LANDING).rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def complete(export: Path, md: MasterData, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The landing of the same import, never interrupted."""
    lake = tmp_path_factory.mktemp("complete")
    report = _import(export, md, LocalObjectStore(lake))
    objects = _landing(lake)
    assert len(objects) == len(report.objects) >= 6  # master data, readings, events, labs, report
    assert not (lake / STAGING_PREFIX).exists()
    return objects


@pytest.mark.parametrize("puts", [0, 1, 4, -1])
def test_killed_before_its_commit_the_landing_is_as_it_was(
    export: Path, md: MasterData, complete: dict, tmp_path: Path, puts: int
) -> None:
    """Killed at the first staged object, the second, the fifth, or just before the commit
    record (-1: after every object is staged): nothing is visible, a build's finishing step
    publishes nothing, and the import run again lands exactly the uninterrupted landing."""
    lake = tmp_path / "lake"
    n_puts = len(complete) if puts == -1 else puts
    with pytest.raises(Killed):
        _import(export, md, DyingStore(lake, puts=n_puts))
    assert _landing(lake) == {}
    staged = list((lake / STAGING_PREFIX).rglob("*.*")) if (lake / STAGING_PREFIX).exists() else []
    assert len(staged) == n_puts
    assert finish_staged(LocalObjectStore(lake)) == []
    assert _landing(lake) == {}

    report = _import(export, md, LocalObjectStore(lake))
    assert report.completed_interrupted == 0
    assert _landing(lake) == complete
    # the dead writer's uncommitted staging is young: kept until it is abandoned, then gone
    assert finish_staged(LocalObjectStore(lake), abandoned_after_s=0) == []
    assert not (lake / STAGING_PREFIX).exists()
    assert _landing(lake) == complete


@pytest.mark.parametrize("moves", [0, 3, -1])
def test_killed_after_its_commit_the_next_build_publishes_the_rest(
    export: Path, md: MasterData, complete: dict, tmp_path: Path, moves: int
) -> None:
    """Killed after the commit record, at the first move, the fourth, or with every object
    moved but the commit record left: what a build runs first (finish_staged) publishes the
    rest, and the landing equals the uninterrupted one; the import run again is a no-op."""
    lake = tmp_path / "lake"
    killed = DyingStore(lake, commit_removal=True) if moves == -1 else DyingStore(lake, moves=moves)
    with pytest.raises(Killed):
        _import(export, md, killed)
    part = _landing(lake)
    assert len(part) == (len(complete) if moves == -1 else moves)
    assert set(part) <= set(complete)
    published = finish_staged(LocalObjectStore(lake))
    assert sorted(published) == sorted(complete)
    assert _landing(lake) == complete
    assert not (lake / STAGING_PREFIX).exists()
    report = _import(export, md, LocalObjectStore(lake))
    assert report.completed_interrupted == 0
    assert _landing(lake) == complete


def test_the_import_run_again_publishes_an_interrupted_commit_first(
    export: Path, md: MasterData, complete: dict, tmp_path: Path
) -> None:
    """No build between: the user simply runs the import again. It finishes the committed
    landing before comparing, so it finds everything landed and lands nothing twice."""
    lake = tmp_path / "lake"
    with pytest.raises(Killed):
        _import(export, md, DyingStore(lake, moves=2))
    report = _import(export, md, LocalObjectStore(lake))
    assert report.completed_interrupted == len(complete)
    assert report.replaced == []
    assert _landing(lake) == complete
