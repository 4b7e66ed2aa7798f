"""The plant simulator. Its shipped master data lives in config/."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "config"
DEFAULT_EQUIPMENT = str(CONFIG_DIR / "equipment.yaml")
DEFAULT_RECIPES = str(CONFIG_DIR / "recipes.yaml")
#: Default history start, fixed so that the same seed gives the same bytes.
DEFAULT_START = "2025-01-01T00:00:00Z"
