"""`/uploads`: the tus 1.0.0 server (core, creation, creation-with-upload, termination,
checksum, expiration), so tuspy, tus-js-client and Uppy work unchanged.

Bodies are streamed (``stream_request_body``): authentication, authorization and every header
check happen in ``prepare``, before the first byte is accepted, and the bytes go to the upload
service as they arrive. Errors use the JSON envelope; every response carries Tus-Resumable.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from email.utils import format_datetime
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.web import HTTPError, stream_request_body

from ..errors import AIStudioError, BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from ..schemas.common import ErrorEnvelope
from ..schemas.uploads import UploadMetadata, UploadOut
from ..services.uploads import CHECKSUM_ALGORITHMS
from .base import AIStudioHandler, Operation

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_STREAM = "application/offset+octet-stream"
#: tus headers a browser client must be allowed to read on a cross-origin deployment
EXPOSED = "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm"
MAX_METADATA_CHARS = 8192
#: how Upload-Metadata keys map to ours; tus-js-client and Uppy say filetype/type
METADATA_KEYS = {"filename": "filename", "content_type": "content_type", "filetype": "content_type", "type": "content_type", "dataset": "dataset", "name": "name",
                 "description": "description", "visibility": "visibility", "team": "team"}
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_KEY = re.compile(r"^[!-+\--~]{1,128}$")  # visible ASCII without comma


class TusPreconditionFailed(AIStudioError):
    code, status = "unsupported_tus_version", 412


def _errors(*statuses: int) -> dict[int, tuple[str, type]]:
    text = {
        410: "The upload failed or expired; start a new one",
        412: "Tus-Resumable is missing or not 1.0.0",
        413: "Larger than the tier allows, or past Upload-Length",
        415: "Wrong Content-Type, or the completed file is not a supported format",
        423: "Another request is writing to this upload",
        460: "Upload-Checksum does not match the body; the chunk was discarded",
        507: "The storage quota would be exceeded",
    }
    return {s: (text[s], ErrorEnvelope) for s in statuses}


class StreamingHandler(AIStudioHandler):
    """A handler whose request body streams into a service session (``self.session``).

    Authentication and authorization run in ``prepare``, before the first body byte is
    accepted: the method decorators run only once the body has arrived, too late for a stream.
    """

    session: Any = None
    #: methods whose body is streamed
    streaming: tuple[str, ...] = ()
    _background: set = set()

    async def prepare(self) -> None:
        if self.request.method in self.streaming:
            # the body is streamed, never held, so the server-wide body cap does not apply;
            # open_session sets the real bound once it is known
            self.request.connection.set_max_body_size(2**62)
        await super().prepare()
        await self._authorize_now()
        await self.check_request()
        if self.request.method in self.streaming:
            await self.open_session()

    async def _authorize_now(self) -> None:
        user = self.current_user
        if not user:
            raise HTTPError(403)
        action = HTTP_METHOD_TO_AUTH_ACTION[self.request.method]
        if not await ensure_async(self.authorizer.is_authorized(self, user, action, self.auth_resource)):
            raise HTTPError(403, f"User is not authorized to {action} on resource: {self.auth_resource}.")

    async def check_request(self) -> None:
        """Refuse a request from its headers alone (before any body byte)."""

    async def open_session(self) -> None:
        """Check the request's headers and open ``self.session``."""

    def data_received(self, chunk: bytes):
        return self.session.feed(chunk) if self.session is not None else None

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.session is not None:
            self._spawn(self.session.interrupted())

    def on_finish(self) -> None:
        super().on_finish()
        if self.session is not None:
            self._spawn(self.session.release())

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        # the loop keeps only weak references to tasks
        StreamingHandler._background.add(task)
        task.add_done_callback(StreamingHandler._background.discard)

    def log_exception(self, typ, value, tb) -> None:
        if type(value).__name__ == "StreamClosedError":  # the client went away; nothing to answer
            self.log.debug("AI Studio upload: client disconnected [%s]", self.request_id)
            return
        super().log_exception(typ, value, tb)

    def int_header(self, name: str, required: bool = True) -> int | None:
        value = self.request.headers.get(name)
        if value is None:
            if required:
                raise BadRequest(f"The {name} header is required.", {"header": name})
            return None
        if not _DIGITS.match(value.strip()):
            raise BadRequest(f"{name} must be a non-negative integer.", {"header": name})
        return int(value.strip())

    def body_length(self) -> int | None:
        """Content-Length (None with chunked transfer encoding; 0 without a body)."""
        if "chunked" in self.request.headers.get("Transfer-Encoding", "").lower():
            return None
        return self.int_header("Content-Length", required=False) or 0


class TusHandler(StreamingHandler):
    """tus protocol headers on every answer; Tus-Resumable required on every request."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # here, so error responses (which clear headers) carry them too
        self.set_header("Tus-Resumable", TUS_VERSION)
        self.set_header("Access-Control-Expose-Headers", EXPOSED)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if isinstance((kwargs.get("exc_info") or (None, None))[1], TusPreconditionFailed):
            self.set_header("Tus-Version", TUS_VERSION)  # tus: a 412 names the versions we speak
        super().write_error(status_code, **kwargs)

    async def check_request(self) -> None:
        if self.request.method not in ("OPTIONS", "GET") and self.request.headers.get("Tus-Resumable") != TUS_VERSION:
            raise TusPreconditionFailed("Send Tus-Resumable: 1.0.0 (the only version this server speaks).", {"supported": [TUS_VERSION]})

    # -- tus headers ----------------------------------------------------------------------

    def check_stream_type(self) -> None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != OFFSET_STREAM:
            raise UnsupportedMediaType(f"Send upload bytes as {OFFSET_STREAM}.", {"content_type": ctype[:100]})

    def checksum(self) -> tuple[str, bytes] | None:
        value = self.request.headers.get("Upload-Checksum")
        if value is None:
            return None
        algorithm, _, encoded = value.strip().partition(" ")
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise BadRequest(f"Upload-Checksum algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}.", {"header": "Upload-Checksum"})
        try:
            digest = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Upload-Checksum must be '<algorithm> <base64 digest>'.", {"header": "Upload-Checksum"}) from None
        if len(digest) != {"sha256": 32, "sha1": 20}[algorithm]:
            raise BadRequest(f"Upload-Checksum holds no {algorithm} digest.", {"header": "Upload-Checksum"})
        return algorithm, digest

    def metadata(self) -> tuple[UploadMetadata, str]:
        raw = self.request.headers.get("Upload-Metadata", "")
        if len(raw) > MAX_METADATA_CHARS:
            raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters.", {"header": "Upload-Metadata"})
        values: dict[str, str] = {}
        seen: set[str] = set()
        for pair in filter(None, (p.strip() for p in raw.split(","))):
            key, _, encoded = pair.partition(" ")
            if not _KEY.match(key) or key in seen:
                raise BadRequest("Upload-Metadata keys are distinct, non-empty ASCII without spaces or commas.", {"header": "Upload-Metadata"})
            seen.add(key)
            try:
                value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise BadRequest(f"Upload-Metadata value of {key[:64]!r} is not base64 of UTF-8 text.", {"header": "Upload-Metadata", "key": key[:64]}) from None
            ours = METADATA_KEYS.get(key)
            if ours and (ours not in values or key == ours):
                values[ours] = value
        if "dataset" in values:
            # Uppy and tus-js-client send the file's name as "name"; with a dataset it means nothing
            values.pop("name", None)
        if "\x00" in "".join(values.values()):
            raise BadRequest("Upload-Metadata values may not contain NUL.", {"header": "Upload-Metadata"})
        return self._validate(UploadMetadata, values), raw

    # -- responses ---------------------------------------------------------------------------

    def upload_headers(self, upload: UploadOut) -> None:
        self.set_header("Upload-Offset", str(upload.offset))
        self.set_header("Upload-Length", str(upload.length))
        if upload.expires_at is not None:
            self.set_header("Upload-Expires", format_datetime(upload.expires_at, usegmt=True))
        if upload.version_id:
            # which version the upload became: tus has no body on these answers
            self.set_header("AIStudio-Dataset", upload.dataset_id or "")
            self.set_header("AIStudio-Version", str(upload.version))
            self.set_header("AIStudio-Version-Id", upload.version_id)


@stream_request_body
class UploadsHandler(TusHandler):
    """tus creation: ``POST`` with Upload-Length and Upload-Metadata (base64 pairs: ``filename``,
    ``dataset`` — an existing dataset's id — or ``name`` — a dataset created on completion —,
    ``content_type``, optional ``description``, ``visibility``, ``team``); the body may carry the
    first bytes (creation-with-upload). ``OPTIONS`` tells the protocol and limits."""

    streaming = ("POST",)
    operations = {
        "options": Operation("tus discovery: Tus-Version, Tus-Extension, Tus-Checksum-Algorithm and the caller's Tus-Max-Size", None, status=204, tag="uploads"),
        "post": Operation("Create a tus upload (Upload-Length, Upload-Metadata); answers its URL in Location", None, status=201, tag="uploads"),
    }
    openapi_responses = {"post": _errors(412, 413, 415, 423, 460, 507)}

    async def open_session(self) -> None:
        if self.request.headers.get("Upload-Defer-Length") is not None:
            raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length.", {"header": "Upload-Defer-Length"})
        length = self.int_header("Upload-Length")
        metadata, raw = self.metadata()
        body = self.body_length()
        if body != 0:
            self.check_stream_type()
            if body is not None and body > length:
                raise PayloadTooLarge("The body is longer than Upload-Length.", {"length": length})
        checksum = self.checksum()
        uploads = self.services.uploads
        self.upload = await uploads.create(self.principal, length, metadata, raw)
        self.set_header("Location", url_path_join(self.base_url, "aistudio/api/uploads", self.upload.id))
        if body != 0:
            self.session = await uploads.open_patch(self.principal, self.upload.id, 0, body, checksum)
            self.request.connection.set_max_body_size(length)
        else:
            self.request.connection.set_max_body_size(0)

    @web.authenticated
    @authorized
    async def options(self) -> None:
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", TUS_EXTENSIONS)
        self.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))
        self.set_header("Tus-Max-Size", str(self.services.uploads.max_size(self.principal)))
        self.set_status(204)
        self.finish()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        upload = await self.session.finish() if self.session is not None else self.upload
        self.upload_headers(upload)
        self.set_status(201)
        self.finish()


@stream_request_body
class UploadHandler(TusHandler):
    """One tus upload: ``HEAD`` (where it stands), ``PATCH`` (append bytes at Upload-Offset, as
    application/offset+octet-stream, optionally with Upload-Checksum), ``DELETE`` (abandon it);
    ``GET`` answers the same as JSON, with the dataset version it became."""

    streaming = ("PATCH",)
    operations = {
        "get": Operation("An upload's state as JSON, with the dataset version it became", UploadOut, tag="uploads"),
        "head": Operation("tus: Upload-Offset and Upload-Length of an upload", None, tag="uploads"),
        "patch": Operation("tus: append the body at Upload-Offset; the last bytes complete the upload into a dataset version", None, status=204, tag="uploads"),
        "delete": Operation("tus termination: abandon an upload and delete its bytes", None, status=204, tag="uploads"),
    }
    openapi_responses = {
        "head": _errors(410, 412),
        "patch": _errors(410, 412, 413, 415, 423, 460, 507),
        "delete": _errors(412, 423),
    }

    async def check_request(self) -> None:
        # a malformed id names no upload, whatever else is wrong with the request
        if not _UPLOAD_ID.match(self.path_kwargs.get("id", "")):
            raise NotFound("No such upload.", {"id": self.path_kwargs.get("id", "")[:64]})
        await super().check_request()

    async def open_session(self) -> None:
        self.check_stream_type()
        offset = self.int_header("Upload-Offset")
        checksum = self.checksum()
        id = self.path_kwargs["id"]
        self.session = await self.services.uploads.open_patch(self.principal, id, offset, self.body_length(), checksum)
        self.request.connection.set_max_body_size(self.session.remaining)

    @web.authenticated
    @authorized
    async def head(self, id: str) -> None:
        status = await self.services.uploads.status(self.principal, id)
        self.upload_headers(status.upload)
        if status.metadata:
            self.set_header("Upload-Metadata", status.metadata)
        self.set_header("Cache-Control", "no-store")
        self.finish()

    @web.authenticated
    @authorized
    async def patch(self, id: str) -> None:
        upload = await self.session.finish()
        self.upload_headers(upload)
        self.set_status(204)
        self.finish()

    @web.authenticated
    @authorized
    async def delete(self, id: str) -> None:
        await self.services.uploads.terminate(self.principal, id)
        self.set_status(204)
        self.finish()

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        self.reply(await self.services.uploads.get(self.principal, id))


default_handlers = [
    ("/uploads", UploadsHandler),
    ("/uploads/{id}", UploadHandler),
]
