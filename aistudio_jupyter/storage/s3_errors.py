"""How S3 failures reach clients: a missing object is 404, anything on S3's side is 503."""

from __future__ import annotations

from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import Conflict, NotFound, PayloadTooLarge, Unavailable

#: S3 numbers parts 1..10000, so one object is at most part_size × 10000 bytes
MAX_PARTS = 10_000
_MISSING = {"NoSuchKey", "404", "NotFound"}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(key: str):
    """Translate boto errors raised in the block into domain errors about ``key``."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in _MISSING:
            raise NotFound("no such object", {"key": key}) from exc
        if code == "NoSuchUpload":
            raise Conflict("the staged upload is gone", {"key": key}) from exc
        if code == "EntityTooLarge":
            raise PayloadTooLarge("the object is larger than the store accepts", {"key": key}) from exc
        retry = 1 if code in _BUSY else None
        # AccessDenied, NoSuchBucket…: a deployment problem, not something the client did
        raise Unavailable(f"object storage refused the request ({code or 'error'})", retry_after=retry) from exc
    except BotoCoreError as exc:
        raise Unavailable("object storage is unreachable", retry_after=1) from exc
