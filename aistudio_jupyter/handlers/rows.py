"""`/datasets/{id}/rows`: a page of a stored version's rows, filtered, sorted and projected."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.rows import RowsOut, RowsQuery
from .base import AIStudioHandler, Operation


class RowsHandler(AIStudioHandler):
    """Rows of a version (default: latest), read from the stored file without loading it whole."""

    operations = {"get": Operation("Read a page of a dataset version's rows (filter, sort, columns)", RowsOut, query=RowsQuery, tag="dataset")}
    openapi_responses = {
        "get": {
            409: ("The dataset has no versions yet", ErrorEnvelope),
            415: ("The version is not a tabular file", ErrorEnvelope),
            503: ("The rows need more memory than one request may use", ErrorEnvelope),
        }
    }

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(RowsQuery)
        self.finish((await self.services.rows.rows(self.principal, id, query)).model_dump_json())


default_handlers = [("/datasets/{id}/rows", RowsHandler)]
