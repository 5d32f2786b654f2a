"""Deployments: a model version served by supervised replicas; predict, stop, start, logs.

The service writes what the owner asks for (``desired_state``, ``model_version``, ``replicas``)
and wakes the serving supervisor (``serving.supervisor``), which makes it so and writes back
what is (``state``, ``replica_status``). Predictions go through the supervisor's router;
payloads are checked here against the version's input schema first.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, get_args

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float, Int

from ..errors import AIStudioError, Conflict, InvalidInput, PayloadTooLarge, Unavailable
from ..identity import Principal
from ..observability import observe_predict
from ..schemas.deployments import DeploymentLogOut, DeploymentLogQuery, DeploymentOut, DeploymentState
from ..serving.router import RETRY_AFTER
from ..serving.schema import check_payload, input_schema
from ..serving.supervisor import publish_status, status_data
from ..store import orm
from . import access, audit
from .resources import ResourceService

#: bytes read from the end of a replica's log for ``tail`` lines
LOG_TAIL_BYTES = 1024 * 1024


class DeploymentService(ResourceService[DeploymentOut]):
    orm = orm.Deployment
    out = DeploymentOut
    kind = "deployment"
    id_prefix = "dep"
    filters = {"status": "state"}
    statuses = frozenset(get_args(DeploymentState))
    event_type = "deployment"

    events = AnyTrait(None, allow_none=True, help="The EventService status changes are published through.")
    supervisor = AnyTrait(None, allow_none=True, help="The DeploymentSupervisor (serving.supervisor) that runs replicas and routes predictions.")
    max_predict_bytes = Int(4 * 1024 * 1024, config=True, help="The largest predict body in bytes; larger answers 413.")
    max_predict_rows = Int(10_000, config=True, help="The most rows one predict request may carry; more answers 413.")
    predict_cache_seconds = Float(1.0, config=True, help="How long predict trusts what it read about a deployment (access, state, version); changes made through another server show after at most this long.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: (model id, version) → input schema; a version's spec never changes
        self._schemas: dict[tuple[str, int], dict | None] = {}
        #: (deployment id, user, teams) → (expires at, what predict needs); see ``_target``
        self._targets: dict[tuple, tuple[float, tuple]] = {}

    # -- output ----------------------------------------------------------------------------

    def to_out(self, session: Session, row) -> DeploymentOut:
        out = DeploymentOut.model_validate(row)
        out.ready_replicas = sum(1 for r in out.replica_status if r.state == "ready")
        out.input_schema = self._schema(session, row.model_id, row.model_version)
        return out

    def _schema(self, session: Session, model_id: str, version: int | None) -> dict | None:
        if version is None:
            return None
        key = (model_id, version)
        if key not in self._schemas:
            spec = session.scalar(select(orm.ModelVersion.spec).where(orm.ModelVersion.model_id == model_id, orm.ModelVersion.version == version))
            if spec is None:
                return None  # not cached: a version registered later may fill it
            if len(self._schemas) > 10_000:
                self._schemas.clear()
            self._schemas[key] = input_schema(spec)
        return self._schemas[key]

    # -- writes ----------------------------------------------------------------------------

    def values_for_create(self, session: Session, who: Principal, body: BaseModel) -> dict[str, Any]:
        values = body.model_dump()
        model = access.load(session, orm.Model, who, values["model_id"], kind="model")
        if values.get("model_version") is None:
            # pinned now, so a later version never slips in unasked
            values["model_version"] = session.scalar(select(func.max(orm.ModelVersion.version)).where(orm.ModelVersion.model_id == model.id))
        else:
            self._check_version(session, model.id, values["model_version"])
        values["state"] = "pending"
        values["desired_state"] = "running"
        values["replica_status"] = []
        return values

    def values_for_update(self, session: Session, who: Principal, row, body: BaseModel) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("model_version") is not None:
            self._check_version(session, row.model_id, changes["model_version"])
        if row.state == "failed" and row.desired_state == "running" and ({"model_version", "replicas", "resources"} & changes.keys()):
            # a changed deployment gets a fresh start
            changes.update(state="pending", status_message=None)
        return changes

    async def create(self, who: Principal, body: BaseModel) -> DeploymentOut:
        out = await super().create(who, body)
        self._wake()
        return out

    async def update(self, who: Principal, id: str, body: BaseModel) -> DeploymentOut:
        out = await super().update(who, id, body)
        self._wake(id)
        return out

    async def delete(self, who: Principal, id: str) -> None:
        """Stop the deployment's replicas, then delete it."""
        await self._db().run(self._check_deletable, who, id)
        if self.supervisor is not None:
            await self.supervisor.stop_now(id)
        await super().delete(who, id)
        self._wake(id)

    def _check_deletable(self, session: Session, who: Principal, id: str) -> None:
        access.load(session, orm.Deployment, who, id, kind=self.kind)

    async def stop_serving(self, who: Principal, id: str) -> DeploymentOut:
        """Ask for the replicas to stop; ``state`` becomes ``stopped`` once they have."""
        out = await self._db().run(self._set_desired, who, id, "stopped", write=True)
        self._wake(id)
        return out

    async def start_serving(self, who: Principal, id: str) -> DeploymentOut:
        """Ask for the replicas to run again (also after ``failed``)."""
        out = await self._db().run(self._set_desired, who, id, "running", write=True)
        self._wake(id)
        return out

    def _set_desired(self, session: Session, who: Principal, id: str, desired: str) -> DeploymentOut:
        row = access.load(session, orm.Deployment, who, id, write=True, kind=self.kind)
        changed = row.desired_state != desired or (desired == "running" and row.state in ("failed", "stopped"))
        row.desired_state = desired
        if desired == "running" and row.state in ("failed", "stopped"):
            row.state, row.status_message = "pending", None
        elif desired == "stopped" and row.lease_owner is None and row.state != "stopped":
            # no server runs it: nothing to wait for
            row.state, row.status_message, row.replica_status = "stopped", "Stopped.", []
        if changed:
            session.flush()
            if self.events is not None:
                ready = sum(1 for r in row.replica_status or [] if isinstance(r, dict) and r.get("state") == "ready")
                publish_status(self.events, session, row.id, row.owner, status_data(row.state, row.status_message, ready, row.replicas, row.model_version))
            audit.record(session, who, "stop" if desired == "stopped" else "start", self.kind, row.id, {})
        return self.to_out(session, row)

    def _wake(self, id: str | None = None) -> None:
        if id is not None:
            self._forget(id)
        if self.supervisor is not None:
            self.supervisor.wake()

    @staticmethod
    def _check_version(session: Session, model_id: str, version: int | None) -> None:
        if version is None:
            return
        found = session.scalar(
            select(orm.ModelVersion.id).where(orm.ModelVersion.model_id == model_id, orm.ModelVersion.version == version)
        )
        if not found:
            raise InvalidInput(f"The model has no version {version}.", {"field": "model_version"})

    # -- predict ---------------------------------------------------------------------------

    async def predict(self, who: Principal, id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Predictions for ``body`` (``records`` or ``inputs``) from a ready replica."""
        started = time.perf_counter()
        desired, state, version, message, schema = await self._target(who, id)
        # from here the deployment exists and is readable: its metrics are worth a label
        status = 500
        try:
            # states a retry cannot fix answer 409; a replica not ready yet (or restarting) 503
            if desired != "running":
                raise Conflict("The deployment is stopped; start it to predict.", {"state": state, "desired_state": desired})
            if state == "failed":
                raise Conflict(f"The deployment failed: {message}", {"state": state})
            if version is None:
                raise Conflict("The deployment has no model version to serve: register one, then PATCH model_version.", {"state": state})
            kind, rows = check_payload(schema, body, self.max_predict_rows)
            if self.supervisor is None or not self.supervisor.enabled:
                raise Unavailable("This server does not run deployments' replicas.", {"deployment_id": id}, retry_after=RETRY_AFTER)
            predictions, version = await self.supervisor.predict(id, kind, rows)
            status = 200
            return {"predictions": predictions, "model_version": version, "deployment_id": id}
        except AIStudioError as exc:
            status = exc.status
            raise
        except asyncio.TimeoutError:
            status = 503
            raise Unavailable("The prediction timed out; retry shortly.", {"deployment_id": id}, retry_after=RETRY_AFTER) from None
        finally:
            observe_predict(id, status, time.perf_counter() - started)

    async def _target(self, who: Principal, id: str) -> tuple:
        """What predict needs to know about a deployment, read at most every
        ``predict_cache_seconds`` per caller: a database round trip per request would cost more
        than a batched forward pass. Writes through this service drop the entry at once."""
        key = (id, who.username, who.teams)
        now = time.monotonic()
        hit = self._targets.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        target = await self._db().run(self._predict_target, who, id)
        if len(self._targets) > 10_000:
            self._targets.clear()
        self._targets[key] = (now + self.predict_cache_seconds, target)
        return target

    def _forget(self, id: str) -> None:
        for key in [k for k in self._targets if k[0] == id]:
            self._targets.pop(key, None)

    def _predict_target(self, session: Session, who: Principal, id: str) -> tuple[str, str, int | None, str | None, dict | None]:
        row = access.load(session, orm.Deployment, who, id, kind=self.kind)
        return row.desired_state, row.state, row.model_version, row.status_message, self._schema(session, row.model_id, row.model_version)

    def check_predict_size(self, size: int) -> None:
        if size > self.max_predict_bytes:
            raise PayloadTooLarge(f"The predict body is larger than {self.max_predict_bytes} bytes.", {"limit": self.max_predict_bytes})

    # -- logs ------------------------------------------------------------------------------

    async def logs(self, who: Principal, id: str, query: DeploymentLogQuery) -> DeploymentLogOut:
        await self._db().run(self._check_deletable, who, id)
        lines: list[str] = []
        if self.supervisor is not None:
            path = self.supervisor.log_path(id, query.replica)
            lines = await asyncio.to_thread(_tail_lines, path, query.tail)
        return DeploymentLogOut(deployment_id=id, replica=query.replica, lines=lines)


def _tail_lines(path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > LOG_TAIL_BYTES and lines:
        lines = lines[1:]  # the first is cut
    return lines[-n:]
