"""Agent definitions: instructions, tools, planner and hard limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .common import Description, Name, Owned, StrictModel, Tags, Team, Visibility

ToolName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
Planner = Literal["react", "plan_and_execute", "single_shot"]


class AgentLimits(StrictModel):
    """Hard stops for a run; an agent never runs unbounded."""

    max_steps: int = Field(25, ge=1, le=1000)
    max_seconds: int = Field(600, ge=1, le=86_400)
    max_tool_calls: int = Field(50, ge=0, le=10_000)
    max_cost_usd: float = Field(1.0, ge=0, le=10_000)
    max_gpus: int = Field(0, ge=0, le=64)


class AgentCreate(StrictModel):
    name: Name
    description: Description = ""
    instructions: str = Field("", max_length=20_000)
    tools: Annotated[list[ToolName], Field(max_length=64)] = Field(default_factory=list)
    planner: Planner = "react"
    llm: str | None = Field(None, min_length=1, max_length=128)
    limits: AgentLimits = Field(default_factory=AgentLimits)
    visibility: Visibility = "private"
    team: Team | None = None


class AgentUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    instructions: str | None = Field(None, max_length=20_000)
    tools: Annotated[list[ToolName], Field(max_length=64)] | None = None
    planner: Planner | None = None
    llm: str | None = Field(None, min_length=1, max_length=128)
    limits: AgentLimits | None = None
    visibility: Visibility | None = None
    team: Team | None = None


class AgentOut(Owned):
    name: str
    description: str
    instructions: str
    tools: list[str]
    planner: str
    llm: str | None
    limits: AgentLimits
