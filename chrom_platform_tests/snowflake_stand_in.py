"""Run the dbt project's `prod` target (dbt-snowflake) against fakesnow, a stand-in for
Snowflake that executes Snowflake SQL on DuckDB. Snowflake itself cannot run here.

    python -m chrom_platform_tests.snowflake_stand_in --lake L --db-dir D -- build ...

Before dbt runs, the raw tables Snowpipe would load from the GCS stage (infra/snowflake:
one VARIANT row per reading, event line, lab document and master-data snapshot, with the
staged file's name and the load time) are filled from the landing folder: a stand-in for
Snowpipe, named for what it is. `ts` of a reading arrives as ISO 8601 text, as the pipe's
file format delivers Parquet timestamps into a VARIANT.

What fakesnow cannot do (and so is not run here): dbt unit tests (they create temporary
tables in a database fakesnow does not allow), transient-table properties, and anything
that needs a real warehouse (grants, pipes, stages).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

RAW_TABLES = ("raw_readings", "raw_batch_events", "raw_sample_results", "raw_master_data")
DATABASE = "CHROM"


def load_raw_tables(duck, lake: Path) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The Snowpipe stand-in: landing objects -> RAW.raw_* (raw VARIANT, source_file, loaded_at)."""
    root = str(lake).rstrip("/")
    strip = len(root) + 2  # landing key = path below the root, as METADATA$FILENAME gives it
    db = DATABASE.lower()
    duck.execute(
        f"""insert into {db}.raw.raw_readings
        select to_json({{unit_id: unit_id, batch_id: batch_id, recipe: recipe, phase: phase,
                ts: strftime(timezone('UTC', ts), '%Y-%m-%dT%H:%M:%S.%gZ'), seq: seq,
                flow_lpm: flow_lpm, pressure_bar: pressure_bar, uv_mau: uv_mau,
                cond_ms_cm: cond_ms_cm, ph: ph, extra: extra}}),
            substr(filename, {strip}), now()::timestamp
        from read_parquet('{root}/landing/readings/*/*/*.parquet', filename = true,
            hive_partitioning = false)"""
    )
    duck.execute(
        f"""insert into {db}.raw.raw_batch_events
        select line::json, substr(filename, {strip}), now()::timestamp
        from read_text('{root}/landing/batch_events/*/*/*.json'),
            unnest(string_split(trim(content, chr(10)), chr(10))) as t (line)"""
    )
    for kind, depth in (("sample_results", "*/*/*"), ("master_data", "*/*")):
        duck.execute(
            f"""insert into {db}.raw.raw_{kind}
            select content::json, substr(filename, {strip}), now()::timestamp
            from read_text('{root}/landing/{kind}/{depth}.json')"""
        )
    return {t: duck.execute(f"select count(*) from {db}.raw.{t}").fetchone()[0] for t in RAW_TABLES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", type=Path, required=True)
    ap.add_argument("--db-dir", type=Path, required=True, help="where fakesnow keeps its files")
    ap.add_argument("dbt_args", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    dbt_args = [a for a in args.dbt_args if a != "--"]

    import fakesnow
    from dbt.cli.main import dbtRunner

    from chrom_platform.resources import DBT_PROJECT_DIR

    os.environ.update(
        SNOWFLAKE_ACCOUNT="stand-in",
        SNOWFLAKE_USER="CHROM_TRANSFORMER",
        SNOWFLAKE_DATABASE=DATABASE,
        SNOWFLAKE_WAREHOUSE="CHROM_TRANSFORM_WH",
        CHROM_DBT_TARGET="prod",
    )
    args.db_dir.mkdir(parents=True, exist_ok=True)
    with fakesnow.patch(
        create_database_on_connect=True, create_schema_on_connect=True, db_path=str(args.db_dir)
    ):
        import snowflake.connector

        conn = snowflake.connector.connect(database=DATABASE, schema="RAW")
        cur = conn.cursor()
        for t in RAW_TABLES:
            cur.execute(
                f"create table if not exists {DATABASE}.RAW.{t} "
                "(raw variant, source_file varchar, loaded_at timestamp_ntz)"
            )
        if args.lake.exists():
            counts = load_raw_tables(cur._duck_conn, args.lake)
            print(f"snowpipe stand-in loaded: {counts}", flush=True)
        conn.close()
        os.chdir(DBT_PROJECT_DIR)
        # one thread: fakesnow's connect-time schema creation is not safe across threads
        res = dbtRunner().invoke(
            [
                *dbt_args,
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target",
                "prod",
                "--threads",
                "1",
            ]
        )
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
