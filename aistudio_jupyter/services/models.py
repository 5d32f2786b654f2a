"""The model registry's models (versions arrive from training and registration)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..identity import Principal
from ..schemas.models import ModelOut
from ..store import orm
from .model_versions import ModelVersionService
from .resources import ResourceService


class ModelService(ResourceService[ModelOut]):
    orm = orm.Model
    out = ModelOut
    kind = "model"
    id_prefix = "mdl"
    event_type = "model"

    def before_delete(self, session: Session, who: Principal, row) -> None:
        # any deployment of any version, whatever its state: the user deletes those first
        ModelVersionService.deployment_conflict(session, who, row, None)
