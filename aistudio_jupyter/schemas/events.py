"""Messages of the `/events` WebSocket (DESIGN §7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints

from .common import StrictModel

#: ``kind:id``; ids are our own (``job_…``) or usernames
TOPIC_PATTERN = r"^(job|dataset|upload|deployment|agent_run|user):([A-Za-z0-9._@\-]{1,128})$"
Topic = Annotated[str, StringConstraints(max_length=160, pattern=TOPIC_PATTERN)]


class SubscribeOp(StrictModel):
    """Start receiving ``topic``: its events after ``since`` from history, then live ones.
    Without ``since``, only events published from now on."""

    op: Literal["subscribe"]
    topic: Topic
    since: int | None = Field(None, ge=0, le=2**62)


class UnsubscribeOp(StrictModel):
    op: Literal["unsubscribe"]
    topic: Topic


class PingOp(StrictModel):
    op: Literal["ping"]


class ClientMessage(RootModel[Annotated[SubscribeOp | UnsubscribeOp | PingOp, Field(discriminator="op")]]):
    """Any message a client sends, told apart by ``op``."""


#: WebSocket close code: the client reads too slowly even with metrics coalesced; reconnect
#: and subscribe again with ``since`` = the last seq received (1013: "try again later")
CLOSE_TOO_SLOW = 1013
