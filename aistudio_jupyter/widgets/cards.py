"""ModelCard and DeploymentCard: what ``Model`` and ``Deployment`` records display as.

A ModelCard lists a model's versions with their stage and key metrics. A DeploymentCard shows
a deployment's state and replicas, follows ``deployment:<id>`` events and stops or starts it
from the browser (over REST, without the kernel); ``stop()``/``start()`` do the same from Python.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..runtime.client import Client
from .base import StudioWidget

#: versions a ModelCard shows, newest first
VERSIONS_SHOWN = 20


def _id_and_client(record: Any, what: str) -> tuple[str, Client | None]:
    if isinstance(record, dict):
        if "id" not in record:
            raise ValueError(f"A {what} card needs a {what} record with an id.")
        return record["id"], getattr(record, "_client_ref", None) or getattr(record, "_client", None)
    if isinstance(record, str) and record:
        return record, None
    raise TypeError(f"A {what} card takes a {what} record or id, not {type(record).__name__}.")


class ModelCard(StudioWidget):
    """A registered model: its description and versions (stage, metrics, source job)."""

    _module = "cards.js"

    kind = traitlets.Unicode("model", help="Which card cards.js draws.").tag(sync=True)
    # not model_id: ipywidgets' Widget.model_id is the widget's own comm id
    registry_id = traitlets.Unicode(help="The id of the model shown.").tag(sync=True)
    record = traitlets.Dict(help="The model's record.").tag(sync=True)
    versions = traitlets.List(help="Its newest versions (without their full specs).").tag(sync=True)
    revision = traitlets.Int(0, help="Bumped by every load.").tag(sync=True)

    def __init__(self, model: Any, *, client: Client | None = None, **traits: Any) -> None:
        model_id, own = _id_and_client(model, "model")
        super().__init__(client=client or own, registry_id=model_id, **traits)
        self.refresh()

    def refresh(self) -> None:
        """Load the model and its versions again."""
        self._guard(self._load)

    def _load(self) -> None:
        record = self.client.request("GET", f"/models/{self.registry_id}")
        page = self.client.request("GET", f"/models/{self.registry_id}/versions", params={"limit": VERSIONS_SHOWN})
        # the layer spec can be large and the card does not draw it
        versions = [{k: v for k, v in version.items() if k not in ("spec", "lineage")} for version in page["items"]]
        with self.hold_sync():
            self.record, self.versions = record, versions
            self.revision += 1


class DeploymentCard(StudioWidget):
    """A deployment: state, replicas (live) and Stop/Start."""

    _module = "cards.js"

    kind = traitlets.Unicode("deployment", help="Which card cards.js draws.").tag(sync=True)
    deployment_id = traitlets.Unicode(help="The deployment shown.").tag(sync=True)
    deployment = traitlets.Dict(help="The deployment's record, replica_status included.").tag(sync=True)
    since = traitlets.Dict(help="Topic → the last event seq already reflected in ``deployment``.").tag(sync=True)
    revision = traitlets.Int(0, help="Bumped by every load.").tag(sync=True)

    def __init__(self, deployment: Any, *, client: Client | None = None, **traits: Any) -> None:
        deployment_id, own = _id_and_client(deployment, "deployment")
        super().__init__(client=client or own, deployment_id=deployment_id, **traits)
        self.refresh()

    @property
    def topic(self) -> str:
        return f"deployment:{self.deployment_id}"

    @property
    def state(self) -> str | None:
        return self.deployment.get("state")

    def refresh(self) -> None:
        """Load the deployment again (the browser resumes its events after it)."""
        self._guard(self._load)

    def _load(self) -> None:
        since = self._heads([self.topic])
        record = self.client.request("GET", f"/deployments/{self.deployment_id}")
        with self.hold_sync():
            self.deployment, self.since = record, since
            self.revision += 1

    def stop(self) -> dict | None:
        """Stop its replicas (the deployment stays, ready to start again)."""
        return self._act("stop")

    def start(self) -> dict | None:
        """Start a stopped deployment again."""
        return self._act("start")

    def _act(self, verb: str) -> dict | None:
        record = self._guard(self.client.request, "POST", f"/deployments/{self.deployment_id}/{verb}")
        if record is not None:
            self.deployment = record
        return record
