"""The code location assembles itself from defs/: every asset, check and sensor defined under
it is loaded, and the headless build (build.py, which the demo and `chrom evaluate` run)
builds every executable asset it loads with its checks. An asset added under defs/ needs no
edit anywhere else."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

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


def test_an_asset_added_under_defs_needs_no_edit_elsewhere(settings, monkeypatch) -> None:
    probe = DEFS_DIR / "zz_probe"
    probe.mkdir()
    try:
        (probe / "__init__.py").write_text("")
        (probe / "assets.py").write_text(
            "import dagster as dg\n\n\n"
            "@dg.asset(key=['probe', 'new_asset'])\n"
            "def new_asset() -> None:\n"
            '    """An asset nobody registered."""\n'
        )
        importlib.invalidate_caches()
        assert "probe/new_asset" in _loaded(project_definitions(settings))
        assert "probe/new_asset" in _built(settings)
        # ... and the demo's first build is that build (it calls build_everything)
        seen: list[set[str]] = []

        def record(s: Settings, instance: object, **_: object) -> SimpleNamespace:
            seen.append(_built(s))
            return SimpleNamespace(
                success=True,
                get_asset_materialization_events=list,
                get_asset_check_evaluations=list,
            )

        monkeypatch.setattr(build, "build_everything", record)
        from chrom_platform.local.demo import first_build

        first_build(settings, instance=None)
        assert "probe/new_asset" in seen[0]
    finally:
        shutil.rmtree(probe)
        for name in [m for m in sys.modules if m.startswith("chrom_platform.defs.zz_probe")]:
            del sys.modules[name]
