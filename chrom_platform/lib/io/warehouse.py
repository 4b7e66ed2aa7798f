"""The warehouse the dbt project builds, as the Python side reads it: one interface, two
adapters (DuckDB file locally; Snowflake in production, checked here against fakesnow).

Python asset checks and analytics query gold and silver through `Warehouse.query`, with SQL
both engines accept (standard window functions, no dialect extras), so the same check runs
on both. The dbt side of the same split is `adapter.dispatch` in dbt_chrom/macros.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

#: Dagster concurrency pool of everything that opens the DuckDB file. DuckDB allows one
#: writing process at a time (and no reader beside it): the dbt build, Python checks and
#: analytics that touch the file all take this pool's single slot, so they queue instead
#: of failing with a lock error. The instance config sets the limit (local/instance.py).
#: The pool is the queue the UI shows; `duckdb_file_lock` is what makes the exclusion certain.
WAREHOUSE_POOL = "warehouse"

#: The dbt command of every data build (Dagster's runs, `chrom build`, the demo): models,
#: seeds and data tests, not the unit tests. Unit tests check SQL logic on fixed inputs, so
#: they belong to a code change (`make test` runs them), not to each load of new data, where
#: they cost a quarter of an incremental build here (1.6 s of 6.7 s; dbt's own advice too).
DBT_BUILD = ("build", "--exclude-resource-type", "unit_test")

#: how long a process waits for another to finish with the DuckDB file (a full dbt build of
#: a plant's history takes minutes) before it fails naming the holder
LOCK_WAIT_S = 1800.0

# Per-process holds, by lock file: a process that already holds the file (a step that opens
# a second connection) does not wait for itself. flock is per open file, not per process.
_holds: dict[str, list[int]] = {}  # path -> [fd, depth]
_holds_guard = threading.Lock()


@contextmanager
def duckdb_file_lock(
    db_path: str | os.PathLike[str],
    *,
    shared: bool = False,
    timeout_s: float = LOCK_WAIT_S,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `<db_path>.lock` while a process uses the DuckDB file: exclusive to write, shared
    to read. DuckDB fails at once when another process holds its file; this waits instead.
    The warehouse pool should make the wait rare, but Dagster claims a pool slot with a
    read and then a write (on SQLite storage no row lock guards them), so two runs started
    together can both be given the slot (CI saw three concurrent materializations fail
    this way once). `on_wait` hears once that, and for whom, it waits."""
    import fcntl

    path = os.path.abspath(os.fspath(db_path)) + ".lock"
    with _holds_guard:
        if path in _holds:
            _holds[path][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(path)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline, told = time.monotonic() + timeout_s, False
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"the warehouse file {db_path} was still in use after {timeout_s:.0f} s "
                        f"(last writer: {holder}); is a process stuck on it?"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for the warehouse file {db_path}, in use by {holder}")
                    told = True
                time.sleep(0.2)
        if not shared:  # name the writer for whoever waits next
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _holds_guard:
        _holds[path] = [fd, 1]
    try:
        yield
    finally:
        _release(path)


def _release(path: str) -> None:
    with _holds_guard:
        hold = _holds[path]
        hold[1] -= 1
        if hold[1] == 0:
            del _holds[path]
            os.close(hold[0])  # closing the file releases the flock


Row = dict[str, Any]


class Warehouse(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows as dicts keyed by lower-case column name (Snowflake upper-cases names)."""
        ...

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """The result as an Arrow table with lower-case column names (large reads)."""
        ...

    def table_exists(self, schema: str, table: str) -> bool: ...

    def write_table(
        self, schema: str, table: str, data: pa.Table, *, replace_key: str | None = None
    ) -> None:
        """Write `data` to schema.table: replace the whole table, or (with `replace_key`) the
        rows whose key value appears in `data`, creating the table when it is missing."""
        ...


class _DbApiWarehouse:
    """Both adapters speak DB-API with `?` parameters (Snowflake's connector set to qmark)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.cursor()
        try:
            cur.execute(sql, list(params))
            names = [d[0].lower() for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        finally:
            cur.close()

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        if self._is_duckdb:  # the relation API hands Arrow over without a row copy
            t = self._conn.sql(sql, params=list(params) or None).to_arrow_table()
        else:  # Snowflake
            cur = self._conn.cursor()
            try:
                cur.execute(sql, list(params))
                t = cur.fetch_arrow_all(force_return_table=True)
            finally:
                cur.close()
        return t.rename_columns([c.lower() for c in t.column_names])

    def write_table(
        self, schema: str, table: str, data: pa.Table, *, replace_key: str | None = None
    ) -> None:
        name = f"{schema}.{table}"
        exists = self.table_exists(schema, table)
        if exists and replace_key is not None:
            self._add_missing_columns(schema, table, data.schema)
        cur = self._conn.cursor()
        try:
            cur.execute(f"create schema if not exists {schema}")
            if self._is_duckdb:
                cur.register("_incoming", data)
                if not exists or replace_key is None:
                    cur.execute(f"create or replace table {name} as select * from _incoming")
                else:
                    cur.execute("begin transaction")
                    cur.execute(
                        f"delete from {name} where {replace_key} in "
                        f"(select {replace_key} from _incoming)"
                    )
                    cur.execute(f"insert into {name} by name select * from _incoming")
                    cur.execute("commit")
                cur.unregister("_incoming")
            else:  # Snowflake: write_pandas into a staging table, then swap or merge
                from snowflake.connector.pandas_tools import write_pandas

                frame = data.to_pandas()
                frame.columns = [c.upper() for c in frame.columns]
                if not exists or replace_key is None:
                    write_pandas(
                        self._conn,
                        frame,
                        table.upper(),
                        schema=schema.upper(),
                        auto_create_table=True,
                        overwrite=True,
                        quote_identifiers=False,
                    )
                else:
                    keys = sorted(set(data.column(replace_key).to_pylist()))
                    for a in range(0, len(keys), 1000):
                        chunk = keys[a : a + 1000]
                        marks = ", ".join("?" * len(chunk))
                        cur.execute(f"delete from {name} where {replace_key} in ({marks})", chunk)
                    write_pandas(
                        self._conn,
                        frame,
                        table.upper(),
                        schema=schema.upper(),
                        quote_identifiers=False,
                    )
        finally:
            cur.close()

    def _add_missing_columns(self, schema: str, table: str, incoming: pa.Schema) -> None:
        """A table written row by row (replace_key) keeps its rows across versions: a column
        this version writes and the stored table lacks is added (null for the old rows)."""
        have = {
            r["column_name"].lower()
            for r in self.query(
                "select column_name from information_schema.columns "
                "where lower(table_schema) = lower(?) and lower(table_name) = lower(?)",
                (schema, table),
            )
        }
        cur = self._conn.cursor()
        try:
            for f in incoming:
                if f.name.lower() not in have:
                    cur.execute(
                        f"alter table {schema}.{table} add column {f.name} {_sql_type(f.type)}"
                    )
        finally:
            cur.close()

    @property
    def _is_duckdb(self) -> bool:
        return "duckdb" in type(self._conn).__module__

    def table_exists(self, schema: str, table: str) -> bool:
        found = self.query(
            "select count(*) as n from information_schema.tables "
            "where lower(table_schema) = lower(?) and lower(table_name) = lower(?)",
            (schema, table),
        )
        return bool(found[0]["n"])


def _sql_type(t: pa.DataType) -> str:
    """The column type both engines accept for an Arrow type the analytics write."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "varchar"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamp"
    raise TypeError(f"no warehouse column type for {t}")


@dataclass(frozen=True)
class WarehouseConfig:
    """Where the warehouse is. `target` picks the adapter: local (DuckDB) or prod (Snowflake)."""

    target: str
    duckdb_path: str
    landing_uri: str
    #: Snowflake connection (prod): account, user, role, warehouse, database, key file; no
    #: secret (the key's passphrase is read from the environment when connecting)
    snowflake: Mapping[str, str] = field(default_factory=dict)
    #: silver and gold may lag the newest landing data by this many minutes before their
    #: freshness checks fail
    max_lag_min: float = 15.0

    def dbt_vars(self) -> dict[str, str]:
        """What the dbt project needs from the settings (dbt_chrom/profiles.yml and
        dbt_project.yml read these as vars, falling back to the environment)."""
        return {"duckdb_path": self.duckdb_path, "landing_root": self.landing_uri}

    def prepare(self) -> None:
        """DuckDB does not create the folder of a new database file."""
        if self.target == "local":
            Path(self.duckdb_path).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def exclusive(
        self, *, shared: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """The local DuckDB file held for this process (see `duckdb_file_lock`); nothing to
        hold in Snowflake, which takes concurrent sessions."""
        if self.target != "local":
            yield
            return
        with duckdb_file_lock(self.duckdb_path, shared=shared, on_wait=on_wait):
            yield

    @contextmanager
    def connect(
        self, *, read_only: bool = True, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[Warehouse]:
        if self.target == "local":
            import duckdb

            if read_only and not Path(self.duckdb_path).exists():
                raise FileNotFoundError(
                    f"warehouse {self.duckdb_path} does not exist yet: build the dbt assets first"
                )
            with self.exclusive(shared=read_only, on_wait=on_wait):
                conn = duckdb.connect(self.duckdb_path, read_only=read_only)
                try:
                    yield _DbApiWarehouse(conn)
                finally:
                    conn.close()
        elif self.target == "prod":
            import snowflake.connector

            params = dict(self.snowflake)
            if "private_key_file" in params:  # key-pair users (infra/snowflake), no passwords
                params.setdefault("authenticator", "SNOWFLAKE_JWT")
                # the key's passphrase is a secret: read from the environment when connecting,
                # never carried in settings or resource config
                if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
                    params["private_key_file_pwd"] = os.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
            sf = snowflake.connector.connect(paramstyle="qmark", **params)
            try:
                yield _DbApiWarehouse(sf)
            finally:
                sf.close()
        else:
            raise ValueError(f"unknown warehouse target {self.target!r}; expected local or prod")


def duckdb_snapshot(
    src: str, dest: Path, tables: Sequence[str], schema: str = "gold"
) -> dict[str, int]:
    """Copy `tables` of `schema` from the DuckDB file `src` into a new file, then rename it
    over `dest` (atomic): a read-only copy a dashboard can hold open while Dagster's runs
    write the warehouse (DuckDB lets no reader in beside a writing process). Rows per table."""
    import duckdb

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}")
    tmp.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        with duckdb_file_lock(src, shared=True):
            quoted = src.replace("'", "''")
            con.execute(f"attach '{quoted}' as src (read_only)")
            con.execute(f"create schema {schema}")
            for t in tables:
                con.execute(f"create table {schema}.{t} as select * from src.{schema}.{t}")
                counts[t] = int(con.execute(f"select count(*) from {schema}.{t}").fetchone()[0])  # type: ignore[index]
            con.execute("detach src")
        con.execute("checkpoint")
    finally:
        con.close()
    os.replace(tmp, dest)
    return counts
