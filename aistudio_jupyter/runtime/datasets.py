"""``ais.datasets``: upload files and DataFrames as dataset versions, read them back.

``ais.datasets.get("iris")`` answers a ``Dataset``: the same dict-with-attributes record as
every other collection's, plus its versions, downloads and ``to_pandas()``/``to_arrow()``.
Reading never hands a URL or a user's string to ``pandas.read_*`` (which would open
``http://``, ``s3://`` or ``file://`` for whoever wrote it): the bytes are downloaded to a
temporary file first and pyarrow reads that file by the format the server detected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import validation
from .client import APIError, Record, Resources, _id_of
from .profiles import Profile
from .uploads import MiB, ResumeStore, TusUpload, backoff
from .validation import ValidationReport

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from .client import Client

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Dataset(Record):
    """A dataset record that can also list, download, read and add versions."""

    def __init__(self, datasets: Datasets | None, data: dict):
        super().__init__(data)
        # an attribute, not a key: the record stays exactly what the API returned
        object.__setattr__(self, "_datasets", datasets)

    def _collection(self) -> Datasets:
        if self._datasets is None:  # unpickled: bind to the default client
            from .client import client

            object.__setattr__(self, "_datasets", client().datasets)
        return self._datasets

    @property
    def _client(self) -> Client:
        return self._collection()._client

    def __reduce__(self):
        # the connection does not travel; the record does
        return (_restore, (dict(self),))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook, a dataset shows as a DatasetExplorer; elsewhere (or if the widget
        cannot be built) as its plain repr. Never raises. The profile is left to the grid's
        Statistics button: a first profile of a large version takes long for a repr."""
        try:
            from ..widgets.base import repr_bundle
            from ..widgets.explorer import DatasetExplorer
        except Exception:  # anywidget missing: the plain repr is still a repr
            return {"text/plain": repr(self)}
        return repr_bundle(lambda: DatasetExplorer(self, profile=False), repr(self), **kwargs)

    def refresh(self) -> Dataset:
        """Read the record again from the server (after uploads, or changes elsewhere)."""
        fresh = self._client.request("GET", f"/datasets/{self['id']}")
        self.clear()
        self.update(fresh)
        return self

    def versions(self) -> list[Record]:
        """Every version, oldest first (``versions()[-1]`` is the latest)."""
        out: list[Record] = []
        params: dict[str, Any] = {"sort": "version", "limit": 500}
        while True:
            page = self._client.request("GET", f"/datasets/{self['id']}/versions", params=params)
            out.extend(Record(v) for v in page["items"])
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    def version(self, n: int | None = None) -> Record:
        """Version ``n``, or the latest."""
        return Record(self._client.request("GET", f"/datasets/{self['id']}/versions/{_version_ref(n)}"))

    def download(self, path: str | os.PathLike, version: int | None = None) -> Path:
        """Stream a version's file to ``path`` (a file, or a directory to put it in); returns where it went.

        The bytes are checked against the version's sha256 before they replace ``path``; a
        dropped connection resumes where it stopped (versions are immutable, so ranges are safe).
        """
        return self._save(self.version(version), Path(path).expanduser())

    def _save(self, v: Record, dest: Path) -> Path:
        if dest.is_dir():
            # never the uploader's file name: it could be ".bashrc" or "../x"
            stem = _UNSAFE.sub("_", self["name"]).lstrip("._-") or "dataset"
            dest = dest / f"{stem}-v{v['version']}.{v['format']}"
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                digest = _fetch(self._client, f"/datasets/{self['id']}/versions/{v['version']}/download", f, v["size_bytes"])
            if digest != v["sha256"]:
                raise RuntimeError(f"The download of {self['id']} version {v['version']} is corrupt: sha256 {digest}, expected {v['sha256']}.")
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return dest

    def to_arrow(self, version: int | None = None) -> pyarrow.Table:
        """A version as a ``pyarrow.Table`` (CSV, TSV, Parquet, JSON, JSONL and Arrow files)."""
        v = self.version(version)
        if v["format"] == "zip":
            raise TypeError(f"Version {v['version']} of {self['name']!r} is a zip of images, not a table.")
        with tempfile.TemporaryDirectory(prefix="aistudio-") as tmp:
            path = self._save(v, Path(tmp) / f"data.{v['format']}")
            return read_table(path, v["format"], v.get("schema") or {})

    def to_pandas(self, version: int | None = None) -> pandas.DataFrame:
        """A version as a ``pandas.DataFrame`` (through ``to_arrow``; a DataFrame uploaded gets its index back)."""
        return self.to_arrow(version).to_pandas()

    def upload(self, source: Any, **options: Any) -> Record:
        """Add ``source`` (a path or a DataFrame) as this dataset's next version; options as in ``ais.datasets.upload``."""
        version = self._collection().upload(source, dataset=self["id"], **options)
        self.refresh()
        return version

    def validate(self, rules: list[dict] | None = None, *, version: int | str = "latest", wait: bool = True, timeout: float = 600) -> ValidationReport:
        """Check a version against ``rules`` (plus the automatic checks) on the server; returns the report.

        A rule is a dict such as ``{"check": "unique", "column": "id"}`` or ``{"check": "range",
        "column": "age", "min": 0, "max": 120, "severity": "warning"}``. With ``wait`` (the
        default) this returns once the report has run (``report.passed``); otherwise at once,
        with ``report.wait()`` to call later.
        """
        ref = version if version == "latest" else int(_version_ref(version))
        return validation.validate(self._client, self["id"], rules, ref, wait, timeout)

    def profile(self, version: int | str | None = "latest") -> Profile:
        """Per-column statistics of a version, computed by the server once and kept: types, counts,
        nulls, distinct values, range, mean/std, quantiles, top values and histograms."""
        ref = _version_ref(None if version == "latest" else version)
        return Profile(self._client.request("GET", f"/datasets/{self['id']}/profile", params={"version": ref}))

    def to_torch(self, batch_size: int = 1024, columns: list[str] | None = None, target: str | None = None, version: int | str | None = "latest", shuffle: bool = False, seed: int | None = None):
        """A ``torch.utils.data.IterableDataset`` streaming a version in batches of ``batch_size`` rows.

        Each item is a batch: ``{column: tensor}``, or ``(features, target)`` when ``target``
        names a column (features: the other columns, stacked as float32). The file is downloaded
        once into the client's cache and read a record batch at a time, never whole. Use
        ``DataLoader(ds, batch_size=None, num_workers=k)``: the workers split the batches between
        them, each row once per epoch. ``shuffle`` mixes rows within a window of batches.
        """
        from .torch_data import batch_stream

        v = self.version(None if version == "latest" else version)
        if v["format"] == "zip":
            raise TypeError(f"Version {v['version']} of {self['name']!r} is a zip of images, not a table.")
        return batch_stream(self._cached(v), v["format"], v.get("schema") or {}, batch_size=batch_size, columns=columns, target=target, shuffle=shuffle, seed=seed)

    def _cached(self, v: Record) -> Path:
        """A version's file in the client's cache, downloaded once: named by its sha256, it never goes stale."""
        from .uploads import cache_dir

        folder = cache_dir() / "datasets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{v['sha256']}.{v['format']}"
        if not path.is_file():
            self._save(v, path)
        return path


def _restore(data: dict) -> Dataset:
    return Dataset(None, data)


def _version_ref(n: int | None) -> str:
    if n is None:
        return "latest"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"A version is a positive int (or None for the latest), not {n!r}.")
    return str(n)


class Datasets(Resources):
    """``ais.datasets``: the collection, plus ``upload``; ``get``/``list`` answer ``Dataset`` handles."""

    def __init__(self, client: Client):
        super().__init__(client, "datasets")

    def _record(self, data: dict) -> Dataset:
        return Dataset(self, data)

    def upload(self, source: Any, name: str | None = None, dataset: str | dict | None = None, *, description: str | None = None,
               visibility: str | None = None, team: str | None = None, chunk_size: int = 8 * MiB, progress: bool | Callable = True,
               retries: int = 8) -> Record:
        """Upload a file (a path) or a pandas DataFrame / pyarrow Table as a dataset version; returns the version.

        ``name`` creates a new dataset (a path defaults to its file name without suffix);
        ``dataset`` (an id, a name, or a record) adds the next version to an existing one. The
        upload is resumable: after a crash or a dropped connection, calling ``upload`` again
        with the same file continues where the server stopped. ``progress`` is True (a tqdm
        bar), False, or a tqdm-like class to use. A DataFrame is sent as Parquet.
        """
        if name is not None and dataset is not None:
            raise ValueError("Pass name (to create a dataset) or dataset (to add a version to one), not both.")
        metadata: dict[str, str] = {}
        if dataset is not None:
            metadata["dataset"] = self._resolve(dataset)
        for key, value in (("description", description), ("visibility", visibility), ("team", team)):
            if value is not None:
                metadata[key] = value
        table = _as_table(source)
        if table is None:
            path = Path(source).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"No file at {path}.")
            if dataset is None:
                metadata["name"] = name or path.stem
            upload = TusUpload(self._client, path, metadata, chunk_size=chunk_size, progress=progress, retries=retries, store=ResumeStore())
            return Record(upload.run())
        if dataset is None:
            if not name:
                raise ValueError("Name the new dataset: ais.datasets.upload(df, name='…') (or pass dataset= to add a version).")
            metadata["name"] = name
        with tempfile.TemporaryDirectory(prefix="aistudio-") as tmp:
            path = Path(tmp) / f"{_UNSAFE.sub('_', name or 'dataframe')}.parquet"
            import pyarrow.parquet as pq

            pq.write_table(table, path)
            # a temporary file is never seen again after a crash: nothing to remember for it
            upload = TusUpload(self._client, path, metadata, chunk_size=chunk_size, progress=progress, retries=retries, store=None, desc=name or "DataFrame")
            return Record(upload.run())

    def _resolve(self, dataset: str | dict) -> str:
        if isinstance(dataset, dict):
            return _id_of(dataset)
        return dataset if self._id.match(dataset) else self.get(dataset)["id"]


def _as_table(source: Any) -> pyarrow.Table | None:
    """A DataFrame or Table as an Arrow table (index kept as pandas metadata); None for a path."""
    if isinstance(source, (str, os.PathLike)):
        return None
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(source, pandas.DataFrame):
        import pyarrow as pa

        return pa.Table.from_pandas(source)
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(source, pa.Table):
        return source
    raise TypeError(f"upload() takes a file path, a pandas DataFrame or a pyarrow Table, not {type(source).__name__}.")


def read_table(path: Path, fmt: str, schema: dict) -> pyarrow.Table:
    """Read a downloaded file by its detected format; ``path`` is always our own temporary file."""
    import pyarrow as pa

    # a NativeFile, never a string: pyarrow would read "s3://…" strings as URIs
    with pa.OSFile(str(path), "rb") as f:
        if fmt in ("csv", "tsv"):
            import pyarrow.csv as pacsv

            # quoted fields may hold newlines; the server's sniffer accepts them, so must we
            parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
            return pacsv.read_csv(f, parse_options=parse)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(f)
        if fmt == "jsonl":
            import pyarrow.json as pajson

            return pajson.read_json(f)
        if fmt == "arrow":
            reader = pa.ipc.open_stream(f) if schema.get("ipc") == "stream" else pa.ipc.open_file(f)
            return reader.read_all()
        if fmt == "json":
            return _json_table(json.loads(f.read()))
    raise TypeError(f"Files in the {fmt!r} format are not tables.")


def _json_table(value: Any) -> pyarrow.Table:
    import pyarrow as pa

    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        return pa.Table.from_pylist(value)
    if isinstance(value, dict) and value and all(isinstance(c, list) for c in value.values()):
        return pa.table(value)  # column-oriented: {"a": [...], "b": [...]}
    raise TypeError("This JSON file is not a table: it is neither a list of records nor an object of columns.")


def _fetch(client: Client, url: str, f, size: int, retries: int = 8) -> str:
    """Stream ``url`` into ``f``, resuming with Range after a dropped connection; returns the sha256."""
    hasher, written, attempt = hashlib.sha256(), 0, 0
    while written < size:
        headers = {"Range": f"bytes={written}-"} if written else {}
        try:
            with client.http.stream("GET", url, headers=headers) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise client.error(reply)
                if written and reply.status_code != 206:  # the whole file again: start over
                    f.seek(0)
                    f.truncate()
                    hasher, written = hashlib.sha256(), 0
                for chunk in reply.iter_bytes(MiB):
                    f.write(chunk)
                    hasher.update(chunk)
                    written += len(chunk)
                    attempt = 0
        except httpx.TransportError as exc:
            attempt += 1
            if attempt > retries:
                raise ConnectionError(f"Download from {client.url} failed after {retries} retries: {exc!r}.") from exc
            time.sleep(backoff(attempt))
            continue
        if written < size:  # the server ended early without an error: count it as one
            attempt += 1
            if attempt > retries:
                raise APIError(502, "short_download", f"The server sent {written} of {size} bytes.")
    return hasher.hexdigest()
