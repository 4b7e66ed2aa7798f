"""Object store for the landing zone: one interface, a local-folder adapter (local profile)
and a GCS adapter (gcp profile).

Keys are the same in every adapter (see contracts.py). `put` is atomic and durable before it
returns: a reader never sees half an object, and a consumer that acknowledges a message
after `put` returns cannot lose it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

#: Name prefix of an object being written (a local folder writes, then renames).
PARTIAL_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int


class ObjectStore(Protocol):
    uri: str

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def children(self, prefix: str) -> tuple[str, ...]:
        """Names one level below `prefix/` (a delimiter listing: folders and objects)."""
        ...

    def move(self, src: str, dst: str) -> None:
        """`src`'s object to `dst`, replacing it; landed (timestamped) now. FileNotFoundError
        when `src` is gone (another mover was first)."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; nothing if it is gone already."""
        ...


class LocalObjectStore:
    """A folder. Writes go to a temporary file in the target folder, then rename (atomic)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = self.root.as_uri()

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents:
            raise ValueError(f"key {key!r} escapes the store root")
        return p

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # a hidden name with no object suffix: a writer killed before the rename leaves a
        # file no reader's pattern (`*.parquet`, `*.json`) or listing ever takes for an object
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX, suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if durable:
            _fsync_dir(target.parent)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.startswith(PARTIAL_PREFIX):
                    continue
                p = Path(dirpath) / name
                st = p.stat()
                yield ObjectInfo(str(p.relative_to(self.root)), st.st_size, st.st_mtime_ns)

    def children(self, prefix: str) -> tuple[str, ...]:
        base = self.root / prefix
        if not base.is_dir():
            return ()
        return tuple(
            sorted(e.name for e in os.scandir(base) if not e.name.startswith(PARTIAL_PREFIX))
        )

    def move(self, src: str, dst: str) -> None:
        source, target = self.path(src), self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)  # FileNotFoundError when another mover was first
        # a move is when the object lands: its time is what listings and the warehouse see
        os.utime(target)
        _fsync_dir(target.parent)
        self._prune(source.parent)

    def delete(self, key: str) -> None:
        p = self.path(key)
        p.unlink(missing_ok=True)
        self._prune(p.parent)

    def _prune(self, folder: Path) -> None:
        """Remove `folder` and its parents below the root while they are empty."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): a folder someone still uses
                return
            folder = folder.parent


def _fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable."""
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class GcsObjectStore:
    """A GCS bucket (and optional prefix) through google-cloud-storage.

    A GCS upload is atomic (readers see the old object or the new one, never part) and
    durable when the call returns, so `put` needs no temporary name. Credentials are the
    environment's (Workload Identity or GOOGLE_APPLICATION_CREDENTIALS); the
    STORAGE_EMULATOR_HOST variable points the client at an emulator (the contract tests).
    Re-putting a key overwrites it: landing's deterministic names rely on that, so writers
    need roles/storage.objectUser on the bucket (infra/gcp)."""

    def __init__(self, uri: str, client: Any = None) -> None:
        from google.cloud import storage

        parsed = urlparse(uri)
        if parsed.scheme != "gs" or not parsed.netloc:
            raise ValueError(f"expected gs://<bucket>[/prefix], got {uri!r}")
        self.uri = uri.rstrip("/")
        self.prefix = parsed.path.strip("/")
        if client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(credentials=AnonymousCredentials(), project="emulator")
            else:
                client = storage.Client()
        self.client = client
        self.bucket = client.bucket(parsed.netloc)

    def _name(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"key {key!r} escapes the store root")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(data)

    def get(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self.bucket.blob(self._name(key)).download_as_bytes())
        except NotFound:
            raise FileNotFoundError(f"{self.uri}/{key}") from None

    def exists(self, key: str) -> bool:
        return bool(self.bucket.blob(self._name(key)).exists())

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # folder semantics, as the local store's: "a/b" lists a/b/..., not a/bc
        base = self._name(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        if not base and self.prefix:
            base = self.prefix + "/"
        for blob in self.client.list_blobs(self.bucket, prefix=base or None):
            updated = blob.updated
            mtime_ns = int(updated.timestamp() * 1e9) if updated is not None else 0
            yield ObjectInfo(self._key(blob.name), int(blob.size or 0), mtime_ns)

    def children(self, prefix: str) -> tuple[str, ...]:
        base = self._name(prefix.rstrip("/")) + "/"
        it = self.client.list_blobs(self.bucket, prefix=base, delimiter="/")
        names = [b.name[len(base) :] for b in it]
        names += [p[len(base) :].rstrip("/") for p in it.prefixes]
        return tuple(sorted(n for n in names if n))

    def move(self, src: str, dst: str) -> None:
        # GCS has no rename: a server-side copy (the copy's time is now), then the delete
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self._name(src))
        try:
            self.bucket.copy_blob(blob, self.bucket, self._name(dst))
        except NotFound:
            raise FileNotFoundError(f"{self.uri}/{src}") from None
        self.delete(src)

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self.bucket.blob(self._name(key)).delete()


def open_store(uri: str) -> ObjectStore:
    """An object store for a URI: a path or file:// URI (local folder), gs:// (GCS)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalObjectStore(parsed.path if parsed.scheme else uri)
    if parsed.scheme == "gs":
        return GcsObjectStore(uri)
    raise ValueError(
        f"unsupported landing URI {uri!r}: expected a folder path, file:// or gs://<bucket>"
    )
