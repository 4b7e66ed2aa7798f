"""Object store for the landing zone: one interface, a local-folder adapter (local profile).

Keys are the same in every adapter (see contracts.py). `put` is atomic and durable before it
returns: a reader never sees half an object, and a consumer that acknowledges a message
after `put` returns cannot lose it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


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
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
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
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

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
                if name.startswith(".tmp-"):
                    continue
                p = Path(dirpath) / name
                st = p.stat()
                yield ObjectInfo(str(p.relative_to(self.root)), st.st_size, st.st_mtime_ns)

    def children(self, prefix: str) -> tuple[str, ...]:
        base = self.root / prefix
        if not base.is_dir():
            return ()
        return tuple(sorted(e.name for e in os.scandir(base) if not e.name.startswith(".tmp-")))


def open_store(uri: str) -> ObjectStore:
    """An object store for a URI: a path or file:// URI (local folder)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalObjectStore(parsed.path if parsed.scheme else uri)
    raise ValueError(
        f"unsupported landing URI {uri!r}: the local profile takes a folder path or file:// URI"
    )
