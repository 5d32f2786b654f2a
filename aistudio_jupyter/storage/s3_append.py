"""Resumable uploads on S3: a multipart upload plus small "tail" segment objects.

Everything an upload stages lives under ``<prefix>/.staging/<sha256(key)>/`` (no key can name
it): ``object``, the multipart upload's target, and ``seg-<offset>-<random>`` segments.

S3 refuses parts under 5 MiB except the last, but a tus client may acknowledge every few
hundred KiB, so the bytes after the last full part are written as one small segment object
per ``sync``; when segments plus new bytes reach ``part_size`` they are read back and sent as
the next part. Why S3 and not a local spool file: the hub service may run in a container whose
disk does not survive the restart we are guarding against, and another replica may resume the
upload; S3 is the only place both can see. The cost is reading the tail back once per part.

Crash safety: the caller persists the state returned by ``sync`` (upload id, part ETags,
segments). Part numbers follow from the state, so a session that dies after uploading a part
but before its state was persisted is redone by re-uploading that part number (S3 keeps the
last). Segments a part has absorbed are not deleted at once: the old state still names them.
They ride in the new state as ``garbage`` and are deleted when a session opens with that state,
which proves the caller kept it. ``complete``/``discard`` sweep the whole staging prefix.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING

from ..errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from .base import AppendState, ObjectInfo, check_key, check_state
from .s3_errors import MAX_PARTS, s3_errors

if TYPE_CHECKING:
    from .s3 import S3Storage

BACKEND = "s3"
_SEGMENT = re.compile(r"seg-\d{20}-[0-9a-f]{16}")


def staging_name(storage: S3Storage, key: str) -> str:
    digest = hashlib.sha256(check_key(key).encode()).hexdigest()
    return f"{storage.prefix}/.staging/{digest}" if storage.prefix else f".staging/{digest}"


def _parse(state: AppendState) -> tuple[str, int, str | None, list[list], list[list], list[str]]:
    """Validate a state from the caller's database; names are checked so that no state can
    make us read or delete anything outside its own staging prefix."""
    key, offset = check_state(state, BACKEND)
    upload_id, parts, segments, garbage = state.get("upload_id"), state.get("parts"), state.get("segments"), state.get("garbage")

    def valid() -> bool:
        if not (upload_id is None or (isinstance(upload_id, str) and upload_id)):
            return False
        if not (isinstance(parts, list) and isinstance(segments, list) and isinstance(garbage, list)) or (parts and not upload_id):
            return False
        for i, part in enumerate(parts, 1):
            if not (isinstance(part, list) and len(part) == 3 and part[0] == i and isinstance(part[1], str) and _positive(part[2])):
                return False
        for seg in segments:
            if not (isinstance(seg, list) and len(seg) == 2 and _segment_name(seg[0]) and _positive(seg[1])):
                return False
        return all(_segment_name(name) for name in garbage) and offset == sum(p[2] for p in parts) + sum(s[1] for s in segments)

    if not valid():
        raise InvalidInput("malformed S3 upload state", {"key": key})
    return key, offset, upload_id, [list(p) for p in parts], [list(s) for s in segments], list(garbage)


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _segment_name(value: object) -> bool:
    return isinstance(value, str) and _SEGMENT.fullmatch(value) is not None


class _Gone(Exception):
    """Staged pieces are missing: an earlier complete() may have published them already."""


def _read_segments(storage: S3Storage, staging: str, segments: list[list], key: str) -> bytearray:
    body = bytearray()
    for name, size in segments:
        try:
            with s3_errors(key):
                data = storage.client.get_object(Bucket=storage.bucket, Key=f"{staging}/{name}")["Body"].read()
        except NotFound:
            raise _Gone from None
        if len(data) != size:
            raise Conflict("a staged segment changed size", {"key": key})
        body += data
    return body


def _delete_names(storage: S3Storage, names: list[str], key: str) -> None:
    for i in range(0, len(names), 1000):
        batch = [{"Key": n} for n in names[i : i + 1000]]
        with s3_errors(key):
            storage.client.delete_objects(Bucket=storage.bucket, Delete={"Objects": batch, "Quiet": True})


def clear_staging(storage: S3Storage, key: str) -> None:
    """Abort every multipart upload and delete every object under ``key``'s staging prefix."""
    prefix = staging_name(storage, key) + "/"
    s3 = storage.client
    with s3_errors(key):
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=storage.bucket, Prefix=prefix):
            for upload in page.get("Uploads", ()):
                storage.abort_upload(upload["Key"], upload["UploadId"], key)
        names = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket, Prefix=prefix) for obj in page.get("Contents", ())]
    _delete_names(storage, names, key)


class S3Appender:
    """One session of a resumable upload; see the module docstring for the layout."""

    def __init__(self, storage: S3Storage, key: str, state: AppendState | None):
        self.key = key
        self._storage = storage
        self._staging = staging_name(storage, key)
        self._object = f"{self._staging}/object"
        if state is None:
            clear_staging(storage, key)
            self._upload_id, self._parts, self._segments, self.offset = None, [], [], 0
        else:
            state_key, self.offset, self._upload_id, self._parts, self._segments, garbage = _parse(state)
            if state_key != key:
                raise Conflict("upload state belongs to another key", {"key": key})
            # opening with this state proves the caller persisted it: what it superseded can go
            _delete_names(storage, [f"{self._staging}/{n}" for n in garbage], key)
        self._garbage: list[str] = []
        self._tail = sum(s[1] for s in self._segments)
        self._buf = bytearray()

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        self.offset += view.nbytes
        size = self._storage.part_size
        while view:
            room = size - self._tail - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if self._tail + len(self._buf) == size:
                self._upload_part()

    def _upload_part(self) -> None:
        s3, bucket = self._storage.client, self._storage.bucket
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise PayloadTooLarge(f"uploads are limited to {MAX_PARTS} parts of {self._storage.part_size} bytes")
        body, self._buf = self._buf, bytearray()
        if self._segments:
            head = _read_segments(self._storage, self._staging, self._segments, self.key)
            head += body
            body = head
            self._garbage += [s[0] for s in self._segments]
            self._segments, self._tail = [], 0
        with s3_errors(self.key):
            if self._upload_id is None:
                self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self._object)["UploadId"]
            etag = s3.upload_part(Bucket=bucket, Key=self._object, UploadId=self._upload_id, PartNumber=number, Body=body)["ETag"]
        self._parts.append([number, etag, len(body)])

    def sync(self) -> AppendState:
        if self._buf:
            name = f"seg-{self.offset - len(self._buf):020d}-{secrets.token_hex(8)}"
            with s3_errors(self.key):
                self._storage.client.put_object(Bucket=self._storage.bucket, Key=f"{self._staging}/{name}", Body=self._buf)
            self._segments.append([name, len(self._buf)])
            self._tail += len(self._buf)
            self._buf = bytearray()
        return {
            "v": 1,
            "backend": BACKEND,
            "key": self.key,
            "offset": self.offset,
            "upload_id": self._upload_id,
            "parts": [list(p) for p in self._parts],
            "segments": [list(s) for s in self._segments],
            "garbage": list(self._garbage),
        }

    def close(self) -> None:
        self._buf = bytearray()

    def __enter__(self) -> S3Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def complete(storage: S3Storage, state: AppendState, final_key: str) -> ObjectInfo:
    """Publish the staged bytes as ``final_key`` (one PUT, or complete + server-side copy)."""
    key, offset, upload_id, parts, segments, _ = _parse(state)
    check_key(final_key)
    try:
        _publish(storage, key, offset, upload_id, parts, segments, final_key)
    except _Gone:
        if not (storage.exists(final_key) and storage.stat(final_key).size == offset):
            raise Conflict("the staged upload is gone", {"key": key}) from None
        # else an earlier complete() published these bytes and died before sweeping up
    clear_staging(storage, key)
    return storage.stat(final_key)


def _publish(storage: S3Storage, key: str, offset: int, upload_id: str | None, parts: list[list], segments: list[list], final_key: str) -> None:
    s3, bucket = storage.client, storage.bucket
    staging = staging_name(storage, key)
    if upload_id is None:
        body = _read_segments(storage, staging, segments, key)
        with s3_errors(final_key):
            s3.put_object(Bucket=bucket, Key=storage.name(final_key), Body=body)
        return
    obj = f"{staging}/object"
    try:
        with s3_errors(key):
            size = s3.head_object(Bucket=bucket, Key=obj)["ContentLength"]
    except NotFound:
        size = _complete_multipart(storage, key, obj, upload_id, parts, segments)
    # else an earlier complete() got as far as completing the multipart upload
    if size != offset:
        raise Conflict("the staged upload does not hold the acknowledged bytes", {"key": key, "size": size, "offset": offset})
    storage.copy_object(obj, final_key, key)


def _complete_multipart(storage: S3Storage, key: str, obj: str, upload_id: str, parts: list[list], segments: list[list]) -> int:
    s3, bucket = storage.client, storage.bucket
    try:
        # ListParts answers NoSuchUpload for a finished upload everywhere; CompleteMultipartUpload
        # does not on every S3-compatible store (moto answers 500)
        with s3_errors(key):
            s3.list_parts(Bucket=bucket, Key=obj, UploadId=upload_id, MaxParts=1)
        if segments:
            body = _read_segments(storage, staging_name(storage, key), segments, key)
            with s3_errors(key):
                etag = s3.upload_part(Bucket=bucket, Key=obj, UploadId=upload_id, PartNumber=len(parts) + 1, Body=body)["ETag"]
            parts = [*parts, [len(parts) + 1, etag, len(body)]]
        with s3_errors(key):
            s3.complete_multipart_upload(Bucket=bucket, Key=obj, UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]})
            return s3.head_object(Bucket=bucket, Key=obj)["ContentLength"]
    except (Conflict, NotFound):  # NoSuchUpload, or the object went away under us
        raise _Gone from None


def discard(storage: S3Storage, state: AppendState) -> None:
    """Abort the multipart upload and delete the segments; idempotent."""
    key, _ = check_state(state, BACKEND)
    clear_staging(storage, key)
