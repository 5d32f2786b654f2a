"""`/datasets/{id}/profile`: per-column statistics of a stored version, computed once."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.profiles import ProfileOut, ProfileQuery
from .base import AIStudioHandler, Operation


class ProfileHandler(AIStudioHandler):
    """A version's profile (default: latest): types, counts, nulls, distinct values, ranges, quantiles, top values, histograms."""

    operations = {"get": Operation("Profile a dataset version's columns (computed on first request, then stored)", ProfileOut, query=ProfileQuery, tag="dataset")}
    openapi_responses = {
        "get": {
            409: ("The dataset has no versions yet", ErrorEnvelope),
            415: ("The version is not a tabular file", ErrorEnvelope),
            503: ("The profile needs more memory than it may use now", ErrorEnvelope),
        }
    }

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(ProfileQuery)
        self.finish((await self.services.profiles.profile(self.principal, id, query)).model_dump_json())


default_handlers = [("/datasets/{id}/profile", ProfileHandler)]
