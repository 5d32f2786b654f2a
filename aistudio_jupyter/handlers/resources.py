"""Generic collection and item handlers for owned resources; each resource module names its
service, schemas and routes, and inherits the thin parse → service → serialise methods."""

from __future__ import annotations

from typing import Any, ClassVar

from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel
from tornado import web

from ..schemas.common import ListQuery, Page
from .base import AIStudioHandler, Operation


class ResourceHandler(AIStudioHandler):
    service_name: ClassVar[str]
    kind: ClassVar[str]
    out_model: ClassVar[type[BaseModel]]
    create_model: ClassVar[type[BaseModel] | None] = None
    update_model: ClassVar[type[BaseModel] | None] = None

    @property
    def service(self):
        return getattr(self.services, self.service_name)


class ReadOnlyCollectionHandler(ResourceHandler):
    """``GET /things``: a keyset-paginated, filtered page of what the caller can see."""

    @classmethod
    def openapi_operations(cls) -> dict[str, Operation]:
        return {"get": Operation(f"List {cls.kind}s the caller can see", Page[cls.out_model], query=ListQuery, tag=cls.kind)}

    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(ListQuery)
        self.reply(await self.service.list(self.principal, query))


class CollectionHandler(ReadOnlyCollectionHandler):
    """``GET,POST /things``."""

    @classmethod
    def openapi_operations(cls) -> dict[str, Operation]:
        ops = super().openapi_operations()
        ops["post"] = Operation(f"Create a {cls.kind}", cls.out_model, body=cls.create_model, status=201, tag=cls.kind)
        return ops

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.parse_body(self.create_model)
        self.reply(await self.service.create(self.principal, body), status=201)


class ReadOnlyItemHandler(ResourceHandler):
    """``GET /things/{id}``."""

    @classmethod
    def openapi_operations(cls) -> dict[str, Operation]:
        return {"get": Operation(f"Get one {cls.kind}", cls.out_model, tag=cls.kind)}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        self.reply(await self.service.get(self.principal, id))


class ItemHandler(ReadOnlyItemHandler):
    """``GET,PATCH,DELETE /things/{id}``."""

    @classmethod
    def openapi_operations(cls) -> dict[str, Operation]:
        ops = super().openapi_operations()
        ops["patch"] = Operation(f"Change a {cls.kind}", cls.out_model, body=cls.update_model, tag=cls.kind)
        ops["delete"] = Operation(f"Delete a {cls.kind}", None, status=204, tag=cls.kind)
        return ops

    @web.authenticated
    @authorized
    async def patch(self, id: str) -> None:
        body = self.parse_body(self.update_model)
        self.reply(await self.service.update(self.principal, id, body))

    @web.authenticated
    @authorized
    async def delete(self, id: str) -> Any:
        await self.service.delete(self.principal, id)
        self.reply(None, status=204)
