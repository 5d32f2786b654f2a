"""S3 storage (AWS, MinIO, Ceph): objects under ``s3://bucket/prefix``, through boto3.

Credentials come from boto's usual chain (environment, shared files, instance roles); the
endpoint is configurable for S3-compatible stores. Large objects go up as multipart uploads of
``part_size`` bytes, so a writer holds at most one part in memory; reads are ranged GETs.
Resumable uploads live in ``s3_append.py``, error mapping in ``s3_errors.py``. Every call blocks; retries are botocore's.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import boto3
import botocore.loaders
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from ..errors import Conflict, PayloadTooLarge, Unavailable
from .base import DEFAULT_PART_SIZE, MIB, MIN_PART_SIZE, AppendState, ObjectInfo, Reader, Storage, check_key, check_prefix, check_range, is_key
from .s3_append import S3Appender
from .s3_append import complete as complete_upload
from .s3_append import discard as discard_upload
from .s3_errors import MAX_PARTS, error_code, s3_errors

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_loader_lock = threading.Lock()
_loader: botocore.loaders.Loader | None = None


def _boto_session() -> boto3.session.Session:
    """A fresh session (credentials resolved anew) sharing one model loader: parsing S3's
    service model costs ~0.25 s per session otherwise."""
    global _loader
    with _loader_lock:
        if _loader is None:
            _loader = botocore.loaders.create_loader()
        core = botocore.session.get_session()
        core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def bucket_from_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``; anything else is a configuration error."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not _BUCKET.fullmatch(parts.netloc or "") or parts.query or parts.fragment:
        raise ValueError(f"S3 storage needs an s3://bucket/prefix URL, got {url!r}")
    prefix = parts.path.strip("/")
    if prefix and not is_key(prefix):
        raise ValueError(f"S3 storage prefix must be a valid key path, got {prefix!r}")
    return parts.netloc, prefix


class S3Storage(Storage):
    """Objects named ``<prefix>/<key>`` in one bucket."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None, part_size: int = DEFAULT_PART_SIZE, addressing_style: str | None = None, max_attempts: int = 5):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        self.url = url
        self.bucket, self.prefix = bucket_from_url(url)
        self.part_size = part_size
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            # MinIO and Ceph are usually reached by IP or a single host name: path-style URLs
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            # botocore ≥ 1.36 adds CRC trailers that older S3-compatible stores reject
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=32,
        )
        self.client = _boto_session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self._copy_config = TransferConfig(multipart_threshold=max(part_size, 256 * MIB), multipart_chunksize=max(part_size, 256 * MIB))

    def name(self, key: str) -> str:
        """The S3 object name of ``key``."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- writing -----------------------------------------------------------------------------

    def open_writer(self, key: str) -> S3Writer:
        return S3Writer(self, check_key(key))

    def open_append(self, key: str, state: AppendState | None = None) -> S3Appender:
        return S3Appender(self, check_key(key), state)

    def complete(self, state: AppendState, final_key: str) -> ObjectInfo:
        return complete_upload(self, state, final_key)

    def discard(self, state: AppendState) -> None:
        discard_upload(self, state)

    def delete(self, key: str) -> None:
        with s3_errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.name(key))

    def move(self, src: str, dst: str) -> ObjectInfo:
        check_key(src)
        check_key(dst)
        if src != dst:
            self.copy_object(self.name(src), dst, src)
            self.delete(src)
        return self.stat(dst)

    def abort_upload(self, name: str, upload_id: str, label: str) -> None:
        """Abort one multipart upload; one that is already gone is fine."""
        try:
            with s3_errors(label):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except Conflict:
            pass  # NoSuchUpload

    def copy_object(self, source_name: str, dst: str, label: str) -> None:
        """Server-side copy of the object named ``source_name`` to key ``dst`` (multipart when large)."""
        with s3_errors(label):
            self.client.copy({"Bucket": self.bucket, "Key": source_name}, self.bucket, self.name(dst), Config=self._copy_config)

    # -- reading -----------------------------------------------------------------------------

    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        check_range(start, end)
        name = self.name(key)
        if end == start:
            # an empty range cannot be asked of S3 (bytes=5-4 is ignored and returns everything)
            self.stat(key)
            return Reader(io.BytesIO(b""), 0)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with s3_errors(key):
                response = self.client.get_object(Bucket=self.bucket, Key=name, **extra)
        except Unavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) == "InvalidRange":
                return Reader(io.BytesIO(b""), 0)  # start at or past the end, as a slice would be
            raise
        return Reader(response["Body"], response["ContentLength"])

    def stat(self, key: str) -> ObjectInfo:
        with s3_errors(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self.name(key))
        return ObjectInfo(key=key, size=head["ContentLength"], etag=head["ETag"].strip('"'), modified=head["LastModified"])

    def list(self, prefix: str = "") -> Iterator[str]:
        return self._list(check_prefix(prefix))

    def _list(self, prefix: str) -> Iterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
        with s3_errors(prefix):
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(base) :]
                    # staged uploads sit under .staging/; foreign objects with odd names are not ours
                    if is_key(key):
                        yield key


class S3Writer:
    """A streaming write: a single PUT when small, else a multipart upload completed on commit."""

    def __init__(self, storage: S3Storage, key: str):
        self.key = key
        self.bytes_written = 0
        self._storage = storage
        self._name = storage.name(key)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._done = False

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise RuntimeError("write after commit or abort")
        view = memoryview(chunk).cast("B")
        self.bytes_written += view.nbytes
        size = self._storage.part_size
        while view:
            room = size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == size:
                self._upload_part()

    def _upload_part(self) -> None:
        s3, bucket = self._storage.client, self._storage.bucket
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise PayloadTooLarge(f"objects are limited to {MAX_PARTS} parts of {self._storage.part_size} bytes")
        with s3_errors(self.key):
            if self._upload_id is None:
                self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=self._name)["UploadId"]
            body, self._buf = self._buf, bytearray()
            etag = s3.upload_part(Bucket=bucket, Key=self._name, UploadId=self._upload_id, PartNumber=number, Body=body)["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def commit(self) -> ObjectInfo:
        if self._done:
            raise RuntimeError("commit after commit or abort")
        s3, bucket = self._storage.client, self._storage.bucket
        try:
            if self._upload_id is None:
                with s3_errors(self.key):
                    s3.put_object(Bucket=bucket, Key=self._name, Body=bytes(self._buf))
            else:
                if self._buf:
                    self._upload_part()
                with s3_errors(self.key):
                    s3.complete_multipart_upload(Bucket=bucket, Key=self._name, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buf = bytearray()
        return self._storage.stat(self.key)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buf = bytearray()
        if self._upload_id is not None:
            self._storage.abort_upload(self._name, self._upload_id, self.key)

    def __enter__(self) -> S3Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        # leaving the block without commit() means the write did not finish
        self.abort()
