"""A model version's input schema and the check of a predict payload against it.

The schema is ``schemas.model_schema.input_schema(spec)`` (``{"kind": "records", "features":
[{"name", "dtype"}]}`` or ``{"kind": "tensor", "shape": [null, ...], "dtype"}``). Errors name
the offending field the way a client would write it: ``records[3].age: expected a number``.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInput, PayloadTooLarge
from ..schemas.model_schema import input_schema

__all__ = ["check_payload", "input_schema"]

NUMERIC_PREFIXES = ("float", "int", "uint", "number", "double")
TEXT = frozenset({"string", "str", "text", "category", "object", "datetime"})
BOOLEAN = frozenset({"bool", "boolean"})


def _number(value: Any) -> bool:
    # bools count: the trainer reads a boolean column as 0/1; null means missing (imputed)
    return value is None or (isinstance(value, (int, float)) and (isinstance(value, bool) or math.isfinite(value)))


def check_payload(schema: dict[str, Any] | None, body: dict[str, Any], max_rows: int) -> tuple[str, list[Any]]:
    """``(kind, rows)`` of a predict body: ``records`` (a list of objects) or ``inputs`` (a list
    of tensors, one per row). Raises InvalidInput naming the field, PayloadTooLarge past ``max_rows``."""
    kind = (schema or {}).get("kind")
    given = [k for k in ("records", "inputs") if body.get(k) is not None]
    if len(given) != 1:
        want = {"records": "records", "tensor": "inputs"}.get(kind, "records or inputs")
        raise InvalidInput(f"{want}: send exactly one of records (a list of objects) or inputs (a list of rows).", {"field": want})
    key = given[0]
    rows = body[key]
    if kind == "records" and key != "records":
        raise InvalidInput("records: this model takes records (a list of objects), not inputs.", {"field": "records"})
    if kind == "tensor" and key != "inputs":
        raise InvalidInput("inputs: this model takes inputs (a list of tensors), not records.", {"field": "inputs"})
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"{key}: expected a non-empty list.", {"field": key})
    if len(rows) > max_rows:
        raise PayloadTooLarge(f"{key}: {len(rows)} rows; at most {max_rows} per request.", {"field": key, "limit": max_rows})
    if key == "records":
        _check_records(schema, rows)
    else:
        _check_tensors(schema, rows)
    return key, rows


def _fail(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", {"field": field})


def _check_records(schema: dict[str, Any] | None, rows: list[Any]) -> None:
    features = (schema or {}).get("features") or []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _fail(f"records[{i}]", "expected an object")
        for feature in features:
            name, dtype = feature["name"], feature["dtype"].lower()
            field = f"records[{i}].{name}"
            if name not in row:
                raise _fail(field, "is required")
            value = row[name]
            if dtype.startswith(NUMERIC_PREFIXES) and not _number(value):
                raise _fail(field, "expected a number")
            if dtype in TEXT and not (value is None or isinstance(value, str)):
                raise _fail(field, "expected a string")
            if dtype in BOOLEAN and not (value is None or isinstance(value, bool)):
                raise _fail(field, "expected true or false")


def _check_tensors(schema: dict[str, Any] | None, rows: list[Any]) -> None:
    if schema is None:
        # no declared shape: the replica's own conversion judges the rows
        for i, row in enumerate(rows):
            if not isinstance(row, (list, int, float)) or isinstance(row, bool):
                raise _fail(f"inputs[{i}]", "expected a list of numbers")
        return
    shape = schema.get("shape") or [None]
    for i, row in enumerate(rows):
        _check_tensor(row, shape[1:], f"inputs[{i}]")


def _check_tensor(value: Any, shape: list[int | None], field: str) -> None:
    if not shape:
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise _fail(field, "expected a number")
        return
    if not isinstance(value, list):
        raise _fail(field, f"expected a list of {shape[0] if shape[0] else 'any number of'} values")
    if shape[0] is not None and len(value) != shape[0]:
        raise _fail(field, f"expected {shape[0]} values, got {len(value)}")
    for j, item in enumerate(value):
        _check_tensor(item, shape[1:], f"{field}[{j}]")
