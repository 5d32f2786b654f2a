"""Interactive runs: jobs whose process is the user's own kernel (``ais.track``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .common import Name, StrictModel, Team, Visibility


ConfigKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class InteractiveRunCreate(StrictModel):
    name: Name
    config: dict[ConfigKey, Any] = Field(default_factory=dict, max_length=500, description="Hyperparameters and anything else worth keeping with the run (JSON).")
    visibility: Visibility = "private"
    team: Team | None = None


class RunFinish(StrictModel):
    state: Literal["succeeded", "failed"]
    reason: str | None = Field(None, max_length=4000, description="Why it ended, e.g. the exception that failed it.")
