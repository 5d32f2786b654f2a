"""Model registry metadata (versions and artifacts come with training)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Description, Name, Owned, StrictModel, Tags, Team, Visibility

Task = Literal["classification", "regression", "generation", "embedding", "other"]


class ModelCreate(StrictModel):
    name: Name
    description: Description = ""
    tags: Tags = Field(default_factory=list)
    task: Task | None = None
    visibility: Visibility = "private"
    team: Team | None = None


class ModelUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    tags: Tags | None = None
    task: Task | None = None
    visibility: Visibility | None = None
    team: Team | None = None


class ModelOut(Owned):
    name: str
    description: str
    tags: list[str]
    task: str | None
    latest_version: int
