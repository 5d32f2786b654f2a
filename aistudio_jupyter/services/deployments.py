"""Deployment definitions; a deployment points at a model the owner can read."""

from __future__ import annotations

from typing import get_args

from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..identity import Principal
from ..schemas.deployments import DeploymentState, DeploymentOut
from ..store import orm
from . import access
from .resources import ResourceService


class DeploymentService(ResourceService[DeploymentOut]):
    orm = orm.Deployment
    out = DeploymentOut
    kind = "deployment"
    id_prefix = "dep"
    filters = {"status": "state"}
    statuses = frozenset(get_args(DeploymentState))

    def values_for_create(self, session: Session, who: Principal, body: BaseModel) -> dict[str, Any]:
        values = body.model_dump()
        model = access.load(session, orm.Model, who, values["model_id"], kind="model")
        self._check_version(session, model.id, values.get("model_version"))
        values["state"] = "pending"
        return values

    def values_for_update(self, session: Session, who: Principal, row, body: BaseModel) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("model_version") is not None:
            self._check_version(session, row.model_id, changes["model_version"])
        return changes

    @staticmethod
    def _check_version(session: Session, model_id: str, version: int | None) -> None:
        if version is None:
            return
        found = session.scalar(
            select(orm.ModelVersion.id).where(orm.ModelVersion.model_id == model_id, orm.ModelVersion.version == version)
        )
        if not found:
            raise InvalidInput(f"The model has no version {version}.", {"field": "model_version"})
