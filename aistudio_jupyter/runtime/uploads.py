"""A small tus 1.0.0 client on httpx: resumable uploads that become dataset versions.

Each PATCH carries ``Upload-Checksum: sha256 …``, so a chunk damaged on the way is refused
whole (460) and sent again. After any failure the client asks the server (``HEAD``) where the
upload stands and continues from there: bytes the server acknowledged are never sent twice.
Which upload a file belongs to is remembered on disk, keyed by the file's fingerprint, so
calling ``upload()`` again after a crash — in another process — continues the same upload.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mimetypes
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .client import APIError

if TYPE_CHECKING:
    from .client import Client

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
#: answers after which the same request can succeed: a PATCH still in flight on the server
#: (423), a chunk damaged on the way (460), an outage (5xx but 501/505 and 507, which are final)
RETRY_STATUSES = frozenset({423, 460, 500, 502, 503, 504})
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def cache_dir() -> Path:
    """Where the client keeps its state: ``$AISTUDIO_CACHE_DIR``, else the user's cache dir."""
    configured = os.environ.get("AISTUDIO_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".cache" / "aistudio"
    return Path(platformdirs.user_cache_dir("aistudio", appauthor=False))


def backoff(attempt: int, retry_after: str | None = None, *, first: float = 0.25, cap: float = 20.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, …): the server's Retry-After, else doubling with jitter."""
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), 60.0)
    # jitter: many kernels cut off by the same outage should not come back in step
    return min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


class ResumeStore:
    """Unfinished uploads by file fingerprint, in a JSON file that only its user can read.

    Several processes may upload at once: every change is a read-modify-write under a lock
    file, written to a temporary file and renamed over the old one.
    """

    def __init__(self, path: Path | None = None, *, max_age: float = 7 * 24 * 3600.0):
        self.path = path or cache_dir() / "uploads.json"
        self.max_age = max_age

    def get(self, key: str) -> dict | None:
        with self._locked():
            return self._read().get(key)

    def put(self, key: str, entry: dict) -> None:
        with self._locked():
            entries = self._read()
            entries[key] = {**entry, "saved_at": time.time()}
            self._write(entries)

    def forget(self, key: str) -> None:
        with self._locked():
            entries = self._read()
            if entries.pop(key, None) is not None:
                self._write(entries)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl
            except ImportError:  # Windows: last writer wins, at worst an upload starts over
                fcntl = None
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get("uploads") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        # the server expires unfinished uploads long before this; older entries are dead weight
        now = time.time()
        return {k: v for k, v in entries.items() if isinstance(v, dict) and now - float(v.get("saved_at", 0)) < self.max_age}

    def _write(self, entries: dict[str, dict]) -> None:
        # mkstemp creates the file 0600: upload ids and file paths are the user's business
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".uploads-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "uploads": entries}, f, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def fingerprint(path: Path, server: str, target: dict[str, str]) -> str:
    """One file's identity for resuming: absolute path, size, mtime and sha256 of its first MiB, plus where it goes."""
    stat = path.stat()
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(MiB)).hexdigest()
    ident = [server, str(path.resolve()), stat.st_size, stat.st_mtime_ns, head, sorted(target.items())]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


def encode_metadata(values: dict[str, str]) -> str:
    """tus ``Upload-Metadata``: ``key base64(value)`` pairs separated by commas."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_bar(progress: bool | Callable, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar (a widget in notebooks, text in terminals), the ``progress`` class's, or none."""
    if not progress:
        return _NoBar()
    if callable(progress):
        factory = progress
    else:
        from tqdm.auto import tqdm as factory
    return factory(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


class TusUpload:
    """One file sent to ``/uploads``; ``run()`` returns the dataset version it became."""

    def __init__(self, client: Client, path: Path, metadata: dict[str, str], *, chunk_size: int = 8 * MiB, progress: bool | Callable = True,
                 retries: int = 8, store: ResumeStore | None = None, desc: str | None = None):
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1 byte.")
        self.client, self.path, self.chunk_size, self.progress, self.retries = client, path, chunk_size, progress, retries
        self.metadata = {"filename": path.name, **metadata}
        guessed = mimetypes.guess_type(path.name)[0]
        if guessed and "content_type" not in self.metadata:
            self.metadata["content_type"] = guessed
        self.store = store
        self.desc = desc or path.name
        self.key: str | None = None
        self.upload_id: str | None = None
        self._attempt = 0

    # -- the whole upload ---------------------------------------------------------------------

    def run(self) -> dict:
        """Create (or resume) the upload, send what the server lacks, return the version's JSON."""
        before = self.path.stat()
        if self.store is not None:
            target = {k: v for k, v in self.metadata.items() if k in ("dataset", "name", "visibility", "team")}
            self.key = fingerprint(self.path, self.client.url, target)
        offset = self._resume()
        if offset is None:
            offset = self._create(before.st_size)
        bar = make_bar(self.progress, before.st_size, offset, self.desc)
        try:
            with open(self.path, "rb") as f:
                version = self._send(f, before.st_size, offset, bar)
        finally:
            bar.close()
        after = self.path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise RuntimeError(
                f"{self.path} changed while it was uploading: version {version['version']} of {version['dataset_id']} "
                f"(sha256 {version['sha256']}) may hold a mix of old and new bytes. Upload it again once it is stable."
            )
        return version

    def _send(self, f, size: int, offset: int, bar) -> dict:
        http = self.client.http
        url = f"/uploads/{self.upload_id}"
        # what the bar shows, kept here: a disabled tqdm bar does not count

        def show(position: int) -> None:
            nonlocal shown
            if position != shown:
                bar.update(position - shown)
                shown = position

        shown = offset
        while True:
            if offset == size:
                # all bytes are there: either completed (a reply lost) or waiting for its final PATCH
                try:
                    done = self._state()
                except ConnectionError as exc:
                    offset = self._recover(exc)
                    show(offset)
                    continue
                if done["state"] == "completed":
                    return self._finish(done["dataset_id"], done["version"])
            f.seek(offset)
            data = f.read(min(self.chunk_size, size - offset))
            if len(data) < min(self.chunk_size, size - offset):
                raise RuntimeError(f"{self.path} shrank while it was uploading; upload it again once it is stable.")
            headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_STREAM}
            if data:
                headers["Upload-Checksum"] = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
            try:
                reply = http.patch(url, content=data, headers=headers)
            except httpx.TransportError as exc:
                offset = self._recover(exc)
                show(offset)
                continue
            if reply.status_code == 204:
                offset = int(reply.headers["Upload-Offset"])
                self._attempt = 0
                show(offset)
                if reply.headers.get("AIStudio-Version"):
                    return self._finish(reply.headers["AIStudio-Dataset"], int(reply.headers["AIStudio-Version"]))
                continue
            if reply.status_code in RETRY_STATUSES or reply.status_code == 409:
                # 409: the server is at another offset than we thought; it says which with HEAD
                offset = self._recover(reply)
                show(offset)
                continue
            self._forget()
            raise self.client.error(reply)

    def _finish(self, dataset_id: str, version: int) -> dict:
        out = self.client.request("GET", f"/datasets/{dataset_id}/versions/{version}")
        # only now: until the version is in hand, calling upload() again must find it, not upload twice
        self._forget()
        return out

    # -- creation and resumption ----------------------------------------------------------------

    def _resume(self) -> int | None:
        """The offset of this file's unfinished upload, when one is remembered and still alive."""
        if self.key is None or self.store is None:
            return None
        entry = self.store.get(self.key)
        upload_id = (entry or {}).get("upload_id")
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            return None
        self.upload_id = upload_id
        try:
            try:
                return self._head()
            except httpx.TransportError as exc:
                return self._recover(exc)
        except APIError as exc:
            if exc.status in (404, 410):  # expired, failed or deleted: start over
                self._forget()
                self.upload_id = None
                self._attempt = 0
                return None
            raise

    def _create(self, size: int) -> int:
        headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": encode_metadata(self.metadata)}
        while True:
            try:
                reply = self.client.http.post("/uploads", headers=headers)
            except httpx.TransportError as exc:
                self._wait(exc)
                continue
            if reply.status_code == 201:
                break
            if reply.status_code in RETRY_STATUSES:
                self._wait(reply)
                continue
            raise self.client.error(reply)
        self._attempt = 0
        upload_id = reply.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
        if not _UPLOAD_ID.match(upload_id):
            raise RuntimeError(f"The server answered an upload URL this client cannot use: {reply.headers.get('Location')!r}.")
        # by id, not by the Location URL: requests (and the token) only ever go to the configured server
        self.upload_id = upload_id
        if self.store is not None and self.key is not None:
            self.store.put(self.key, {"upload_id": upload_id, "url": f"{self.client.url}/uploads/{upload_id}", "path": str(self.path.resolve()), "size": size})
        return int(reply.headers.get("Upload-Offset", "0"))

    def _head(self) -> int:
        """The server's offset; APIError when the upload is gone (404, 410) or refused."""
        reply = self.client.http.head(f"/uploads/{self.upload_id}", headers=TUS)
        if reply.status_code == 200:
            return int(reply.headers["Upload-Offset"])
        if reply.status_code == 410:
            raise self._gone()
        if reply.status_code == 404:
            raise APIError(404, "not_found", f"Upload {self.upload_id} no longer exists on the server (deleted, or cleaned up after it ended).")
        raise self.client.error(reply)

    def _gone(self) -> APIError:
        # HEAD answers carry no body: the upload's JSON says why it failed
        try:
            state = self.client.request("GET", f"/uploads/{self.upload_id}")
            reason = state.get("error") or state.get("state")
        except APIError:
            reason = "it failed or expired"
        return APIError(410, "gone", f"Upload {self.upload_id} can no longer be continued: {reason}.", {"id": self.upload_id})

    def _state(self) -> dict:
        return self.client.request("GET", f"/uploads/{self.upload_id}")

    def _recover(self, cause: Exception | httpx.Response) -> int:
        """Wait, then ask the server where the upload stands; give up after ``retries`` tries."""
        while True:
            self._wait(cause)
            try:
                return self._head()
            except httpx.TransportError as exc:
                cause = exc
            except APIError as exc:
                if exc.status in RETRY_STATUSES:
                    cause = exc
                    continue
                self._forget()
                if isinstance(cause, httpx.Response) and 400 <= cause.status_code < 500 and exc.status == 410:
                    # the PATCH's own answer (e.g. a 409 from a name taken meanwhile) says it best
                    raise self.client.error(cause) from None
                raise

    def _wait(self, cause: Any) -> None:
        self._attempt += 1
        if self._attempt > self.retries:
            if isinstance(cause, httpx.Response):
                raise self.client.error(cause)
            if isinstance(cause, APIError):
                raise cause
            raise ConnectionError(f"Upload to {self.client.url} failed after {self.retries} retries: {cause!r}. Call upload() again to resume it.") from cause
        retry_after = cause.headers.get("Retry-After") if isinstance(cause, httpx.Response) else None
        time.sleep(backoff(self._attempt, retry_after))

    def _forget(self) -> None:
        if self.store is not None and self.key is not None:
            self.store.forget(self.key)
