"""Agent definitions."""

from __future__ import annotations

from ..schemas.agents import AgentOut
from ..store import orm
from .resources import ResourceService


class AgentService(ResourceService[AgentOut]):
    orm = orm.Agent
    out = AgentOut
    kind = "agent"
    id_prefix = "agt"
