"""The ``filter``, ``sort`` and ``columns`` grammar of dataset row paging, parsed by hand.

``filter`` is one or more clauses joined by `` and ``; a clause is ``column op value`` with
``op`` one of ``= != < <= > >= contains startswith`` and ``value`` a JSON literal (number,
"string", true, false, null), or ``column is null`` / ``column is not null``, or
``column in (v1, v2, …)``. A column is a bare name (letters, digits, ``_ . -``) or a JSON
string for any other name. The parser is strict on purpose: it yields column names (checked
against the schema by the caller) and values (always bound parameters), so no user text ever
becomes SQL.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from ..errors import InvalidInput

OPS = ("=", "!=", "<", "<=", ">", ">=", "contains", "startswith", "is null", "is not null", "in")
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SYMBOL = re.compile(r"!=|<=|>=|=|<|>")
_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s*")
MAX_IN = 1000


@dataclasses.dataclass(frozen=True)
class Clause:
    column: str
    op: str
    values: tuple[Any, ...] = ()


def _fail(message: str, pos: int, field: str = "filter") -> InvalidInput:
    return InvalidInput(f"{message} (at position {pos} of '{field}').", {"field": field, "position": pos})


class _Parser:
    def __init__(self, text: str, field: str):
        self.text, self.pos, self.field = text, 0, field

    def fail(self, message: str) -> InvalidInput:
        return _fail(message, self.pos, self.field)

    def skip(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()

    def column(self) -> str:
        self.skip()
        if self.text.startswith('"', self.pos):
            value = self.string()
            if not value:
                raise self.fail("A column name cannot be empty")
            return value
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise self.fail("Expected a column name")
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        decoder = json.JSONDecoder()
        try:
            value, end = decoder.raw_decode(self.text, self.pos)
        except json.JSONDecodeError:
            raise self.fail("Expected a JSON string") from None
        if not isinstance(value, str):
            raise self.fail("Expected a JSON string")
        self.pos = end
        return value

    def value(self) -> Any:
        self.skip()
        if self.text.startswith('"', self.pos):
            return self.string()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos) and not _BARE.match(self.text, self.pos + len(word)):
                self.pos += len(word)
                return value
        match = _NUMBER.match(self.text, self.pos)
        if not match or _BARE.match(self.text, match.end()):
            raise self.fail('Expected a value: a number, a "string", true, false or null')
        self.pos = match.end()
        number = match.group()
        return float(number) if any(c in number for c in ".eE") else int(number)

    def word(self, expected: str) -> bool:
        self.skip()
        match = _WORD.match(self.text, self.pos)
        if match and match.group().lower() == expected:
            self.pos = match.end()
            return True
        return False

    def clause(self) -> Clause:
        column = self.column()
        self.skip()
        symbol = _SYMBOL.match(self.text, self.pos)
        if symbol:
            self.pos = symbol.end()
            return Clause(column, symbol.group(), (self.value(),))
        start = self.pos
        if self.word("contains") or self.word("startswith"):
            op = self.text[start : self.pos].lower()
            value = self.value()
            if not isinstance(value, str):
                raise _fail(f"'{op}' needs a \"string\"", start, self.field)
            return Clause(column, op, (value,))
        if self.word("is"):
            negated = self.word("not")
            if not self.word("null"):
                raise self.fail("Expected 'null' after 'is'")
            return Clause(column, "is not null" if negated else "is null")
        if self.word("in"):
            self.skip()
            if not self.text.startswith("(", self.pos):
                raise self.fail("Expected '(' after 'in'")
            self.pos += 1
            values = [self.value()]
            self.skip()
            while self.text.startswith(",", self.pos):
                self.pos += 1
                values.append(self.value())
                self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.fail("Expected ',' or ')' in the 'in' list")
            self.pos += 1
            if len(values) > MAX_IN:
                raise _fail(f"An 'in' list holds at most {MAX_IN} values", start, self.field)
            return Clause(column, "in", tuple(values))
        raise self.fail(f"Expected an operator: {', '.join(OPS)}")


def parse_filter(text: str) -> list[Clause]:
    """The clauses of a ``filter``; InvalidInput naming the position on any deviation."""
    parser = _Parser(text, "filter")
    clauses = [parser.clause()]
    while True:
        parser.skip()
        if parser.pos == len(text):
            return clauses
        if not parser.word("and"):
            raise parser.fail("Expected 'and' or the end of the filter")
        clauses.append(parser.clause())


def parse_names(text: str, field: str, *, signed: bool = False) -> list[tuple[str, bool]]:
    """A comma list of columns (``sort`` allows ``-column`` for descending): (name, descending)."""
    parser = _Parser(text, field)
    out = []
    while True:
        parser.skip()
        descending = signed and parser.text.startswith("-", parser.pos)
        if descending:
            parser.pos += 1
        out.append((parser.column(), descending))
        parser.skip()
        if parser.pos == len(text):
            return out
        if not parser.text.startswith(",", parser.pos):
            raise parser.fail("Expected ',' between columns")
        parser.pos += 1
