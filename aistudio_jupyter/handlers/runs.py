"""`/jobs/interactive` and `/jobs/{id}/finish`: runs tracked from the user's own kernel."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.jobs import JobOut
from ..schemas.runs import InteractiveRunCreate, RunFinish
from .base import AIStudioHandler, Operation


class InteractiveRunsHandler(AIStudioHandler):
    """Start an interactive run (``ais.track``): a job in state ``running`` whose process is the
    caller's kernel; it takes metrics until the kernel finishes it."""

    operations = {"post": Operation("Start an interactive run", JobOut, body=InteractiveRunCreate, status=201, tag="job")}

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.parse_body(InteractiveRunCreate)
        self.reply(await self.services.runs.create(self.principal, body), status=201)


class RunFinishHandler(AIStudioHandler):
    """End an interactive run as succeeded or failed (canceled if someone canceled it)."""

    operations = {"post": Operation("Finish an interactive run", JobOut, body=RunFinish, tag="job")}
    openapi_responses = {"post": {409: ("The job is not interactive or has already ended", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        body = self.parse_body(RunFinish)
        self.reply(await self.services.runs.finish(self.principal, id, body))


default_handlers = [
    ("/jobs/interactive", InteractiveRunsHandler),
    ("/jobs/{id}/finish", RunFinishHandler),
]
