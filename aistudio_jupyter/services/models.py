"""The model registry's models (versions arrive from training and registration)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict
from ..identity import Principal
from ..schemas.models import ModelOut
from ..store import orm
from .resources import ResourceService


class ModelService(ResourceService[ModelOut]):
    orm = orm.Model
    out = ModelOut
    kind = "model"
    id_prefix = "mdl"

    def before_delete(self, session: Session, who: Principal, row) -> None:
        deployed = session.scalars(select(orm.Deployment.id).where(orm.Deployment.model_id == row.id)).all()
        if deployed:
            raise Conflict("The model has deployments; delete them first.", {"deployments": list(deployed)})
