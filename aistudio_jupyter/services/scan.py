"""A stored dataset version as something DuckDB scans without loading it whole.

Rows, profiles and validation all read versions this way: ``ScanService.source`` resolves and
authorises the version, ``ScanService.open`` hands back a ``Scannable`` whose ``relation(con)``
is the FROM expression (and bound parameters) for a DuckDB connection.

Where the bytes are decides how they are read:

- local storage: the file itself (DuckDB's CSV/Parquet/JSON readers; Arrow IPC through a
  memory-mapped pyarrow dataset);
- S3, Parquet and Arrow IPC files: a pyarrow dataset over ``S3FileSystem`` (ranged reads of
  the row groups and columns a query needs), configured from the storage's own endpoint,
  region and credentials. DuckDB's httpfs is not used: it downloads an extension at run time;
- S3, text formats (CSV, TSV, JSON, JSONL): a local read-through copy of the blob. Blobs are
  content-addressed, so a copy named by its sha256 is valid for ever; it is checked while
  filled, published by an atomic rename, and the cache stays under ``cache_bytes`` by evicting
  the least recently used copies that no scan holds.

Only paths we build (from hashes) ever reach SQL text, and as bound parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from jupyter_core.paths import jupyter_data_dir
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Int, Unicode, default
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, UnsupportedMediaType
from ..identity import Principal
from ..store import orm
from . import access
from .versions import blob_key

#: formats DuckDB reads as a table
SCANNABLE = ("csv", "tsv", "parquet", "json", "jsonl", "arrow")
#: formats read from a local copy when the bytes are on S3 (no ranged reads help a text scan)
TEXT_FORMATS = ("csv", "tsv", "json", "jsonl")
_CHUNK = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Source:
    """One version of one dataset, as stored."""

    dataset_id: str
    version_id: str
    version: int
    format: str
    schema: dict
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return blob_key(self.sha256)


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def connect(memory_limit: str, threads: int, database: str = ":memory:", temp_directory: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory and thread cap (and where to spill beyond the cap)."""
    config: dict[str, Any] = {"memory_limit": memory_limit, "threads": threads}
    if temp_directory:
        config["temp_directory"] = temp_directory
    return duckdb.connect(database, config=config)


@dataclasses.dataclass
class Scannable:
    """A version ready for DuckDB: a local file (``path``) or a remote pyarrow dataset (``arrow``)."""

    source: Source
    path: str | None = None
    arrow: Any = None

    def relation(self, con: duckdb.DuckDBPyConnection, name: str = "arrow_source") -> tuple[str, list]:
        """The FROM expression reading this version and its bound parameters."""
        fmt, schema = self.source.format, self.source.schema
        if self.arrow is not None:
            con.register(name, self.arrow)
            return name, []
        if fmt in ("csv", "tsv"):
            delimiter = schema.get("delimiter") or ("\t" if fmt == "tsv" else ",")
            return "read_csv(?, delim = ?, header = true)", [self.path, delimiter]
        if fmt == "parquet":
            return "read_parquet(?)", [self.path]
        if fmt in ("json", "jsonl"):
            return "read_json_auto(?)", [self.path]
        import pyarrow.dataset as pads

        # a memory-mapped dataset: DuckDB scans it batch by batch
        con.register(name, pads.dataset(self.path, format="arrow"))
        return name, []


class BlobCache:
    """Local copies of blobs, named by sha256, at most ``max_bytes`` of them (least recently used go first)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._filling: dict[str, threading.Lock] = {}
        self._pinned: dict[str, int] = {}

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256")
        return self.root / sha256[:2] / sha256

    @contextlib.contextmanager
    def pinned(self, storage, sha256: str, size: int) -> Iterator[Path]:
        """A local copy of the blob, kept from eviction while the block runs."""
        path = self.path_of(sha256)
        with self._lock:
            self._pinned[sha256] = self._pinned.get(sha256, 0) + 1
            filling = self._filling.setdefault(sha256, threading.Lock())
        try:
            with filling:  # one download per blob; the others wait for it
                if path.is_file():
                    os.utime(path)  # recently used
                else:
                    self._fill(storage, sha256, size, path)
            self._evict(size)
            yield path
        finally:
            with self._lock:
                self._pinned[sha256] -= 1
                if not self._pinned[sha256]:
                    del self._pinned[sha256]
                    self._filling.pop(sha256, None)

    def _fill(self, storage, sha256: str, size: int, path: Path) -> None:
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, storage.open_reader(blob_key(sha256)) as reader:
                while chunk := reader.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != sha256:
                raise Conflict("The stored blob does not match its hash; it was not cached.", {"sha256": sha256})
            os.replace(tmp, path)  # a copy is visible whole or not at all
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _evict(self, incoming: int) -> None:
        """Drop the least recently used unpinned copies until the cache fits (the newest always stays)."""
        with self._lock:
            entries = []
            for sub in self.root.glob("[0-9a-f][0-9a-f]"):
                for f in sub.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        st = f.stat()
                        entries.append((st.st_mtime, st.st_size, f))
            total = sum(size for _, size, _ in entries)
            for _, size, f in sorted(entries, key=lambda e: e[0]):
                if total <= self.max_bytes:
                    break
                if f.name in self._pinned:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
                total -= size


def s3_filesystem(storage):
    """A pyarrow ``S3FileSystem`` reaching the same bucket as ``storage`` (an ``S3Storage``), with its credentials."""
    from urllib.parse import urlsplit

    import pyarrow.fs as pafs

    client = storage.client
    credentials = client._request_signer._credentials  # the very chain the storage resolved
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    options: dict[str, Any] = {"region": client.meta.region_name or "us-east-1"}
    if frozen is not None:
        options.update(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
    else:
        options["anonymous"] = True
    endpoint = urlsplit(client.meta.endpoint_url)
    if not endpoint.hostname.endswith("amazonaws.com"):
        # MinIO, Ceph, moto: the configured endpoint, path-style as the storage uses it
        options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme, force_virtual_addressing=False)
    return pafs.S3FileSystem(**options)


class ScanService(LoggingConfigurable):
    """Finds, authorises and opens stored versions for DuckDB scans."""

    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage holding the bytes.")
    versions = AnyTrait(help="The VersionService (resolves 'latest' and version numbers).")
    cache_dir = Unicode(config=True, help="Local copies of S3-stored text files for scanning (default: <jupyter data dir>/aistudio/cache/blobs).")
    cache_bytes = Int(20 * 1024**3, config=True, help="Most bytes the local copies of S3-stored files may take; least recently used go first.")

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "aistudio" / "cache" / "blobs")

    _cache: BlobCache | None = None

    @property
    def cache(self) -> BlobCache:
        if self._cache is None:
            self._cache = BlobCache(Path(self.cache_dir), self.cache_bytes)
        return self._cache

    def work_dir(self) -> str:
        """A local directory for scratch files (DuckDB spills, temporary databases)."""
        path = Path(self.cache_dir).parent / "work"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return str(path)

    async def source(self, who: Principal, dataset_id: str, version: str) -> Source:
        """The version ``who`` may read (404 if they may not), refusing what is not a table (415)."""
        return await self.db.run(self.source_in, who, dataset_id, version)

    def source_in(self, session: Session, who: Principal, dataset_id: str, version: str) -> Source:
        """``source`` inside a caller's transaction."""
        dataset = access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        if dataset.latest_version == 0:
            raise Conflict(f"Dataset {dataset_id!r} has no versions yet: upload a file first.", {"id": dataset_id})
        row = self.versions._load(session, who, dataset_id, version)
        source = Source(dataset.id, row.id, row.version, row.format, dict(row.schema_ or {}), row.sha256, row.size_bytes)
        if source.format not in SCANNABLE:
            raise UnsupportedMediaType(f"Only tabular files (csv, tsv, parquet, json, jsonl, arrow) can be read as rows; this version is {source.format}.", {"format": source.format})
        if source.format == "arrow" and source.schema.get("ipc", "file") != "file":
            raise UnsupportedMediaType("Rows can be read from Arrow IPC files, not streams.", {"format": source.format})
        return source

    @contextlib.contextmanager
    def open(self, source: Source) -> Iterator[Scannable]:
        """The version as a ``Scannable`` for the block's duration; blocking (call it in a worker thread)."""
        path = self.storage.local_path(source.key)
        if path is not None:
            yield Scannable(source, path=str(path))
            return
        if source.format not in TEXT_FORMATS and hasattr(self.storage, "client"):
            import pyarrow.dataset as pads

            remote = f"{self.storage.bucket}/{self.storage.name(source.key)}"
            fmt = "parquet" if source.format == "parquet" else "arrow"
            yield Scannable(source, arrow=pads.dataset(remote, filesystem=s3_filesystem(self.storage), format=fmt))
            return
        with self.cache.pinned(self.storage, source.sha256, source.size) as local:
            yield Scannable(source, path=str(local))
