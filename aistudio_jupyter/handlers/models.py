"""`/models` routes."""

from __future__ import annotations

from ..schemas.models import ModelCreate, ModelOut, ModelUpdate
from .resources import CollectionHandler, ItemHandler


class ModelMixin:
    service_name = "models"
    kind = "model"
    out_model = ModelOut
    create_model = ModelCreate
    update_model = ModelUpdate


class ModelsHandler(ModelMixin, CollectionHandler):
    """List and create models."""


class ModelHandler(ModelMixin, ItemHandler):
    """Read, change and delete one model."""


default_handlers = [
    ("/models", ModelsHandler),
    ("/models/{id}", ModelHandler),
]
