"""Datasets: named, shareable collections of immutable versions."""

from __future__ import annotations

from ..schemas.datasets import DatasetOut
from ..store import orm
from .resources import ResourceService


class DatasetService(ResourceService[DatasetOut]):
    orm = orm.Dataset
    out = DatasetOut
    kind = "dataset"
    id_prefix = "ds"
    event_type = "dataset"
