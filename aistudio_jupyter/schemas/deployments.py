"""Deployment definitions: which model version, how many replicas, what resources."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Description, Name, Owned, StrictModel, Team, Visibility

#: versions live in a 32-bit INTEGER column; a bigger number must be a 422, not a database error
MAX_VERSION = 2**31 - 1
DeploymentState = Literal["pending", "loading", "ready", "stopped", "failed"]


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
