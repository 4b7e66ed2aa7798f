"""The plant simulator. Its shipped master data lives in config/: the mAb capture plant at
the top, other process families in their own folders (with a simulation.yaml of how the
plant behaves, which only the simulator reads)."""

from dataclasses import dataclass
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "config"
DEFAULT_EQUIPMENT = str(CONFIG_DIR / "equipment.yaml")
DEFAULT_RECIPES = str(CONFIG_DIR / "recipes.yaml")
#: Default history start, fixed so that the same seed gives the same bytes.
DEFAULT_START = "2025-01-01T00:00:00Z"

#: Process families the simulator plays: name -> folder of equipment.yaml, recipes.yaml and
#: (optional) simulation.yaml.
PROCESSES: dict[str, Path] = {
    "mab-capture": CONFIG_DIR,
    "fc-capture": CONFIG_DIR / "fc-capture",
}
DEFAULT_PROCESS = "mab-capture"


@dataclass(frozen=True)
class ProcessFiles:
    equipment: str
    recipes: str
    simulation: str | None


def process_files(name: str) -> ProcessFiles:
    if name not in PROCESSES:
        raise ValueError(f"unknown process {name!r}; known: {sorted(PROCESSES)}")
    d = PROCESSES[name]
    sim = d / "simulation.yaml"
    return ProcessFiles(
        str(d / "equipment.yaml"), str(d / "recipes.yaml"), str(sim) if sim.exists() else None
    )
