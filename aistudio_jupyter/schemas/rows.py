"""Rows of a stored dataset version: the query and the page."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from .common import OutModel, StrictModel

FILTER_HELP = (
    "Clauses joined by ' and '. A clause is `column op value` with op one of = != < <= > >= contains startswith "
    'and value a JSON literal (a number, a "string", true, false, null); or `column is null`, `column is not null`, '
    '`column in (v1, v2, ...)`. A column is a bare name (letters, digits, _ . -) or a JSON "string". '
    'Example: label = "cat" and score >= 0.5 and id in (1, 2, 3).'
)


class RowsQuery(StrictModel):
    """Which slice of which version to read. The lengths are bounded so that any query fits
    in the server's request-line limit even fully percent-encoded."""

    version: Annotated[str, StringConstraints(max_length=16, pattern=r"^(latest|[0-9]{1,9})$")] = Field("latest", description="A version number or 'latest'.")
    offset: int = Field(0, ge=0, le=10**12, description="Rows to skip (after filtering and sorting).")
    limit: int = Field(100, ge=1, le=1000, description="Most rows to return.")
    sort: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(None, description="Comma list of `column` (ascending) or `-column` (descending).")
    filter: Annotated[str, StringConstraints(min_length=1, max_length=1500)] | None = Field(None, description=FILTER_HELP)
    columns: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = Field(None, description="Comma list of the columns to return, in that order (default: all).")


class RowColumn(OutModel):
    name: str
    type: str


class RowsOut(OutModel):
    """One page of rows; values are JSON-safe (dates as ISO strings, NaN as null, bytes as base64)."""

    columns: list[RowColumn]
    rows: list[list[Any]]
    offset: int
    limit: int
    total_rows: int = Field(description="Rows matching the filter, in all pages.")
    version: int
