"""Shapes shared by every resource: strictness, names, visibility, pages, errors, list queries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")


class StrictModel(BaseModel):
    """Rejects unknown fields, NaN and infinities; strings are stripped of nothing and bounded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=100_000)


class OutModel(BaseModel):
    """Response models read attributes from the store's rows inside the session."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


Visibility = Literal["private", "team", "public"]
#: A resource name: shown in lists, used in ``ais.datasets.get(name)``. Free text as people write
#: names ("Umsätze Q3 (EU) — clean"), minus what has no business in a name: control characters,
#: path separators (a name is never a path, but it must not look like one either) and
#: surrounding whitespace. Every surface renders names as text, so markup in one is harmless.
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\s/\\\x00-\x1f\x7f](?:[^/\\\x00-\x1f\x7f]*[^\s/\\\x00-\x1f\x7f])?$")]
Team = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=4000)]
Tags = Annotated[list[Tag], Field(max_length=32)]


class Owned(OutModel):
    """Fields every owned resource returns."""

    id: str
    owner: str
    visibility: Visibility
    team: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable error code, e.g. not_found, invalid, unavailable.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    """Every failure, whatever its status, answers with this body."""

    error: ErrorBody


class ListQuery(StrictModel):
    """Query string of every list route: keyset pagination and filters."""

    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=512)
    owner: str | None = Field(None, min_length=1, max_length=255)
    q: str | None = Field(None, min_length=1, max_length=200, description="Case-insensitive substring of the name.")
    visibility: Visibility | None = None
    team: Team | None = None
    status: str | None = Field(None, min_length=1, max_length=32)
    sort: Literal["created_at", "-created_at", "updated_at", "-updated_at", "name", "-name"] = "-created_at"
