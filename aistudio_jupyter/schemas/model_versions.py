"""Model versions: an immutable safetensors artifact with its spec, metrics and lineage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from .model_schema import input_schema
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
    input_schema: dict[str, Any] | None = Field(None, description="What a predict request sends: records (named features) or a tensor; derived from the spec")
    created_by: str
    created_at: dt.datetime

    @model_validator(mode="after")
    def _derive_input_schema(self):
        if self.input_schema is None:
            self.input_schema = input_schema(self.spec)
        return self


class ModelVersionListQuery(StrictModel):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512)
    sort: Literal["version", "-version"] = "-version"
    stage: Stage | None = Field(None, description="Only versions in this stage")


class ModelVersionUpdate(StrictModel):
    """``PATCH /models/{id}/versions/{v}``: move a version to another stage."""

    stage: Stage
    archive_existing: bool = Field(False, description="Moving to staging or production: archive the versions now in that stage, in the same transaction")


#: stage -> the stages a version may move to from it (staying put is always allowed)
TRANSITIONS: dict[str, frozenset[str]] = {
    "none": frozenset({"staging", "production", "archived"}),
    "staging": frozenset({"none", "production", "archived"}),
    "production": frozenset({"none", "staging", "archived"}),
    # an archived version comes back through none or staging, never straight to production
    "archived": frozenset({"none", "staging"}),
}

VersionList = Annotated[str, StringConstraints(max_length=500, pattern=r"^\d{1,9}(,\d{1,9}){0,49}$")]


class ModelCompareQuery(StrictModel):
    versions: VersionList | None = Field(None, description="Comma-separated version numbers (at most 50); default: the newest 20")


class CompareColumn(OutModel):
    version: int
    stage: Stage
    created_at: dt.datetime
    job_id: str | None = None


class ModelCompareOut(OutModel):
    """Versions side by side: each row holds one value per version, in ``versions`` order (null: absent)."""

    model_id: str
    versions: list[CompareColumn]
    metrics: dict[str, list[float | None]]
    hyperparameters: dict[str, list[Any]]
    lineage: dict[str, list[Any]]
    differs: list[str] = Field(description="Hyperparameter and lineage keys whose values are not all equal, as 'hyperparameters.<key>' / 'lineage.<key>'")


class HiddenRef(OutModel):
    """A row the caller cannot read (or that is gone): its id alone."""

    id: str
    hidden: Literal[True] = True


class LineageDataset(OutModel):
    id: str
    name: str
    version: int | None = None
    version_id: str | None = None
    sha256: str | None = None
    row_count: int | None = None


class LineageJob(OutModel):
    id: str
    name: str
    kind: str
    state: str
    owner: str
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class LineageDeployment(OutModel):
    id: str
    name: str
    state: str
    model_version: int | None = None


class LineageVersion(OutModel):
    id: str
    model_id: str
    model_name: str
    version: int
    stage: Stage
    artifact_sha256: str | None = None
    created_by: str
    created_at: dt.datetime


class ModelLineageOut(OutModel):
    """dataset version -> job -> model version -> deployments; what the caller cannot read is ``{id, hidden}``."""

    dataset: LineageDataset | HiddenRef | None
    job: LineageJob | HiddenRef | None
    model_version: LineageVersion
    deployments: list[LineageDeployment | HiddenRef]


class CheckpointOut(StrictModel):
    """A job's latest checkpoint, as stored."""

    job_id: str
    sha256: str
    size_bytes: int
