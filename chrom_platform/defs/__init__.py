"""Everything Dagster runs, one folder per domain. `definitions.py` loads every asset, check
and sensor defined in a module below this folder (dg.load_from_defs_folder): a new one needs
no registration anywhere else. Keep these `__init__` files free of re-exports (an object
exported twice is found twice)."""
