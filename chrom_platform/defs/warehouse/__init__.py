"""The warehouse: the dbt project's models as assets, their checks, freshness and automation."""
