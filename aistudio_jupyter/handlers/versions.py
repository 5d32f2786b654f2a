"""`/datasets/{id}/versions…` (list, one, download with Range) and `/datasets/{id}/files`
(a small file as multipart/form-data, streamed; it becomes a new version)."""

from __future__ import annotations

import re
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.web import stream_request_body

from ..errors import BadRequest, InvalidInput, UnsupportedMediaType
from ..schemas.common import ErrorEnvelope, Page
from ..schemas.uploads import VersionListQuery, VersionOut
from ..services.versions import RangeNotSatisfiable
from .base import AIStudioHandler, Operation
from .multipart import MultipartParser, boundary_of
from .uploads import StreamingHandler

_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
#: characters a quoted-string filename keeps; anything else is replaced there and kept in filename*
_PLAIN = re.compile(r"[^A-Za-z0-9 !#$&+.^_`|~()\[\]{}@=,;-]")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name as RFC 5987 ``filename*``."""
    fallback = _PLAIN.sub("_", filename)[:200] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``Range: bytes=…``; None to send everything (no or multiple ranges)."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable("Range must be bytes=start-end, bytes=start- or bytes=-suffix.", {"size": size})
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = size if last == "" else min(size, int(last) + 1)
        if last != "" and int(last) < start:
            raise RangeNotSatisfiable("The range ends before it starts.", {"size": size})
    if start >= size or start >= end:
        raise RangeNotSatisfiable("The range is outside the file.", {"size": size})
    return start, end


class VersionReplyMixin:
    def reply_aliased(self, value) -> None:
        # the API's "schema" key is an alias (see schemas/uploads.VersionOut)
        self.finish(value.model_dump_json(by_alias=True))


class VersionsHandler(VersionReplyMixin, AIStudioHandler):
    """The versions of a dataset, newest first; each is immutable."""

    operations = {"get": Operation("List a dataset's versions", Page[VersionOut], query=VersionListQuery, tag="dataset")}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(VersionListQuery)
        self.reply_aliased(await self.services.versions.list(self.principal, id, query))


class VersionHandler(VersionReplyMixin, AIStudioHandler):
    """One version of a dataset by number, or ``latest``."""

    operations = {"get": Operation("Get one version of a dataset (a number or 'latest')", VersionOut, tag="dataset")}

    @web.authenticated
    @authorized
    async def get(self, id: str, v: str) -> None:
        self.reply_aliased(await self.services.versions.get(self.principal, id, v))


class DownloadMixin:
    """Serve a ``services.versions.Download`` with ETag, If-None-Match and one byte Range."""

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = (kwargs.get("exc_info") or (None, None))[1]
        if isinstance(exc, RangeNotSatisfiable):
            # set here: an error answer starts from cleared headers
            self.set_header("Content-Range", f"bytes */{exc.details['size']}")
        super().write_error(status_code, **kwargs)

    async def send_download(self, download, read) -> None:
        etag = f'"{download.sha256}"'
        self.set_header("ETag", etag)
        self.set_header("Accept-Ranges", "bytes")
        # "latest" moves, so caches revalidate; the ETag makes that cheap
        self.set_header("Cache-Control", "private, no-cache")
        if etag in [t.strip() for t in self.request.headers.get("If-None-Match", "").split(",")]:
            self.set_status(304)
            return self.finish()
        span = byte_range(self.request.headers.get("Range"), download.size)
        start, end = span or (0, download.size)
        if span:
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end - 1}/{download.size}")
        # the served type comes from what the server decided, never from the uploader
        self.set_header("Content-Type", download.media_type)
        self.set_header("Content-Disposition", content_disposition(download.filename))
        self.set_header("Content-Length", str(end - start))
        async for chunk in read(download, start, end):
            self.write(chunk)
            await self.flush()  # one chunk in memory at a time, at the client's pace
        self.finish(set_content_type=download.media_type)


class VersionDownloadHandler(DownloadMixin, AIStudioHandler):
    """The bytes of a version, streamed from storage; ``Range: bytes=…`` answers 206."""

    operations = {"get": Operation("Download a version's file (Range and If-None-Match supported)", None, tag="dataset")}
    openapi_responses = {"get": {416: ("The Range is outside the file", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def get(self, id: str, v: str) -> None:
        versions = self.services.versions
        await self.send_download(await versions.download(self.principal, id, v), versions.read)


@stream_request_body
class DatasetFilesHandler(VersionReplyMixin, StreamingHandler):
    """A small file (one ``file`` part of multipart/form-data) becomes the dataset's next version.

    Streamed to storage as it arrives; requests over ``UploadService.small_file_bytes`` are
    refused up front (413): larger files go through tus at ``/uploads``.
    """

    streaming = ("POST",)
    operations = {"post": Operation("Upload a small file (multipart/form-data, field 'file') as a new version", VersionOut, status=201, tag="dataset")}
    openapi_responses = {"post": {s: (t, ErrorEnvelope) for s, t in [(413, "Larger than small-file uploads allow"), (415, "Not multipart/form-data, or not a supported format"), (507, "The storage quota would be exceeded")]}}

    parser: MultipartParser | None = None
    parts = 0
    problem: Exception | None = None

    async def open_session(self) -> None:
        ctype = self.request.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise UnsupportedMediaType("Send the file as multipart/form-data (field 'file'), or use tus at /uploads.", {"content_type": ctype[:100]})
        self.parser = MultipartParser(boundary_of(ctype))
        self.session = await self.services.uploads.open_file(self.principal, self.path_kwargs["id"], self.body_length())
        # the multipart framing around the file is small
        self.request.connection.set_max_body_size(self.session.limit + 64 * 1024)

    async def data_received(self, chunk: bytes) -> None:
        if self.problem is not None or self.session is None:
            return
        try:
            for kind, value in self.parser.feed(chunk):
                if kind == "part":
                    self.parts += 1
                    if self.parts > 1 or value.name != "file" or not value.filename:
                        raise InvalidInput("Send exactly one part: the field 'file', with a filename.", {"field": "file"})
                    self.session.filename = value.filename
                elif kind == "data":
                    pending = self.session.feed(value)
                    if pending is not None:
                        await pending
        except Exception as exc:  # answered once the body is in: tornado cannot answer from here
            self.problem = exc

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        if self.problem is not None:
            raise self.problem
        if not self.parser.finished or not self.parts:
            raise BadRequest("The multipart body ended early or holds no file.", {"field": "file"})
        version = await self.session.finish()
        self.set_status(201)
        self.reply_aliased(version)


default_handlers = [
    ("/datasets/{id}/versions", VersionsHandler),
    ("/datasets/{id}/versions/{v}", VersionHandler),
    ("/datasets/{id}/versions/{v}/download", VersionDownloadHandler),
    ("/datasets/{id}/files", DatasetFilesHandler),
]
