"""Keyset pagination: (sort column, id) pairs in an opaque cursor, never OFFSET."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import and_, or_

from ..errors import InvalidInput

# cursors are opaque but not signed: a hand-made one must fail here as a 422, not in the
# database (a string compared with a timestamp, NUL in PostgreSQL text, a 100-digit integer)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_BIGINT = 2**63


def encode_cursor(value: Any, id: str) -> str:
    if isinstance(value, dt.datetime):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, id = json.loads(raw)
        if isinstance(value, dict):
            value = dt.datetime.fromisoformat(value["t"])
        if not isinstance(id, str) or _UNSTORABLE.search(id):
            raise ValueError
        return value, id
    except (ValueError, TypeError, KeyError):
        raise InvalidInput("The cursor is not valid; pass back next_cursor unchanged.", {"field": "cursor"}) from None


def _comparable(value: Any, column) -> bool:
    """Whether a decoded cursor value has the type of the sort column it is compared with."""
    # a TypeDecorator (UTCDateTime) reports ``object``; the type it decorates knows better
    expected = getattr(column.type, "impl_instance", column.type).python_type
    if isinstance(value, bool) or not isinstance(value, expected):
        return False
    if isinstance(value, dt.datetime):
        try:  # the store converts to UTC, and 0001-01-01T00:00+01:00 has no UTC year
            return value.tzinfo is not None and value.astimezone(dt.timezone.utc) is not None
        except OverflowError:
            return False
    if isinstance(value, str):
        return not _UNSTORABLE.search(value)
    if isinstance(value, int):
        return -_BIGINT <= value < _BIGINT
    return True


def decode_for(cursor: str, column) -> tuple[Any, str]:
    """The (value, id) a cursor continues after, checked against the sort column."""
    value, last_id = decode_cursor(cursor)
    if not _comparable(value, column):
        raise InvalidInput("The cursor does not belong to this sort order; pass back next_cursor unchanged.", {"field": "cursor"})
    return value, last_id


def after(column, id_column, sort_desc: bool, value, last_id):
    """SQL condition: rows past (value, last_id) in the sort order; either may be a bound parameter."""
    # the redundant bound (column <= value) lets an index start at the cursor; the OR
    # alone makes the database read from the first row and skip every earlier page
    if sort_desc:
        return and_(column <= value, or_(column < value, and_(column == value, id_column < last_id)))
    return and_(column >= value, or_(column > value, and_(column == value, id_column > last_id)))


def order_by(column, id_column, sort_desc: bool) -> tuple:
    return (column.desc(), id_column.desc()) if sort_desc else (column.asc(), id_column.asc())


def apply(stmt, column, id_column, sort_desc: bool, cursor: str | None, limit: int):
    """Order by (column, id) and continue after ``cursor``; fetch one extra row to know if more exist."""
    if cursor:
        stmt = stmt.where(after(column, id_column, sort_desc, *decode_for(cursor, column)))
    return stmt.order_by(*order_by(column, id_column, sort_desc)).limit(limit + 1)


def fetch_page(session, stmt, column, id_column, sort_desc: bool, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """One page of ORM rows of ``stmt`` in (column, id) order, and the cursor of the next (or None)."""
    rows = session.scalars(apply(stmt, column, id_column, sort_desc, cursor, limit)).all()
    if len(rows) <= limit:
        return list(rows), None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], column.key), rows[-1].id)
