"""`/datasets/{id}/validate` and `/datasets/{id}/validations…`: declarative checks of a stored
version, run as a background ``validate`` job; the report is read back when it has run."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.validation import ValidateRequest, ValidationList, ValidationListQuery, ValidationOut, ValidationStarted
from .base import AIStudioHandler, Operation


class ValidateHandler(AIStudioHandler):
    """Queue a validation of a version (default: latest) with declarative rules; the automatic checks
    (schema, malformed rows, mixed types, encoding, empty columns) always run. Answers 202 at once with
    the pending report and its job; follow the job's `progress` events or poll the report."""

    operations = {"post": Operation("Validate a dataset version (background job)", ValidationStarted, body=ValidateRequest, status=202, tag="dataset")}
    openapi_responses = {
        "post": {
            409: ("The dataset has no versions yet", ErrorEnvelope),
            415: ("The version is not a tabular file", ErrorEnvelope),
            503: ("The database or the stored file is unavailable now", ErrorEnvelope),
        }
    }

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        body = self.parse_body(ValidateRequest)
        self.reply(await self.services.validation.submit(self.principal, id, body), 202)


class ValidationsHandler(AIStudioHandler):
    """The validation reports of a dataset, newest first."""

    operations = {"get": Operation("List a dataset's validation reports", ValidationList, query=ValidationListQuery, tag="dataset")}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(ValidationListQuery)
        self.reply(ValidationList(items=await self.services.validation.list(self.principal, id, query)))


class ValidationHandler(AIStudioHandler):
    """One validation report: pending or running until its job has run, then passed, failed or error."""

    operations = {"get": Operation("Get a validation report", ValidationOut, tag="dataset")}

    @web.authenticated
    @authorized
    async def get(self, id: str, vid: str) -> None:
        self.reply(await self.services.validation.get(self.principal, id, vid))


default_handlers = [
    ("/datasets/{id}/validate", ValidateHandler),
    ("/datasets/{id}/validations", ValidationsHandler),
    ("/datasets/{id}/validations/{vid}", ValidationHandler),
]
