"""Model versions: an immutable safetensors artifact with its spec, metrics and lineage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .common import OutModel, StrictModel

Stage = Literal["none", "staging", "production", "archived"]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Lineage(StrictModel):
    """Where a version came from; a job token fills ``job_id`` itself."""

    dataset_id: str | None = Field(None, max_length=40)
    dataset_version: int | None = Field(None, ge=1)
    dataset_version_id: str | None = Field(None, max_length=40)
    job_id: str | None = Field(None, max_length=40)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    code_hash: str | None = Field(None, max_length=128, description="Hash of the code that trained it (trainer source or the user's module)")


class ModelVersionMeta(StrictModel):
    """The ``meta`` part of ``POST /models/{id}/versions`` (JSON)."""

    spec: dict[str, Any] = Field(description="How to rebuild the module: format, model spec or entry point, inputs, outputs")
    metrics: dict[MetricName, float] = Field(default_factory=dict, max_length=1000)
    lineage: Lineage = Field(default_factory=Lineage)
    input_example: list[Any] | dict[str, Any] | None = Field(None, description="A few input rows, kept with the spec")


class ModelVersionOut(OutModel):
    id: str
    model_id: str
    version: int
    stage: Stage
    spec: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    job_id: str | None = None
    dataset_version_id: str | None = None
    artifact_sha256: str | None = None
    created_by: str
    created_at: dt.datetime


class ModelVersionListQuery(StrictModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512)
    sort: Literal["version", "-version"] = "-version"


class CheckpointOut(StrictModel):
    """A job's latest checkpoint, as stored."""

    job_id: str
    sha256: str
    size_bytes: int
