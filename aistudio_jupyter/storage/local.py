"""Local-disk storage: one file per key under a root directory given as ``file:///path``.

Durability: a write lands in ``<root>/.tmp`` (same filesystem as its destination, so the final
``os.replace`` is atomic), is fsynced, renamed, and the destination directory is fsynced so the
rename itself survives a crash. Resumable uploads append to ``<root>/.staging/<sha256(key)>``;
``sync`` fsyncs before the caller acknowledges, and resuming truncates the file back to the
acknowledged offset, so bytes written but never acknowledged cannot leak into the object.
Directories are created 0o700 and files 0o600: the root may hold every user's data.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_mod
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import Conflict, InsufficientStorage, NotFound, Unavailable
from .base import AppendState, ObjectInfo, Reader, Storage, check_key, check_prefix, check_range, check_state, is_key

BACKEND = "local"


def root_from_url(url: str) -> Path:
    """``file:///srv/aistudio`` → ``/srv/aistudio``; anything else is a configuration error."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ValueError(f"local storage needs a file:///absolute/path URL, got {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"local storage needs an absolute path, got {url!r}")
    return Path(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _disk_errors(key: str):
    """Turn the OS errors a client can be told about into domain errors."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NotFound("no such object", {"key": key}) from exc
    except (NotADirectoryError, FileExistsError) as exc:
        raise Conflict("storage key collides with an existing object", {"key": key}) from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("the storage volume is full") from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO):
            raise Unavailable("the storage volume refused the operation") from exc
        raise


class LocalStorage(Storage):
    """Files under a root directory; paths come from validated keys only."""

    def __init__(self, url: str):
        self.url = url
        self.root = root_from_url(url)
        self._tmp = self.root / ".tmp"
        self._staging = self.root / ".staging"
        self._ensure_dir(self.root)

    # -- paths -------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _staging_path(self, key: str) -> Path:
        return self._staging / hashlib.sha256(check_key(key).encode()).hexdigest()

    def _ensure_dir(self, path: Path) -> None:
        if path.is_dir():
            return
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, 0o700)
            except FileExistsError:
                pass  # a concurrent writer made it
            # a new directory entry is durable only once its parent is fsynced
            _fsync_dir(directory.parent)

    def _publish(self, src: str | Path, key: str) -> None:
        dest = self._path(key)
        try:
            self._ensure_dir(dest.parent)
            os.replace(src, dest)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            # "a/b" cannot be a file and a directory at once
            raise Conflict("storage key collides with an existing object", {"key": key}) from exc
        _fsync_dir(dest.parent)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    # -- writing -----------------------------------------------------------------------------

    def open_writer(self, key: str) -> LocalWriter:
        return LocalWriter(self, check_key(key))

    def open_append(self, key: str, state: AppendState | None = None) -> LocalAppender:
        return LocalAppender(self, check_key(key), state)

    def complete(self, state: AppendState, final_key: str) -> ObjectInfo:
        key, offset = check_state(state, BACKEND)
        check_key(final_key)
        staged = self._staging_path(key)
        with _disk_errors(final_key):
            try:
                fd = os.open(staged, os.O_RDWR)
            except FileNotFoundError:
                # a complete() that died after its rename already published these bytes
                if self.exists(final_key) and self.stat(final_key).size == offset:
                    return self.stat(final_key)
                raise Conflict("the staged upload is gone", {"key": key}) from None
            try:
                if os.fstat(fd).st_size < offset:
                    raise Conflict("the staged upload lost acknowledged bytes", {"key": key})
                os.ftruncate(fd, offset)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._publish(staged, final_key)
        return self.stat(final_key)

    def discard(self, state: AppendState) -> None:
        key, _ = check_state(state, BACKEND)
        self._staging_path(key).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return
        _fsync_dir(path.parent)

    def move(self, src: str, dst: str) -> ObjectInfo:
        src_path = self._path(src)
        check_key(dst)
        if src != dst:
            with _disk_errors(src):
                if not src_path.is_file():
                    raise NotFound("no such object", {"key": src})
                self._publish(src_path, dst)
                _fsync_dir(src_path.parent)
        return self.stat(dst)

    # -- reading -----------------------------------------------------------------------------

    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        check_range(start, end)
        path = self._path(key)
        with _disk_errors(key):
            f = open(path, "rb")  # noqa: SIM115 -- the Reader owns and closes it
        f.seek(start)
        return Reader(f, None if end is None else end - start)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with _disk_errors(key):
            st = os.stat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise NotFound("no such object", {"key": key})
        return ObjectInfo(
            key=key,
            size=st.st_size,
            # every publish is a rename of a new inode, so inode + mtime + size changes with the bytes
            etag=f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}",
            modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
        )

    def list(self, prefix: str = "") -> Iterator[str]:
        return self._walk(check_prefix(prefix))

    def _walk(self, prefix: str) -> Iterator[str]:
        base_rel = prefix.rpartition("/")[0]
        base = self.root / base_rel if base_rel else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel + "/"
            # dot-directories hold temp and staging files; prune subtrees that cannot match
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and _may_match(rel + d + "/", prefix))
            for name in sorted(filenames):
                key = rel + name
                if key.startswith(prefix) and is_key(key):
                    yield key


def _may_match(directory: str, prefix: str) -> bool:
    return directory.startswith(prefix) or prefix.startswith(directory)


class LocalWriter:
    """A temp file in ``<root>/.tmp`` renamed over the key on commit."""

    def __init__(self, storage: LocalStorage, key: str):
        self.key = key
        self.bytes_written = 0
        self._storage = storage
        self._done = False
        with _disk_errors(key):
            storage._ensure_dir(storage._tmp)
            fd, self._tmp_path = tempfile.mkstemp(dir=storage._tmp, prefix="w-")  # mode 0o600
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise RuntimeError("write after commit or abort")
        with _disk_errors(self.key):
            self._file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> ObjectInfo:
        if self._done:
            raise RuntimeError("commit after commit or abort")
        try:
            with _disk_errors(self.key):
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._storage._publish(self._tmp_path, self.key)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self._storage.stat(self.key)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        Path(self._tmp_path).unlink(missing_ok=True)

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # leaving the block without commit() means the write did not finish
        self.abort()


class LocalAppender:
    """Appends to the staging file; ``sync`` fsyncs and returns the state to persist."""

    def __init__(self, storage: LocalStorage, key: str, state: AppendState | None):
        self.key = key
        self._storage = storage
        path = storage._staging_path(key)
        with _disk_errors(key):
            if state is None:
                storage._ensure_dir(storage._staging)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fsync(fd)
                _fsync_dir(storage._staging)
                offset = 0
            else:
                state_key, offset = check_state(state, BACKEND)
                if state_key != key:
                    raise Conflict("upload state belongs to another key", {"key": key})
                try:
                    fd = os.open(path, os.O_RDWR)
                except FileNotFoundError:
                    raise Conflict("the staged upload is gone", {"key": key}) from None
                if os.fstat(fd).st_size < offset:
                    os.close(fd)
                    raise Conflict("the staged upload lost acknowledged bytes", {"key": key})
                # bytes past the acknowledged offset were never promised to the client
                os.ftruncate(fd, offset)
        self._file = os.fdopen(fd, "r+b")
        self._file.seek(offset)
        self.offset = offset

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        with _disk_errors(self.key):
            self._file.write(chunk)
        self.offset += len(chunk)

    def sync(self) -> AppendState:
        with _disk_errors(self.key):
            self._file.flush()
            os.fsync(self._file.fileno())
        return {"v": 1, "backend": BACKEND, "key": self.key, "offset": self.offset}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LocalAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
