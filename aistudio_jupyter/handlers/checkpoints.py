"""`/jobs/{id}/checkpoint`: a train job's latest checkpoint (one safetensors file)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.web import stream_request_body

from ..errors import BadRequest
from ..schemas.common import ErrorEnvelope
from ..schemas.model_versions import CheckpointOut
from .base import Operation
from .model_versions import DownloadMixin
from .uploads import StreamingHandler


@stream_request_body
class CheckpointHandler(DownloadMixin, StreamingHandler):
    """GET the latest checkpoint of a job you can read; PUT (raw safetensors body) replaces it.

    Only the job's own process writes, with its job token; the body streams to storage and
    becomes the latest checkpoint atomically once it parses as safetensors.
    """

    streaming = ("PUT",)
    job_token_allowed = True
    operations = {
        "get": Operation("Download a job's latest checkpoint (safetensors)", None, tag="job"),
        "put": Operation("Store the job's checkpoint (raw safetensors body; the job's own token only)", CheckpointOut, tag="job"),
    }
    openapi_responses = {"get": {416: ("The Range is outside the file", ErrorEnvelope)}, "put": {413: ("Larger than checkpoints may be", ErrorEnvelope)}}

    async def open_session(self) -> None:
        self.session = await self.services.training.open_checkpoint(self.principal, self.path_kwargs["id"], self.body_length())

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        service = self.services.training
        await self.send_download(await service.checkpoint(self.principal, id), service.read)

    @web.authenticated
    @authorized
    async def put(self, id: str) -> None:
        if self.session is None:
            raise BadRequest("No checkpoint body.")
        self.reply(await self.session.finish())


default_handlers = [
    ("/jobs/{id}/checkpoint", CheckpointHandler),
]
