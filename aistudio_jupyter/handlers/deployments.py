"""`/deployments` routes: CRUD, predict, stop, start and replica logs."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import BadRequest, InvalidInput, UnsupportedMediaType
from ..schemas.common import ErrorEnvelope
from ..schemas.deployments import DeploymentCreate, DeploymentLogOut, DeploymentLogQuery, DeploymentOut, DeploymentUpdate, PredictIn, PredictOut
from .base import AIStudioHandler, Operation, _reject_constant, _unstorable_string
from .resources import CollectionHandler, ItemHandler


class DeploymentMixin:
    service_name = "deployments"
    kind = "deployment"
    out_model = DeploymentOut
    create_model = DeploymentCreate
    update_model = DeploymentUpdate


class DeploymentsHandler(DeploymentMixin, CollectionHandler):
    """List and create deployments; a new one starts its replicas at once (``pending`` →
    ``loading`` → ``ready``), on the model's latest version unless ``model_version`` pins one."""


class DeploymentHandler(DeploymentMixin, ItemHandler):
    """Read, change and delete one deployment. PATCH ``model_version`` rolls the replicas over
    to it one at a time, without failing requests; PATCH ``replicas`` scales. DELETE stops the
    replicas first."""


class DeploymentPredictHandler(AIStudioHandler):
    """Predictions from a ready replica, batched with other requests to the same deployment."""

    operations = {"post": Operation("Predict: records or inputs in, one prediction per row out", PredictOut, body=PredictIn, tag="deployment")}
    openapi_responses = {
        "post": {
            409: ("The deployment is stopped, failed, or has no model version", ErrorEnvelope),
            503: ("No replica is ready, or one failed mid-request: retry after Retry-After seconds", ErrorEnvelope),
        }
    }

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        service = self.services.deployments
        raw = self.request.body or b""
        service.check_predict_size(len(raw))
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json") and ctype != "text/plain":
            raise UnsupportedMediaType("Send the body as application/json.", {"content_type": ctype[:100]})
        try:
            data = json.loads(raw or b"{}", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(f"The body is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise InvalidInput("The body must be a JSON object.")
        if _unstorable_string(data):
            raise InvalidInput("Strings in the body may not contain NUL characters or unpaired surrogates.")
        # the envelope only (extra fields refused); the rows are checked against the model's schema
        self._validate(PredictIn, {k: [] if isinstance(v, list) else v for k, v in data.items()})
        self.reply(await service.predict(self.principal, id, data))


class DeploymentStopHandler(AIStudioHandler):
    """Stop the replicas; ``state`` becomes ``stopped`` once they have (watch ``deployment:<id>``)."""

    operations = {"post": Operation("Stop a deployment's replicas", DeploymentOut, status=202, tag="deployment")}

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        self.reply(await self.services.deployments.stop_serving(self.principal, id), status=202)


class DeploymentStartHandler(AIStudioHandler):
    """Start a stopped (or failed) deployment's replicas again."""

    operations = {"post": Operation("Start a deployment's replicas", DeploymentOut, status=202, tag="deployment")}

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        self.reply(await self.services.deployments.start_serving(self.principal, id), status=202)


class DeploymentLogsHandler(AIStudioHandler):
    """The last lines of one replica's log (its stdout and stderr)."""

    operations = {"get": Operation("Read the end of a replica's log", DeploymentLogOut, query=DeploymentLogQuery, tag="deployment")}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(DeploymentLogQuery)
        self.reply(await self.services.deployments.logs(self.principal, id, query))


default_handlers = [
    ("/deployments", DeploymentsHandler),
    ("/deployments/{id}", DeploymentHandler),
    ("/deployments/{id}/predict", DeploymentPredictHandler),
    ("/deployments/{id}/stop", DeploymentStopHandler),
    ("/deployments/{id}/start", DeploymentStartHandler),
    ("/deployments/{id}/logs", DeploymentLogsHandler),
]
