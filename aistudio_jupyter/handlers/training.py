"""`POST /models/train`: the built-in trainer as a job."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.jobs import JobOut
from ..schemas.training import TrainSpec
from .base import AIStudioHandler, Operation


class TrainHandler(AIStudioHandler):
    """Train a model on a dataset version with the built-in trainer.

    The dataset version, the columns and the model spec are checked before anything is
    queued (422 names the column or the layer); the model is created when ``model_name`` is
    new. The job registers a model version when it succeeds; its ``result`` names it.
    """

    operations = {"post": Operation("Queue a train job (built-in trainer)", JobOut, body=TrainSpec, status=201, tag="model")}

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.parse_body(TrainSpec)
        self.reply(await self.services.training.train(self.principal, body), status=201)


default_handlers = [
    ("/models/train", TrainHandler),
]
