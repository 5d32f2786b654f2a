"""Keyset pagination: (sort column, id) pairs in an opaque cursor, never OFFSET."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from sqlalchemy import and_, or_

from ..errors import InvalidInput


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
        if not isinstance(id, str):
            raise ValueError
        return value, id
    except (ValueError, TypeError, KeyError):
        raise InvalidInput("The cursor is not valid; pass back next_cursor unchanged.", {"field": "cursor"}) from None


def apply(stmt, column, id_column, sort_desc: bool, cursor: str | None, limit: int):
    """Order by (column, id) and continue after ``cursor``; fetch one extra row to know if more exist."""
    if cursor:
        value, last_id = decode_cursor(cursor)
        if sort_desc:
            stmt = stmt.where(or_(column < value, and_(column == value, id_column < last_id)))
        else:
            stmt = stmt.where(or_(column > value, and_(column == value, id_column > last_id)))
    order = (column.desc(), id_column.desc()) if sort_desc else (column.asc(), id_column.asc())
    return stmt.order_by(*order).limit(limit + 1)
