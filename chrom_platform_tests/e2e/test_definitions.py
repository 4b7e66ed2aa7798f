"""The code location assembles itself from defs/: every asset, check and sensor defined under
it is loaded, and the headless build (build.py, which the demo and `chrom evaluate` run)
builds every executable asset it loads with its checks. An asset added under defs/ needs no
edit anywhere else."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import sys
from pathlib import Path

import dagster as dg
import pytest

import chrom_platform.defs
from chrom_platform import build
from chrom_platform.definitions import project_definitions
from chrom_platform.settings import Settings

DEFS_DIR = Path(chrom_platform.defs.__file__).parent
_KINDS = (dg.AssetsDefinition, dg.AssetSpec, dg.AssetChecksDefinition, dg.SensorDefinition)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"CHROM_DATA_DIR": str(tmp_path)})


def _defined_under_defs() -> list[object]:
    """Every Dagster object a module under defs/ defines at its top level (alone or in a
    list), found by walking the package, independently of Dagster's loader."""
    found: list[object] = []
    for info in pkgutil.walk_packages([str(DEFS_DIR)], "chrom_platform.defs."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            items = value if type(value) in (list, tuple) else [value]
            found.extend(v for v in items if isinstance(v, _KINDS))
    return found


def _keys(obj: object) -> set[str]:
    if isinstance(obj, dg.AssetSpec):
        return {obj.key.to_user_string()}
    if isinstance(obj, dg.AssetsDefinition):
        return {k.to_user_string() for k in obj.keys} | {str(c) for c in obj.check_keys}
    if isinstance(obj, dg.AssetChecksDefinition):
        return {str(c) for c in obj.check_keys}
    assert isinstance(obj, dg.SensorDefinition)
    return {f"sensor:{obj.name}"}


def _loaded(defs: dg.Definitions) -> set[str]:
    graph = defs.resolve_asset_graph()
    return (
        {k.to_user_string() for k in graph.get_all_asset_keys()}
        | {str(c) for c in graph.asset_check_keys}
        | {f"sensor:{s.name}" for s in defs.sensors or []}
    )


def _built(settings: Settings) -> set[str]:
    """What the headless build's job computes, read off its steps."""
    from dagster._core.definitions.dependency import NodeHandle

    job = build.build_job(settings)
    out: set[str] = set()
    for name in job.graph.node_dict:
        for k in job.asset_layer.get_selected_entity_keys_for_node(NodeHandle(name, None)):
            out.add(k.to_user_string() if isinstance(k, dg.AssetKey) else str(k))
    return out


def _executable(defs: dg.Definitions) -> set[str]:
    graph = defs.resolve_asset_graph()
    keys = graph.executable_asset_keys
    return {k.to_user_string() for k in keys} | {
        str(c) for c in graph.asset_check_keys if c.asset_key in keys
    }


def test_everything_under_defs_is_loaded_and_built(settings) -> None:
    defs = project_definitions(settings)
    loaded = _loaded(defs)
    defined = set().union(*(_keys(o) for o in _defined_under_defs()))
    assert defined <= loaded, f"defined under defs/ but not loaded: {sorted(defined - loaded)}"
    # the external assets are the live series and the dashboards, nothing else
    external = {k.to_user_string() for k in defs.resolve_asset_graph().external_asset_keys}
    assert {k.split("/")[0] for k in external} == {"landing", "live", "dashboards"}
    # the headless build is every executable asset with its checks (quality checks included)
    built = _built(settings)
    assert built == _executable(defs)
    assert any("warehouse_quality" in k or "flatline" in k for k in built), sorted(built)[:20]


#: Run in a copy of the project (never the source tree, which the other worker is loading):
#: the code location, the headless build and the demo's first build, as keys.
_PROBE = r"""
import json, sys
from types import SimpleNamespace

import chrom_platform
from chrom_platform import build
from chrom_platform.definitions import project_definitions
from chrom_platform.settings import Settings
from chrom_platform_tests.e2e.test_definitions import _built, _loaded

settings = Settings.from_env({"CHROM_DATA_DIR": sys.argv[1]})
seen = []


def record(s, instance, **_):
    seen.append(sorted(_built(s)))
    return SimpleNamespace(
        success=True, get_asset_materialization_events=list, get_asset_check_evaluations=list
    )


build.build_everything = record  # the demo's first build, recorded instead of run
from chrom_platform.local.demo import first_build

first_build(settings, instance=None)
print(json.dumps({
    "package": chrom_platform.__file__,
    "loaded": sorted(_loaded(project_definitions(settings))),
    "built": sorted(_built(settings)),
    "first_build": seen[0],
}))
"""


def test_an_asset_added_under_defs_needs_no_edit_elsewhere(tmp_path) -> None:
    """A new module under defs/ is in the code location, the headless build and the demo's
    first build. Shown in a copy of the project, loaded by a process of its own: a probe
    written into the source tree would be loaded by the other test worker meanwhile, and
    left in the product by a killed run."""
    import os
    import subprocess

    from chrom_platform.settings import PROJECT_ROOT

    copy = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT / "chrom_platform",
        copy / "chrom_platform",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", copy)
    for shared in ("dbt_chrom", "simulator"):  # read only
        (copy / shared).symlink_to(PROJECT_ROOT / shared)
    probe = copy / "chrom_platform" / "defs" / "zz_probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "assets.py").write_text(
        "import dagster as dg\n\n\n"
        "@dg.asset(key=['probe', 'new_asset'])\n"
        "def new_asset() -> None:\n"
        '    """An asset nobody registered."""\n'
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(got["package"]).is_relative_to(copy), "the copy was loaded, not the source"
    for where in ("loaded", "built", "first_build"):
        assert "probe/new_asset" in got[where], where
    # the source tree has no probe: its own code location does not have one either
    assert not (DEFS_DIR / "zz_probe").exists()
    assert set(got["loaded"]) - {"probe/new_asset"} == _loaded(
        project_definitions(Settings.from_env({"CHROM_DATA_DIR": str(tmp_path / "data")}))
    )
