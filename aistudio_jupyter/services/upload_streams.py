"""Request bodies on their way to storage: one PATCH of a tus upload, or one small file.

Bytes arrive on the event loop a few KiB at a time; a ``_Pipe`` gathers them into buffers and
writes each in a worker thread while the next one fills, so memory stays at two buffers per
upload whatever the file size, and the loop never blocks on storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import AIStudioError, PayloadTooLarge
from ..identity import Principal
from ..observability import UPLOAD_BYTES
from ..schemas.uploads import UploadOut
from .versions import Received, Target

if TYPE_CHECKING:
    from .uploads import UploadService, _Upload


class ChecksumMismatch(AIStudioError):
    code, status = "checksum_mismatch", 460


def received_key(upload_id: str) -> str:
    """Where an upload's bytes are staged and then published until they reach their blob."""
    return f"uploads/{upload_id}"


class _Pipe:
    """Bytes from the event loop to a blocking ``write``, one buffer at a time in a worker thread.

    At most one write is in flight: ``feed`` returns an awaitable when the buffer is full, and
    tornado stops reading the socket until it resolves, so a slow disk slows the client down
    instead of filling memory. The first write error is kept and raised by ``drain``; later
    bytes are dropped.
    """

    def __init__(self, write: Callable[[bytearray], None], buffer_bytes: int, executor: ThreadPoolExecutor):
        self._write, self._limit, self._executor = write, buffer_bytes, executor
        self._buf = bytearray()
        self._inflight: asyncio.Future | None = None
        self._lock = asyncio.Lock()
        self.error: BaseException | None = None
        self.received = 0

    def feed(self, data: bytes) -> Awaitable[None] | None:
        if self.error is not None:
            return None
        self._buf += data
        self.received += len(data)
        return self._hand_off() if len(self._buf) >= self._limit else None

    async def _hand_off(self) -> None:
        async with self._lock:
            await self._settle()
            if self.error is None:
                buf, self._buf = self._buf, bytearray()
                self._inflight = asyncio.get_running_loop().run_in_executor(self._executor, self._write, buf)

    async def _settle(self) -> None:
        if self._inflight is not None:
            try:
                await self._inflight
            except BaseException as exc:  # kept for drain(); the request answers with it
                self.error = self.error or exc
                self._buf = bytearray()
            self._inflight = None

    async def stop(self) -> None:
        """Wait for the write in flight, whatever its outcome, and drop what is buffered."""
        async with self._lock:
            await self._settle()
            self._buf = bytearray()
            self.error = self.error or RuntimeError("stopped")

    async def drain(self) -> None:
        """Write everything fed so far; raise the first write error."""
        async with self._lock:
            await self._settle()
            if self.error is None and self._buf:
                buf, self._buf = self._buf, bytearray()
                try:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._write, buf)
                except BaseException as exc:
                    self.error = exc
        if self.error is not None:
            raise self.error


class PatchSession:
    """One PATCH (or the body of a POST with creation-with-upload): feed bytes, then finish."""

    def __init__(self, service: UploadService, who: Principal, up: _Upload, appender, hasher, checksum: tuple[str, bytes] | None):
        self._service, self._who, self._up = service, who, up
        self._appender = appender
        self._hasher = hasher
        self._checksum = checksum
        self._chunk_hash = hashlib.new(checksum[0]) if checksum else None
        self._acked = up.offset
        self._done = self._finishing = False
        self._pipe = _Pipe(self._write, service.buffer_bytes, service._executor)

    @property
    def remaining(self) -> int:
        """Bytes the upload still lacks: the most this request may carry."""
        return self._up.length - self._up.offset

    def feed(self, data: bytes) -> Awaitable[None] | None:
        """Take bytes from the network; await the result when there is one (back-pressure)."""
        if self._done or self._appender is None:
            return None
        return self._pipe.feed(data)

    def _write(self, buf: bytearray) -> None:  # in a worker thread
        UPLOAD_BYTES.inc(len(buf))
        if self._chunk_hash is not None:
            self._chunk_hash.update(buf)
        if self._hasher is not None:
            self._hasher.update(buf)
        self._appender.write(buf)
        # a checksummed chunk is all or nothing, so it cannot be acknowledged in parts
        if self._checksum is None and self._appender.offset - self._acked >= self._service.checkpoint_bytes:
            self._sync()

    def _sync(self) -> None:  # in a worker thread
        state = self._appender.sync()
        self._service.db.call(self._service._acknowledge, self._up.id, state["offset"], state, write=True)
        self._acked = state["offset"]
        self._up.offset, self._up.storage_state = state["offset"], state
        if self._hasher is not None:
            self._service._hashes[self._up.id] = (state["offset"], self._hasher.copy())

    async def finish(self) -> UploadOut:
        """Acknowledge the bytes received (and complete the upload at its length)."""
        # from here on a hang-up changes nothing: this request acknowledges or fails as a whole
        self._finishing = True
        try:
            if self._appender is not None:
                await self._pipe.drain()
                if self._chunk_hash is not None and not hmac.compare_digest(self._chunk_hash.digest(), self._checksum[1]):
                    raise ChecksumMismatch("Upload-Checksum does not match the bytes received; the chunk was discarded. Send it again.", {"offset": self._acked})
                await self._service._run(self._sync)
            if self._up.offset == self._up.length and self._up.state == "active":
                await self._close_appender()
                await self._service._complete(self._who, self._up, self._hasher)
            return await self._service.get(self._who, self._up.id)
        finally:
            await self.release()

    async def interrupted(self) -> None:
        """The client went away mid-request: keep what arrived, unless a checksum covers it."""
        if self._done or self._finishing:
            return
        try:
            if self._appender is not None and self._checksum is None:
                await self._pipe.drain()
                await self._service._run(self._sync)
        except Exception as exc:
            self._service.log.info("AI Studio upload %s: bytes after offset %d not kept (%s)", self._up.id, self._acked, type(exc).__name__)
        finally:
            await self.release()

    async def release(self) -> None:
        """Let the next request at this upload; bytes not acknowledged are dropped on resume."""
        if self._done:
            return
        self._done = True
        try:
            await self._pipe.stop()
            await self._close_appender()
        finally:
            self._service._busy.discard(self._up.id)

    async def _close_appender(self) -> None:
        appender, self._appender = self._appender, None
        if appender is not None:
            await self._service._run(appender.close)


class FileSession:
    """One small file from a multipart request: streamed to storage, then published."""

    def __init__(self, service: UploadService, who: Principal, dataset_id: str, upload_id: str, writer, limit: int):
        self._service, self._who, self._dataset_id, self._id = service, who, dataset_id, upload_id
        self._writer, self.limit = writer, limit
        self._hasher = hashlib.sha256()
        self._done = self._finishing = False
        self._pipe = _Pipe(self._write, service.buffer_bytes, service._executor)
        self.filename: str | None = None

    def feed(self, data: bytes) -> Awaitable[None] | None:
        if self._done:
            return None
        if self._pipe.received + len(data) > self.limit:
            self._pipe.error = self._pipe.error or PayloadTooLarge(f"Files over {self.limit} bytes go through tus (/uploads).", {"limit": self.limit})
            return None
        return self._pipe.feed(data)

    def _write(self, buf: bytearray) -> None:
        UPLOAD_BYTES.inc(len(buf))
        self._hasher.update(buf)
        self._writer.write(buf)

    async def finish(self):
        """Publish the file as a new version of the dataset."""
        key = received_key(self._id)
        self._finishing = True
        try:
            await self._pipe.drain()
            size = self._pipe.received
            await self._service._run(self._writer.commit)
            self._done = True
            received = Received(key, self._hasher.hexdigest(), size, self.filename)
            return await self._service._versions.publish(self._who, Target(self._dataset_id), received)
        finally:
            await self.abort()
            await self._service._run(self._service.storage.delete, key)

    async def abort(self) -> None:
        """Drop whatever was received; idempotent."""
        try:
            if not self._done:
                self._done = True
                await self._pipe.stop()
                await self._service._run(self._writer.abort)
        finally:
            self._service._busy.discard(self._id)

    async def interrupted(self) -> None:
        """The client went away: drop the file, unless the request is being answered already."""
        if not self._finishing:
            await self.abort()

    release = abort
