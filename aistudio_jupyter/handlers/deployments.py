"""`/deployments` routes."""

from __future__ import annotations

from ..schemas.deployments import DeploymentCreate, DeploymentOut, DeploymentUpdate
from .resources import CollectionHandler, ItemHandler


class DeploymentMixin:
    service_name = "deployments"
    kind = "deployment"
    out_model = DeploymentOut
    create_model = DeploymentCreate
    update_model = DeploymentUpdate


class DeploymentsHandler(DeploymentMixin, CollectionHandler):
    """List and create deployments."""


class DeploymentHandler(DeploymentMixin, ItemHandler):
    """Read, change and delete one deployment."""


default_handlers = [
    ("/deployments", DeploymentsHandler),
    ("/deployments/{id}", DeploymentHandler),
]
