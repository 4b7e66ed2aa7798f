"""One contract for every object store adapter that can run here: the local folder, and GCS
through gcp-storage-emulator (a GCS JSON-API server from PyPI; GCS itself cannot run here).
Same keys, same bytes, same listings: what the landing consumer, the warehouse and the live
envelope rely on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from chrom_platform.lib.io.objectstore import (
    GcsObjectStore,
    LocalObjectStore,
    ObjectStore,
    open_store,
)

BUCKET = "chrom-landing-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path, gcs_emulator, monkeypatch) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "lake")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    # a fresh prefix per test: the emulator's bucket is shared by the module
    s = open_store(f"gs://{BUCKET}/{tmp_path.name}")
    assert isinstance(s, GcsObjectStore)
    return s


def test_put_then_get_returns_the_same_bytes(store: ObjectStore) -> None:
    data = bytes(range(256)) * 100
    store.put("landing/readings/unit_id=SKID-01/date=2026-01-01/a.parquet", data)
    assert store.get("landing/readings/unit_id=SKID-01/date=2026-01-01/a.parquet") == data
    assert store.exists("landing/readings/unit_id=SKID-01/date=2026-01-01/a.parquet")
    assert not store.exists("landing/readings/unit_id=SKID-01/date=2026-01-01/b.parquet")


def test_re_putting_a_key_replaces_it(store: ObjectStore) -> None:
    store.put("analytics/golden_envelope.parquet", b"old")
    store.put("analytics/golden_envelope.parquet", b"new")
    assert store.get("analytics/golden_envelope.parquet") == b"new"
    assert [o.key for o in store.list("analytics")] == ["analytics/golden_envelope.parquet"]


def test_listing_is_by_folder_with_sizes_and_times(store: ObjectStore) -> None:
    store.put("landing/readings/unit_id=A/date=d1/x.parquet", b"12345")
    store.put("landing/readings/unit_id=B/date=d1/y.parquet", b"1")
    store.put("landing/readings_other/z.parquet", b"1")
    objs = sorted(store.list("landing/readings"), key=lambda o: o.key)
    assert [o.key for o in objs] == [
        "landing/readings/unit_id=A/date=d1/x.parquet",
        "landing/readings/unit_id=B/date=d1/y.parquet",
    ]
    assert objs[0].size == 5
    assert all(o.mtime_ns > 0 for o in objs)
    assert store.children("landing/readings") == ("unit_id=A", "unit_id=B")
    assert store.children("landing/readings/unit_id=A/date=d1") == ("x.parquet",)
    assert store.children("landing/nothing") == ()
    assert list(store.list("landing/nothing")) == []


def test_a_missing_key_is_a_clear_error(store: ObjectStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.get("landing/missing.json")


def test_keys_cannot_escape_the_root(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="escapes"):
        store.put("../outside", b"x")


def test_open_store_names_what_it_accepts() -> None:
    with pytest.raises(ValueError, match="gs://"):
        open_store("s3://bucket/x")


def test_a_move_lands_the_object_under_its_new_key_now(store: ObjectStore) -> None:
    store.put("staging/s1/landing/batch_events/a.json", b"event")
    store.put("landing/batch_events/b.json", b"old")
    before = {o.key: o.mtime_ns for o in store.list("landing")}
    store.move("staging/s1/landing/batch_events/a.json", "landing/batch_events/a.json")
    assert store.get("landing/batch_events/a.json") == b"event"
    assert not store.exists("staging/s1/landing/batch_events/a.json")
    assert list(store.list("staging")) == []
    moved = {o.key: o.mtime_ns for o in store.list("landing")}
    assert moved["landing/batch_events/a.json"] >= before["landing/batch_events/b.json"]
    # replacing: the moved object wins
    store.put("staging/s2/landing/batch_events/b.json", b"new")
    store.move("staging/s2/landing/batch_events/b.json", "landing/batch_events/b.json")
    assert store.get("landing/batch_events/b.json") == b"new"


def test_moving_what_is_gone_says_so_and_deleting_it_is_nothing(store: ObjectStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.move("staging/s1/missing.json", "landing/missing.json")
    assert not store.exists("landing/missing.json")
    store.put("staging/s1/x.json", b"x")
    store.delete("staging/s1/x.json")
    store.delete("staging/s1/x.json")
    assert not store.exists("staging/s1/x.json")
    assert store.children("staging") == ()
