"""`/compute/estimate`: memory, time and cost of a training run before it is queued."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.compute import EstimateIn, EstimateOut
from .base import AIStudioHandler, Operation


class EstimateHandler(AIStudioHandler):
    """Estimate GPU memory per device, FLOPs, time and cost; optionally measure a few steps."""

    operations = {"post": Operation("Estimate memory, time and cost of training a model (optionally measure a few real steps)", EstimateOut, body=EstimateIn, tag="compute")}
    openapi_responses = {"post": {429: ("Another measured estimate is running; retry after Retry-After seconds", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.parse_body(EstimateIn)
        self.reply(await self.services.compute.estimate(self.principal, request))


default_handlers = [("/compute/estimate", EstimateHandler)]
