"""The SQL of each validation rule, run against the loaded table of ``validation_scan.Table``.

Every rule becomes one finding: passed or not, how many rows offend and the first five of
them by row number. Column names reach SQL only quoted as identifiers after they were found in
the table; every value a rule carries (bounds, patterns, allowed values) is a bound parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..schemas import validation as v
from .rows import json_safe, quote

if TYPE_CHECKING:
    from .validation_scan import Table

#: DuckDB type name prefixes → the type names rules speak
_CATEGORIES = [
    (("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"), "int"),
    (("FLOAT", "DOUBLE", "DECIMAL", "REAL"), "float"),
    (("BOOLEAN",), "bool"),
    (("DATE",), "date"),
    (("TIMESTAMP",), "datetime"),
    # DuckDB's JSON type holds JSON text: read like any text, a JSON column mixing numbers and strings is found
    (("VARCHAR", "JSON"), "string"),
]


def category(duck_type: str) -> str:
    """What a stored DuckDB column type is in the rules' words ('other' for lists, structs, blobs...)."""
    if "[" in duck_type or duck_type.upper().startswith(("STRUCT", "MAP", "UNION")):
        return "other"
    for prefixes, name in _CATEGORIES:
        if duck_type.upper().startswith(prefixes):
            return name
    return "other"


def conforms(expected: str, text: str) -> str:
    """SQL: the text ``text`` reads as a value of ``expected``. DuckDB's casts alone are too
    lenient for integers ('1.5' casts to 2) and dates ('2020-01-01 10:00' casts to a date)."""
    return {
        "int": f"regexp_full_match(trim({text}), '[+-]?[0-9]+')",
        "float": f"TRY_CAST({text} AS DOUBLE) IS NOT NULL",
        "bool": f"TRY_CAST({text} AS BOOLEAN) IS NOT NULL",
        "date": f"(regexp_full_match(trim({text}), '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND TRY_CAST({text} AS DATE) IS NOT NULL)",
        "datetime": f"TRY_CAST({text} AS TIMESTAMP) IS NOT NULL",
        "string": "TRUE",
    }[expected]


def describe(rule: Any) -> str:
    """A short name for progress messages: ``unique(id)``, ``row_count``."""
    column = getattr(rule, "column", None)
    return f"{rule.check}({column})" if column else rule.check


def run(table: Table, index: int, rule: Any) -> dict:
    """The finding of ``rule`` (the ``index``-th of the request)."""
    column = getattr(rule, "column", None)
    base = {"rule": index, "check": rule.check, "severity": rule.severity, "column": column}
    if column is not None and column not in table.types:
        return {**base, "passed": False, "count": 0, "message": f"No column {column!r} in this version.", "details": {"columns": list(table.types)[:200]}}
    return {**base, **_CHECKS[rule.check](table, rule)}


def _violations(table: Table, rule: Any, where: str, params: list, what: str, columns: list[str] | None = None) -> dict:
    """Pass/fail from the rows matching ``where`` (the offending ones)."""
    count = table.count(where, params)
    shown = columns if columns is not None else [rule.column]
    examples = table.examples(where, params, shown) if count else []
    message = f"{count} row{'s' if count != 1 else ''} {what}." if count else f"No rows {what}."
    return {"passed": count == 0, "count": count, "message": message, "examples": examples}


def _type(table: Table, rule: v.TypeRule) -> dict:
    col = quote(rule.column)
    stored = category(table.types[rule.column])
    if stored == rule.expected or (stored == "int" and rule.expected == "float"):
        return {"passed": True, "count": 0, "message": f"The column is stored as {table.types[rule.column]}.", "details": {"stored_type": table.types[rule.column]}}
    # a string column holds text of any type; any other column's values are read as text
    ok = conforms(rule.expected, f"CAST({col} AS VARCHAR)") if stored == "string" or rule.expected != "string" else "FALSE"
    out = _violations(table, rule, f"{col} IS NOT NULL AND NOT ({ok})", [], f"not of type {rule.expected}")
    out["details"] = {"stored_type": table.types[rule.column]}
    return out


def _not_null(table: Table, rule: v.NotNullRule) -> dict:
    return _violations(table, rule, f"{quote(rule.column)} IS NULL", [], "missing a value")


def _unique(table: Table, rule: v.UniqueRule) -> dict:
    col = quote(rule.column)
    where = f"{col} IN (SELECT {col} FROM data WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1)"
    out = _violations(table, rule, where, [], "sharing their value with another row")
    if out["count"]:
        out["details"] = {"duplicated_values": table.scalar(f"SELECT count(*) FROM (SELECT {col} FROM data WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1)")}
    return out


def _range(table: Table, rule: Any, low: float | None, high: float | None) -> dict:
    number = f"TRY_CAST({quote(rule.column)} AS DOUBLE)"
    bad, params = [f"{number} IS NULL"], []
    if low is not None:
        bad.append(f"{number} < ?")
        params.append(low)
    if high is not None:
        bad.append(f"{number} > ?")
        params.append(high)
    span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    return _violations(table, rule, f"{quote(rule.column)} IS NOT NULL AND ({' OR '.join(bad)})", params, f"not numbers within {span}")


def _regex(table: Table, rule: v.RegexRule) -> dict:
    match = "regexp_full_match" if rule.full_match else "regexp_matches"
    col = quote(rule.column)
    return _violations(table, rule, f"{col} IS NOT NULL AND NOT {match}(CAST({col} AS VARCHAR), ?)", [rule.pattern], "not matching the pattern")


def _allowed(table: Table, rule: v.AllowedValuesRule) -> dict:
    col = quote(rule.column)
    # list_contains answers NULL for a value that does not cast to a number: a violation too
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rule.values):
        found, params = f"list_contains(?::DOUBLE[], TRY_CAST({col} AS DOUBLE))", [[float(x) for x in rule.values]]
    else:
        texts = [("true" if x else "false") if isinstance(x, bool) else str(x) for x in rule.values]
        found, params = f"list_contains(?::VARCHAR[], CAST({col} AS VARCHAR))", [texts]
    where = f"{col} IS NOT NULL AND NOT coalesce({found}, FALSE)"
    return _violations(table, rule, where, params, "holding a value that is not allowed")


def _row_count(table: Table, rule: v.RowCountRule) -> dict:
    n = table.rows
    ok = (rule.min is None or n >= rule.min) and (rule.max is None or n <= rule.max)
    bounds = f"[{rule.min if rule.min is not None else 0}, {rule.max if rule.max is not None else 'inf'}]"
    return {"passed": ok, "count": n, "message": f"{n} rows, {'within' if ok else 'outside'} {bounds}.", "details": {"rows": n}}


def _duplicate_rows(table: Table, rule: v.DuplicateRowsRule) -> dict:
    columns = list(table.types)
    every = ", ".join(quote(c) for c in columns)
    # a hash aggregate (out-of-core in DuckDB) finds the groups of identical rows; only when
    # there are any does a join look for the rows after the first of each group
    table.con.execute(f"CREATE OR REPLACE TEMP TABLE repeated AS SELECT {every}, min(rowid) AS aistudio__first, count(*) AS aistudio__n FROM data GROUP BY ALL HAVING count(*) > 1")
    count = int(table.scalar("SELECT coalesce(sum(aistudio__n - 1), 0) FROM repeated"))
    examples = []
    if count:
        same = " AND ".join(f"d.{quote(c)} IS NOT DISTINCT FROM g.{quote(c)}" for c in columns)
        later = f"rowid IN (SELECT d.rowid FROM data d JOIN repeated g ON {same} WHERE d.rowid <> g.aistudio__first)"
        examples = table.examples(later, [], columns[:20])
    table.con.execute("DROP TABLE repeated")
    ok = count <= rule.max
    return {"passed": ok, "count": count, "message": f"{count} {'row repeats' if count == 1 else 'rows repeat'} an earlier row (at most {rule.max} allowed).", "examples": examples}


def _class_balance(table: Table, rule: v.ClassBalanceRule) -> dict:
    col = quote(rule.column)
    counts = f"SELECT {col} AS label, count(*) AS n FROM data WHERE {col} IS NOT NULL GROUP BY {col}"
    classes, total, smallest, largest = table.con.execute(f"SELECT count(*), coalesce(sum(n), 0), min(n), max(n) FROM ({counts})").fetchone()
    if not classes:
        return {"passed": False, "count": 0, "message": "The column has no values, so no classes."}
    failures, count = [], 0
    if rule.min_fraction is not None:
        count = table.scalar(f"SELECT count(*) FROM ({counts}) WHERE n < ?", [rule.min_fraction * total])
        if count:
            failures.append(f"{count} of {classes} classes hold less than {rule.min_fraction:g} of the rows")
    ratio = largest / smallest
    if rule.max_ratio is not None and ratio > rule.max_ratio:
        failures.append(f"the largest class has {ratio:.3g}× the rows of the smallest (at most {rule.max_ratio:g})")
        count = count or classes

    def edge(order: str) -> list:
        return [[json_safe(label), n] for label, n in table.con.execute(f"SELECT label, n FROM ({counts}) ORDER BY n {order}, label LIMIT 5").fetchall()]

    details = {"classes": classes, "rows": total, "ratio": ratio, "smallest": edge("ASC"), "largest": edge("DESC")}
    message = "; ".join(failures).capitalize() + "." if failures else f"{classes} classes, largest/smallest = {ratio:.3g}."
    return {"passed": not failures, "count": count, "message": message, "details": details}


_CHECKS: dict[str, Callable[[Table, Any], dict]] = {
    "type": _type,
    "not_null": _not_null,
    "unique": _unique,
    "range": lambda t, r: _range(t, r, r.min, r.max),
    "min": lambda t, r: _range(t, r, r.value, None),
    "max": lambda t, r: _range(t, r, None, r.value),
    "regex": _regex,
    "allowed_values": _allowed,
    "row_count": _row_count,
    "duplicate_rows": _duplicate_rows,
    "class_balance": _class_balance,
}
