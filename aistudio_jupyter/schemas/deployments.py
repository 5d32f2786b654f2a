"""Deployment definitions: which model version, how many replicas, what resources."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Description, Name, OutModel, Owned, StrictModel, Team, Visibility

#: versions live in a 32-bit INTEGER column; a bigger number must be a 422, not a database error
MAX_VERSION = 2**31 - 1
DeploymentState = Literal["pending", "loading", "ready", "stopped", "failed"]
DesiredState = Literal["running", "stopped"]
ReplicaState = Literal["loading", "ready", "draining", "stopping", "stopped", "crashed"]


class DeploymentResources(StrictModel):
    cpus: float = Field(1.0, gt=0, le=256)
    gpus: int = Field(0, ge=0, le=16)
    memory_mb: int = Field(2048, ge=64, le=1_048_576)


class Batching(StrictModel):
    max_batch_size: int = Field(32, ge=1, le=4096)
    max_wait_ms: float = Field(5.0, ge=0, le=10_000)


class DeploymentCreate(StrictModel):
    name: Name
    description: Description = ""
    model_id: str = Field(min_length=1, max_length=40)
    model_version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Defaults to the latest version when it starts.")
    replicas: int = Field(1, ge=1, le=64)
    resources: DeploymentResources = Field(default_factory=DeploymentResources)
    batching: Batching = Field(default_factory=Batching)
    visibility: Visibility = "private"
    team: Team | None = None


class DeploymentUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    model_version: int | None = Field(None, ge=1, le=MAX_VERSION)
    replicas: int | None = Field(None, ge=1, le=64)
    resources: DeploymentResources | None = None
    batching: Batching | None = None
    visibility: Visibility | None = None
    team: Team | None = None


class ReplicaStatus(OutModel):
    index: int
    state: ReplicaState
    pid: int | None = None
    restarts: int = 0
    model_version: int | None = None
    last_error: str | None = None


class DeploymentOut(Owned):
    name: str
    description: str
    model_id: str
    model_version: int | None
    replicas: int
    resources: DeploymentResources
    batching: Batching
    state: DeploymentState
    status_message: str | None
    desired_state: DesiredState = Field("running", description="What the owner asked for; ``state`` is what is.")
    replica_status: list[ReplicaStatus] = Field(default_factory=list, description="The replicas as the serving supervisor last saw them.")
    ready_replicas: int = Field(0, description="Replicas taking requests now.")
    input_schema: dict[str, Any] | None = Field(None, description='What predict takes: {"kind": "records", "features": [{"name", "dtype"}]} or {"kind": "tensor", "shape": [null, ...], "dtype"}.')


class PredictIn(StrictModel):
    """One predict request: ``records`` (objects keyed by feature) or ``inputs`` (one tensor per row)."""

    records: list[dict[str, Any]] | None = Field(None, description="Rows as objects, for models with record inputs.")
    inputs: list[Any] | None = Field(None, description="Rows as (nested) lists of numbers, for tensor models.")


class PredictOut(StrictModel):
    predictions: list[Any] = Field(description="One prediction per row, in order.")
    model_version: int = Field(description="The version that answered (during a rolling update, old or new).")
    deployment_id: str


class DeploymentLogQuery(StrictModel):
    replica: int = Field(0, ge=0, le=63, description="The replica's index.")
    tail: int = Field(200, ge=1, le=10_000, description="At most this many last lines.")


class DeploymentLogOut(StrictModel):
    deployment_id: str
    replica: int
    lines: list[str] = Field(description="The last lines of the replica's log (empty when it runs on another server or never ran).")
