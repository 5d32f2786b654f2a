"""`/datasets` routes."""

from __future__ import annotations

from ..schemas.datasets import DatasetCreate, DatasetOut, DatasetUpdate
from .resources import CollectionHandler, ItemHandler


class DatasetMixin:
    service_name = "datasets"
    kind = "dataset"
    out_model = DatasetOut
    create_model = DatasetCreate
    update_model = DatasetUpdate


class DatasetsHandler(DatasetMixin, CollectionHandler):
    """List and create datasets."""


class DatasetHandler(DatasetMixin, ItemHandler):
    """Read, change and delete one dataset."""


default_handlers = [
    ("/datasets", DatasetsHandler),
    ("/datasets/{id}", DatasetHandler),
]
