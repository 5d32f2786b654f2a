"""Dataset metadata. Versions and files arrive with uploads (see the uploads routes)."""

from __future__ import annotations

from pydantic import Field

from .common import Description, Name, Owned, StrictModel, Tags, Team, Visibility


class DatasetCreate(StrictModel):
    name: Name
    description: Description = ""
    tags: Tags = Field(default_factory=list)
    visibility: Visibility = "private"
    team: Team | None = None


class DatasetUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    tags: Tags | None = None
    visibility: Visibility | None = None
    team: Team | None = None


class DatasetOut(Owned):
    name: str
    description: str
    tags: list[str]
    latest_version: int
    size_bytes: int
