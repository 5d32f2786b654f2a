"""`/agents` routes."""

from __future__ import annotations

from ..schemas.agents import AgentCreate, AgentOut, AgentUpdate
from .resources import CollectionHandler, ItemHandler


class AgentMixin:
    service_name = "agents"
    kind = "agent"
    out_model = AgentOut
    create_model = AgentCreate
    update_model = AgentUpdate


class AgentsHandler(AgentMixin, CollectionHandler):
    """List and create agents."""


class AgentHandler(AgentMixin, ItemHandler):
    """Read, change and delete one agent."""


default_handlers = [
    ("/agents", AgentsHandler),
    ("/agents/{id}", AgentHandler),
]
