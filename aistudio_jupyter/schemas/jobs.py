"""Jobs: read-only through the API until the scheduler submits them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from .common import Name, Owned, StrictModel, Team, Visibility

JobKind = Literal["train", "validate", "agent", "script", "notebook", "interactive"]
JobState = Literal["queued", "starting", "running", "succeeded", "failed", "canceled", "lost"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled", "lost"})


class JobResources(StrictModel):
    gpus: int = Field(0, ge=0, le=64)
    cpus: float = Field(1.0, gt=0, le=256)
    memory_mb: int = Field(2048, ge=64, le=4_194_304)


class JobSubmit(StrictModel):
    """What a service submits; the API grows a public submit route with the scheduler."""

    name: Name | str = ""
    kind: JobKind
    spec: dict[str, Any] = Field(default_factory=dict)
    resources: JobResources = Field(default_factory=JobResources)
    visibility: Visibility = "private"
    team: Team | None = None


class JobOut(Owned):
    name: str
    kind: JobKind
    state: JobState
    spec: dict[str, Any]
    resources: JobResources
    priority: int
    backend: str
    exit_code: int | None
    exit_reason: str | None
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
