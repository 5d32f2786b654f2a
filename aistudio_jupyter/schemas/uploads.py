"""Uploads (tus) and the dataset versions they become."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .common import Description, Name, OutModel, StrictModel, Team, Visibility

UploadState = Literal["active", "completed", "failed", "expired"]
#: a file name as the user's machine spelt it: metadata only, never a path or key on our side
FileName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
ContentType = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+(?: *; *[\x20-\x7e]+)*$")]
DatasetId = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]


class UploadMetadata(StrictModel):
    """``Upload-Metadata`` of a tus upload, decoded. ``dataset`` (an existing dataset's id) adds
    a version to it; otherwise ``name`` creates a dataset on completion. When both are present
    ``dataset`` wins: Uppy and tus-js-client send the file's name as ``name``."""

    filename: FileName | None = None
    content_type: ContentType | None = None
    dataset: DatasetId | None = None
    name: Name | None = None
    description: Description = ""
    visibility: Visibility = "private"
    team: Team | None = None


class UploadOut(OutModel):
    """Where a tus upload stands; ``version`` is set once it became a dataset version."""

    id: str
    state: UploadState
    length: int
    offset: int
    filename: str | None = None
    dataset_id: str | None = None
    version: int | None = None
    version_id: str | None = None
    error: str | None = None
    created_at: dt.datetime
    expires_at: dt.datetime | None = None


class VersionFileOut(OutModel):
    path: str = Field(description="The file name the uploader gave (metadata only).")
    sha256: str
    size_bytes: int
    content_type: str = Field(description="The media type served on download, from the detected format.")


class VersionOut(OutModel):
    """One immutable version of a dataset: its bytes are stored once under their sha256."""

    id: str
    dataset_id: str
    version: int
    sha256: str
    size_bytes: int
    format: Literal["csv", "tsv", "parquet", "json", "jsonl", "arrow", "zip"]
    # the API says "schema"; pydantic's BaseModel already has a ``schema`` attribute, and the
    # ORM column attribute is ``schema_``: handlers dump these models with by_alias=True
    schema_: dict[str, Any] = Field(alias="schema", description="columns (name, arrow type) of tabular formats; counts for image archives")
    row_count: int | None = None
    created_by: str
    created_at: dt.datetime
    files: list[VersionFileOut] = Field(default_factory=list)


class VersionListQuery(StrictModel):
    """Keyset-paginated versions of one dataset, newest first unless ``sort=version``."""

    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512)
    sort: Literal["version", "-version"] = "-version"
