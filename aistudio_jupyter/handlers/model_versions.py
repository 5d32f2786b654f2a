"""`/models/{id}/versions…`: list, read, register (multipart: ``meta`` JSON + ``weights``
safetensors, streamed), download a version's weights, move it between stages, delete it, its
lineage; `/models/{id}/compare`: versions side by side."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.web import stream_request_body

from ..errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..schemas.common import ErrorEnvelope, Page
from ..schemas.model_versions import ModelCompareOut, ModelCompareQuery, ModelLineageOut, ModelVersionListQuery, ModelVersionMeta, ModelVersionOut, ModelVersionUpdate
from .base import AIStudioHandler, Operation, _reject_constant, _unstorable_string
from .multipart import MultipartParser, boundary_of
from .uploads import StreamingHandler
from .versions import DownloadMixin


@stream_request_body
class ModelVersionsHandler(StreamingHandler):
    """A model's versions, newest first; POST registers a new one from ``meta`` + ``weights`` parts.

    The weights must be a safetensors file (checked from its header, never unpickled). A job
    token registers for its own job: the job id in the lineage comes from the token and the
    job's result names the new version.
    """

    streaming = ("POST",)
    job_token_allowed = True
    operations = {
        "get": Operation("List a model's versions", Page[ModelVersionOut], query=ModelVersionListQuery, tag="model"),
        "post": Operation("Register a version: multipart/form-data with parts 'meta' (JSON) and 'weights' (safetensors)", ModelVersionOut, status=201, tag="model"),
    }
    openapi_responses = {"post": {413: ("Weights or meta larger than allowed", ErrorEnvelope), 415: ("Not multipart/form-data", ErrorEnvelope)}}

    parser: MultipartParser | None = None
    part: str | None = None
    problem: Exception | None = None
    meta_bytes: bytearray | None = None

    async def open_session(self) -> None:
        ctype = self.request.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise UnsupportedMediaType("Send multipart/form-data with parts 'meta' (JSON) and 'weights' (safetensors).", {"content_type": ctype[:100]})
        self.parser = MultipartParser(boundary_of(ctype))
        self.seen: set[str] = set()
        self.meta_bytes = bytearray()
        self.session = await self.services.model_versions.open_registration(self.principal, self.path_kwargs["id"], self.body_length())

    async def data_received(self, chunk: bytes) -> None:
        if self.problem is not None or self.session is None:
            return
        try:
            for kind, value in self.parser.feed(chunk):
                if kind == "part":
                    if value.name not in ("meta", "weights") or value.name in self.seen:
                        raise InvalidInput("Send two parts, once each: 'meta' (JSON) and 'weights' (safetensors).", {"field": str(value.name)[:64]})
                    self.part = value.name
                    self.seen.add(value.name)
                elif kind == "data" and self.part == "meta":
                    self.meta_bytes += value
                    limit = self.services.model_versions.max_meta_bytes
                    if len(self.meta_bytes) > limit:
                        raise PayloadTooLarge(f"The meta part is larger than {limit} bytes.", {"field": "meta"})
                elif kind == "data":
                    pending = self.session.weights.feed(value)
                    if pending is not None:
                        await pending
        except Exception as exc:  # answered once the body is in: tornado cannot answer from here
            self.problem = exc

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(ModelVersionListQuery)
        self.reply(await self.services.model_versions.list(self.principal, id, query))

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        if self.problem is not None:
            raise self.problem
        if not self.parser.finished:
            raise BadRequest("The multipart body ended early.", {"field": "weights"})
        if self.seen != {"meta", "weights"}:
            raise InvalidInput("Send two parts: 'meta' (JSON) and 'weights' (safetensors).", {"field": "weights" if "meta" in self.seen else "meta"})
        self.reply(await self.session.finish(self.parse_meta()), status=201)

    def parse_meta(self) -> ModelVersionMeta:
        """The 'meta' part, held to the same rules as any JSON body."""
        try:
            data = json.loads(bytes(self.meta_bytes), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidInput(f"The meta part is not valid JSON: {str(exc)[:200]}", {"field": "meta"}) from None
        if not isinstance(data, dict) or _unstorable_string(data):
            raise InvalidInput("The meta part must be a JSON object without NUL characters or unpaired surrogates.", {"field": "meta"})
        try:
            return self._validate(ModelVersionMeta, data)
        except InvalidInput as exc:
            raise InvalidInput(f"meta.{exc.message}", {"field": "meta", **exc.details}) from None


class ModelVersionHandler(AIStudioHandler):
    """One version of a model by number, ``latest``, or the newest in ``production`` / ``staging``."""

    operations = {
        "get": Operation("Get one version of a model (a number, 'latest', 'production' or 'staging')", ModelVersionOut, tag="model"),
        "patch": Operation("Move a version to another stage (none, staging, production, archived)", ModelVersionOut, body=ModelVersionUpdate, tag="model"),
        "delete": Operation("Delete a version no deployment uses (409 naming the deployments otherwise)", None, status=204, tag="model"),
    }
    openapi_responses = {"delete": {409: ("Deployments use this version", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def get(self, id: str, v: str) -> None:
        self.reply(await self.services.model_versions.get(self.principal, id, v))

    @web.authenticated
    @authorized
    async def patch(self, id: str, v: str) -> None:
        body = self.parse_body(ModelVersionUpdate)
        self.reply(await self.services.model_versions.set_stage(self.principal, id, v, body))

    @web.authenticated
    @authorized
    async def delete(self, id: str, v: str) -> None:
        await self.services.model_versions.delete(self.principal, id, v)
        self.reply(None, status=204)


class ModelLineageHandler(AIStudioHandler):
    """Where a version came from and where it runs; rows the caller cannot read are ``{id, hidden}``."""

    operations = {"get": Operation("A version's lineage: dataset version, job, deployments", ModelLineageOut, tag="model")}

    @web.authenticated
    @authorized
    async def get(self, id: str, v: str) -> None:
        self.reply(await self.services.model_versions.lineage(self.principal, id, v))


class ModelCompareHandler(AIStudioHandler):
    """Metrics, hyperparameters and lineage of several versions, side by side."""

    operations = {"get": Operation("Compare versions of a model (default: the newest 20)", ModelCompareOut, query=ModelCompareQuery, tag="model")}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(ModelCompareQuery)
        self.reply(await self.services.model_versions.compare(self.principal, id, query))


class ModelArtifactHandler(DownloadMixin, AIStudioHandler):
    """A version's weights (safetensors), streamed; ``Range: bytes=…`` answers 206."""

    operations = {"get": Operation("Download a version's weights (safetensors; Range and If-None-Match supported)", None, tag="model")}
    openapi_responses = {"get": {416: ("The Range is outside the file", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def get(self, id: str, v: str) -> None:
        service = self.services.model_versions
        await self.send_download(await service.artifact(self.principal, id, v), service.read)


default_handlers = [
    ("/models/{id}/versions", ModelVersionsHandler),
    ("/models/{id}/versions/{v}", ModelVersionHandler),
    ("/models/{id}/versions/{v}/artifact", ModelArtifactHandler),
    ("/models/{id}/versions/{v}/lineage", ModelLineageHandler),
    ("/models/{id}/compare", ModelCompareHandler),
]
