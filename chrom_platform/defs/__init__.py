"""Everything Dagster runs, one folder per domain. `definitions.py` loads every asset, check
and sensor defined in a module below this folder (Dagster's defs-folder loader): a new one needs
no registration anywhere else. Keep these `__init__` files free of re-exports (an object
exported twice is found twice)."""
