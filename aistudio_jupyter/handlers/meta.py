"""`/health`, `/me` and `/openapi.json`."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel, ConfigDict
from tornado import web

from ..schemas.meta import HealthOut, MeOut
from .base import AIStudioHandler, Operation


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")
    openapi: str


class HealthHandler(AIStudioHandler):
    """Liveness of AI Studio and its database; answers even while the database is down."""

    operations = {"get": Operation("Health of AI Studio and its database", HealthOut, tag="meta")}
    # monitors read the component report on 503 too, so it is not the error envelope
    openapi_responses = {"get": {503: ("Degraded: the database does not answer", HealthOut)}}

    @web.authenticated
    @authorized
    async def get(self) -> None:
        health = await self.services.meta.health()
        if health.status != "ok":
            # load balancers and clients back off on this, as they do for the other routes' 503s
            self.set_header("Retry-After", str(self.services.db.retry_after()))
        self.reply(health, status=200 if health.status == "ok" else 503)


class MeHandler(AIStudioHandler):
    operations = {"get": Operation("The caller: identity, tier, quotas and usage", MeOut, tag="meta")}

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.services.meta.me(self.principal))


class OpenAPIHandler(AIStudioHandler):
    operations = {"get": Operation("This OpenAPI document", OpenAPIDocument, tag="meta")}

    @web.authenticated
    @authorized
    def get(self) -> None:
        from ..openapi import build_document

        server = self.base_url.rstrip("/") + "/aistudio/api"
        self.reply(build_document(self.aistudio.routes, server_url=server))


default_handlers = [
    ("/health", HealthHandler),
    ("/me", MeHandler),
    ("/openapi.json", OpenAPIHandler),
]
