"""The storage protocol: bytes by key, on local disk or S3 (DESIGN §9).

Keys are built by services from ids and hashes only, never from user strings; backends still
refuse anything outside a narrow alphabet, so a bug upstream cannot turn into a path traversal
or an object outside the prefix. Segments starting with ``.`` are refused as well: backends keep
their own bookkeeping (temporary files, staged uploads) under dot-names that no key can reach.

Three ways to put bytes:

- ``open_writer(key)``: one streaming write of unknown length, visible atomically on commit.
- ``open_append(key, state)``: a resumable upload (tus) spread over many requests and possibly a
  server restart; ``sync()`` makes the bytes so far durable and returns a small JSON-able state
  that the caller persists; ``complete(state, final_key)`` publishes the staged bytes.
- ``move(src, dst)``: rename an object, for content addressing once the hash is known.

Every call blocks; services run them in worker threads. A ``Storage`` may be shared by threads;
a writer or appender belongs to one request at a time.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import InvalidInput, NotFound

MIB = 1024 * 1024
#: S3 refuses multipart parts smaller than this (except the last one)
MIN_PART_SIZE = 5 * MIB
DEFAULT_PART_SIZE = 8 * MIB
#: chunk size when iterating a reader
READ_CHUNK = 1 * MIB
MAX_KEY_LENGTH = 512

#: the JSON-able record of a resumable upload; the caller stores it and hands it back unchanged
AppendState = dict[str, Any]

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_PREFIX_CHARS = re.compile(r"[A-Za-z0-9._/-]*")


def _refuse(what: str, value: object, why: str) -> InvalidInput:
    return InvalidInput(f"invalid storage {what}: {why}", {what: repr(value)[:120]})


def check_key(key: object) -> str:
    """Return ``key`` if it is a safe storage key, else raise ``InvalidInput``.

    ``a/b/c`` of segments in ``[A-Za-z0-9._-]`` not starting with a dot: no ``..``, no absolute
    path, no backslash, no NUL, no percent-encoding, no empty segment.
    """
    if not isinstance(key, str) or not key:
        raise _refuse("key", key, "must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise _refuse("key", key, f"longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise _refuse("key", key, "segments are [A-Za-z0-9._-] and may not be empty or start with '.'")
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it can start a valid key ('' lists everything), else raise ``InvalidInput``."""
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH or not _PREFIX_CHARS.fullmatch(prefix):
        raise _refuse("prefix", prefix, "characters are [A-Za-z0-9._/-]")
    if prefix.startswith("/") or "//" in prefix or any(s.startswith(".") for s in prefix.split("/")):
        raise _refuse("prefix", prefix, "segments may not be empty or start with '.'")
    return prefix


def is_key(name: str) -> bool:
    """Whether ``name`` (found in a listing) is a key this protocol can address."""
    try:
        check_key(name)
    except InvalidInput:
        return False
    return True


def check_range(start: int, end: int | None) -> None:
    if not isinstance(start, int) or start < 0 or (end is not None and (not isinstance(end, int) or end < start)):
        raise InvalidInput("invalid byte range", {"start": start, "end": end})


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` knows about an object; ``etag`` changes whenever the bytes may have."""

    key: str
    size: int
    etag: str
    modified: datetime


class Writer(Protocol):
    """A streaming write; nothing is visible under the key before ``commit``."""

    key: str
    bytes_written: int

    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...
    def commit(self) -> ObjectInfo: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Writer: ...
    def __exit__(self, *exc: object) -> None: ...


class Appender(Protocol):
    """One session of a resumable upload; bytes written after the last ``sync`` are not durable."""

    key: str
    #: bytes staged so far, including those not yet synced
    offset: int

    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...
    def sync(self) -> AppendState: ...
    def close(self) -> None: ...
    def __enter__(self) -> Appender: ...
    def __exit__(self, *exc: object) -> None: ...


class Reader:
    """A byte stream over ``[start, end)`` of an object: ``read(n)``, iteration in chunks, ``close``."""

    def __init__(self, stream: BinaryIO | Any, length: int | None):
        self._stream = stream
        self._left = length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end."""
        if self._left is not None:
            size = self._left if size is None or size < 0 else min(size, self._left)
            if size == 0:
                return b""
        data = self._stream.read(size) if size is not None and size >= 0 else self._stream.read()
        if self._left is not None:
            self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(READ_CHUNK):
            yield chunk

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage(ABC):
    """Bytes by key. Implementations: ``LocalStorage`` (file://) and ``S3Storage`` (s3://)."""

    #: the URL this storage was built from (``storage_from_url`` builds an equal one from it)
    url: str

    @abstractmethod
    def open_writer(self, key: str) -> Writer:
        """Start a streaming write of unknown length to ``key``; memory stays within one part."""

    @abstractmethod
    def open_append(self, key: str, state: AppendState | None = None) -> Appender:
        """Start (``state`` None) or resume a resumable upload identified by ``key``.

        ``key`` names the upload's staging area, not the final object. Starting afresh discards
        whatever was staged under that key before. The caller serialises sessions of one upload.
        """

    @abstractmethod
    def complete(self, state: AppendState, final_key: str) -> ObjectInfo:
        """Publish the staged bytes of ``state`` atomically as ``final_key`` and drop the staging."""

    @abstractmethod
    def discard(self, state: AppendState) -> None:
        """Remove everything a resumable upload staged; idempotent."""

    @abstractmethod
    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        """Stream bytes ``[start, end)`` of ``key`` (to the end when ``end`` is None); ``NotFound`` if absent."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, etag and modification time of ``key``; ``NotFound`` if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""

    @abstractmethod
    def move(self, src: str, dst: str) -> ObjectInfo:
        """Make ``src``'s bytes the object ``dst`` (replacing it) and remove ``src``."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as in S3), in no promised order."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path holding ``key``'s bytes, or None when the bytes are remote."""
        check_key(key)
        return None

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``key`` from ``start`` (fewer at the end of the object)."""
        check_range(start, None)
        if not isinstance(length, int) or length < 0:
            raise InvalidInput("invalid byte range", {"start": start, "length": length})
        with self.open_reader(key, start, start + length) as reader:
            return reader.read()

    def exists(self, key: str) -> bool:
        """Whether an object is visible under ``key``."""
        try:
            self.stat(key)
        except NotFound:
            return False
        return True


def check_state(state: object, backend: str) -> tuple[str, int]:
    """Validate an ``AppendState`` handed back by a caller; return its ``(key, offset)``."""
    if not isinstance(state, dict) or state.get("v") != 1 or state.get("backend") != backend:
        raise InvalidInput(f"not a {backend} upload state", {"state": repr(state)[:120]})
    offset = state.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput("upload state has no valid offset", {"offset": repr(offset)[:40]})
    return check_key(state.get("key")), offset
