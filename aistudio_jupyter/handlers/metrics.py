"""`/jobs/{id}/metrics`: batches of points in (from runs and job tokens), downsampled series out."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.metrics import MetricsAccepted, MetricsIn, MetricsOut, MetricsQuery
from .base import AIStudioHandler, Operation


class MetricsHandler(AIStudioHandler):
    """A job's metric points. A job process posts them with its job token; an empty batch is a
    heartbeat whose answer says whether the job was canceled."""

    #: a job token may post its own job's points (the service checks which job)
    job_token_allowed = True
    operations = {
        "get": Operation("Read a job's metric series, downsampled keeping each bucket's minimum and maximum", MetricsOut, query=MetricsQuery, tag="job"),
        "post": Operation("Append a batch of metric points to a running job", MetricsAccepted, body=MetricsIn, tag="job"),
    }
    openapi_responses = {"post": {409: ("The job has ended and takes no more points", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(MetricsQuery)
        self.reply(await self.services.metrics.query(self.principal, id, query))

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        body = self.parse_body(MetricsIn)
        self.reply(await self.services.metrics.ingest(self.principal, id, body.points))


default_handlers = [("/jobs/{id}/metrics", MetricsHandler)]
