"""One validation run over a stored file, in a worker thread, with bounded memory.

The file is read once into a DuckDB database in a private temporary directory (DuckDB keeps
``memory_limit`` by spilling to disk), so every check after that scans compressed columns
rather than parsing the file again, and ``rowid`` numbers the rows in file order. CSV and TSV
are read as text (``all_varchar``): a value that does not fit the column's type is a finding,
not a reason for DuckDB to reject its row; rows that do not fit the file's shape (too many or
too few fields, bad quoting, invalid UTF-8) land in DuckDB's rejects table with their line.
"""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import os
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

import duckdb

from . import validation_rules
from .rows import json_safe
from .scan import TEXT_FORMATS, Scannable, connect, quote

#: fewer than this share of a column's values being numbers is text with some numbers in it, not a mixed column
MIXED_MIN_NUMERIC = 0.5
#: rejected line numbers kept in memory to turn row numbers into line numbers
MAX_REJECTED_LINES = 1_000_000
_ENCODING_CHUNK = 1024 * 1024
_SHOWN_CHARS = 200
_ESCAPED = re.compile("[\udc80-\udcff]")


class Canceled(Exception):
    """The job was canceled while it ran."""


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_limit: str
    threads: int
    work_dir: str | None = None


@dataclasses.dataclass
class Table:
    """The loaded rows (table ``data``) and what the checks need to know about them."""

    con: duckdb.DuckDBPyConnection
    types: dict[str, str]
    rows: int
    #: sorted line numbers of rejected CSV records; None when lines are not known
    rejected_lines: list[int] | None

    def scalar(self, sql: str, params: list | None = None) -> Any:
        return self.con.execute(sql, params or []).fetchone()[0]

    def count(self, where: str, params: list) -> int:
        return self.scalar(f"SELECT count(*) FROM data WHERE {where}", params)

    def line_of(self, row: int) -> int | None:
        """The file line of the ``row``-th row read (the header is line 1; rejected records count)."""
        if self.rejected_lines is None:
            return None
        line = row + 1
        while True:
            moved = row + 1 + bisect.bisect_right(self.rejected_lines, line)
            if moved == line:
                return line
            line = moved

    def examples(self, where: str, params: list, columns: list[str], limit: int = 5) -> list[dict]:
        picked = ", ".join(quote(c) for c in columns)
        found = self.con.execute(f"SELECT rowid, {picked} FROM data WHERE {where} ORDER BY rowid LIMIT {int(limit)}", params).fetchall()
        return [{"row": r[0] + 1, "line": self.line_of(r[0] + 1), "values": {c: _shown(v) for c, v in zip(columns, r[1:])}} for r in found]


def _auto(check: str, severity: str, passed: bool, count: int, message: str, column: str | None = None, **extra: Any) -> dict:
    """A finding of an automatic check."""
    return {"rule": "auto", "check": check, "severity": severity, "column": column, "passed": passed, "count": count, "message": message, **extra}


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun} is" if n == 1 else f"{n} {noun}s are"


def _shown(value: Any) -> Any:
    value = json_safe(value)
    return value[:_SHOWN_CHARS] + "…" if isinstance(value, str) and len(value) > _SHOWN_CHARS else value


def run(scan: Scannable, rules: list, limits: Limits, progress: Callable[[int, int, str], None]) -> tuple[list[dict], dict]:
    """Findings and summary of ``rules`` plus the automatic checks on the version ``scan`` opens."""
    started = time.monotonic()
    source = scan.source
    # text formats are always a local file (a read-through copy when stored on S3)
    text = source.format in TEXT_FORMATS and scan.path is not None
    steps = 2 + text + len(rules)
    findings: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="aistudio-validate-", dir=limits.work_dir) as tmp:
        con = connect(limits.memory_limit, limits.threads, os.path.join(tmp, "data.duckdb"), os.path.join(tmp, "spill"))
        # DuckDB draws a progress bar on stdout for long queries: the server's log is no place for it
        con.execute("SET enable_progress_bar = false")
        try:
            step = 0
            progress(step, steps, "reading the file")
            table, malformed = _load(con, scan)
            findings += malformed
            step += 1
            if text:
                progress(step, steps, "checking the encoding")
                findings.append(_encoding(scan.path))
                step += 1
            progress(step, steps, "inferring the schema")
            columns, structure = _structure(table)
            findings += structure
            step += 1
            for i, rule in enumerate(rules):
                progress(step, steps, f"checking rule {i + 1}/{len(rules)}: {validation_rules.describe(rule)}")
                findings.append(validation_rules.run(table, i, rule))
                step += 1
            progress(steps, steps, "done")
        finally:
            con.close()
    failed = [f for f in findings if not f["passed"]]
    summary = {
        "format": source.format,
        "version": source.version,
        "rows": table.rows,
        "columns": len(columns),
        "inferred_types": {c["name"]: c["type"] for c in columns},
        "rules": len(rules),
        "findings": len(findings),
        "errors": sum(1 for f in failed if f["severity"] == "error"),
        "warnings": sum(1 for f in failed if f["severity"] == "warning"),
        "seconds": round(time.monotonic() - started, 3),
    }
    return findings, summary


# -- reading ---------------------------------------------------------------------------------


def _load(con: duckdb.DuckDBPyConnection, scan: Scannable) -> tuple[Table, list[dict]]:
    source, path = scan.source, scan.path
    if source.format in ("csv", "tsv"):
        delimiter = source.schema.get("delimiter") or ("\t" if source.format == "tsv" else ",")
        # 4 MiB read buffers: DuckDB's default (16 × the 2 MiB line limit) alone would fill a small memory_limit
        con.execute(
            "CREATE TABLE data AS SELECT * FROM read_csv(?, delim = ?, header = true, all_varchar = true, store_rejects = true, buffer_size = 4194304)",
            [path, delimiter],
        )
    else:
        relation, params = scan.relation(con)
        con.execute(f"CREATE TABLE data AS SELECT * FROM {relation}", params)
    # rowid now numbers the rows in file order; later queries order explicitly, and DuckDB
    # needs less memory when it may finish their parts in any order
    con.execute("SET preserve_insertion_order = false")
    types = {name: str(kind) for name, kind, *_ in con.execute("DESCRIBE data").fetchall()}
    if any(name.lower() == "rowid" for name in types):
        raise ValueError("A column is named 'rowid', which the validator uses to number rows; rename it.")
    rows = con.execute("SELECT count(*) FROM data").fetchone()[0]
    if source.format not in ("csv", "tsv"):
        return Table(con, types, rows, None), []
    rejected = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    lines = [r[0] for r in con.execute("SELECT DISTINCT line FROM reject_errors ORDER BY line").fetchall()] if rejected <= MAX_REJECTED_LINES else None
    table = Table(con, types, rows, lines)
    if not rejected:
        return table, [_auto("malformed_rows", "error", True, 0, "Every line has the header's number of fields.")]
    shown = con.execute(
        "SELECT line, arg_min(error_type, column_idx), arg_min(error_message, column_idx), arg_min(csv_line, column_idx) FROM reject_errors GROUP BY line ORDER BY line LIMIT 5"
    ).fetchall()
    examples = [{"row": None, "line": line, "values": {"error": str(kind), "message": _shown(msg), "text": _shown(text)}} for line, kind, msg, text in shown]
    message = f"{_plural(rejected, 'line')} could not be read as rows; they are left out of every other check."
    return table, [_auto("malformed_rows", "error", False, rejected, message, examples=examples)]


def _encoding(path: str) -> dict:
    """Invalid UTF-8, found by a streaming decode of bounded chunks. Valid chunks take the fast
    strict decode; a chunk with bad bytes is decoded again with them escaped to lone surrogates,
    which are counted and located."""
    bad, examples = 0, []
    offset, line, carry = 0, 1, b""
    with open(path, "rb") as f:
        if f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        else:
            offset = 3
        while True:
            block = f.read(_ENCODING_CHUNK)
            data, final = carry + block, not block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as exc:
                if not final and exc.reason == "unexpected end of data" and len(data) - exc.start < 4:
                    carry = data[exc.start :]  # a character cut by the chunk boundary, and no error before it
                else:
                    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
                    text = decoder.decode(data, final=final)
                    carry = decoder.getstate()[0]
                    found = len(_ESCAPED.findall(text))
                    bad += found
                    if found and len(examples) < 5:
                        examples += _bad_bytes(text, offset, line, 5 - len(examples))
            done = data[: len(data) - len(carry)]
            offset += len(done)
            line += done.count(b"\n")
            if final:
                break
    if not bad:
        return _auto("encoding", "error", True, 0, "The file is valid UTF-8.")
    return _auto("encoding", "error", False, bad, f"{_plural(bad, 'byte')} not valid UTF-8 (the file must be UTF-8).", examples=examples)


def _bad_bytes(text: str, offset: int, line: int, limit: int) -> list[dict]:
    out = []
    for match in _ESCAPED.finditer(text):
        before = text[: match.start()]
        out.append(
            {
                "row": None,
                "line": line + before.count("\n"),
                "values": {"byte_offset": offset + len(before.encode("utf-8", "surrogateescape")), "byte": f"0x{ord(match.group()) - 0xDC00:02x}"},
            }
        )
        if len(out) >= limit:
            break
    return out


# -- schema, mixed and empty columns -----------------------------------------------------------


def _structure(table: Table) -> tuple[list[dict], list[dict]]:
    """Inferred types per column, and findings for the schema, mixed and empty columns."""
    con, names = table.con, list(table.types)
    text_columns = [n for n in names if validation_rules.category(table.types[n]) == "string"]
    # one scan for every column's non-null count and, for text columns, how many read as numbers
    picks = [f"count({quote(n)})" for n in names] + [f"count(TRY_CAST({quote(n)} AS DOUBLE))" for n in text_columns]
    counts = con.execute(f"SELECT {', '.join(picks)} FROM data").fetchone() if names else ()
    filled = dict(zip(names, counts[: len(names)]))
    numeric = dict(zip(text_columns, counts[len(names) :]))
    inferred = {n: validation_rules.category(table.types[n]) if filled[n] else "empty" for n in names}
    for n in text_columns:
        inferred[n] = _infer_text(table, n, filled[n], numeric[n])
    columns = [{"name": n, "type": inferred[n], "stored_type": table.types[n], "non_null": filled[n], "nulls": table.rows - filled[n]} for n in names]
    findings = [_auto("schema", "info", True, len(names), f"{len(names)} columns, {table.rows} rows.", details={"columns": columns})]
    mixed = [n for n in text_columns if filled[n] and MIXED_MIN_NUMERIC <= numeric[n] / filled[n] < 1]
    for n in mixed:
        where = f"{quote(n)} IS NOT NULL AND TRY_CAST({quote(n)} AS DOUBLE) IS NULL"
        others = filled[n] - numeric[n]
        message = f"{numeric[n]} of {filled[n]} values are numbers; {_plural(others, 'value')} not."
        findings.append(_auto("mixed_types", "warning", False, others, message, n, examples=table.examples(where, [], [n])))
    if not mixed:
        findings.append(_auto("mixed_types", "warning", True, 0, "No column mixes numbers with other values."))
    empty = [n for n in names if not filled[n]]
    findings += [_auto("empty_column", "warning", False, table.rows, "Every value of the column is missing.", n) for n in empty]
    if not empty:
        findings.append(_auto("empty_column", "warning", True, 0, "Every column has values."))
    return columns, findings


def _infer_text(table: Table, name: str, filled: int, numeric: int) -> str:
    """The narrowest type every non-null value of a text column reads as. Casts that fail are
    slow in DuckDB, so the costly ones run over the whole column only when a sample passes."""
    if not filled:
        return "empty"
    col = quote(name)
    if numeric == filled:
        return "int" if not table.count(f"{col} IS NOT NULL AND NOT ({validation_rules.conforms('int', col)})", []) else "float"
    if numeric:
        return "string"
    for kind in ("bool", "date", "datetime"):
        test = validation_rules.conforms(kind, col)
        sample = table.scalar(f"SELECT bool_and({test}) FROM (SELECT {col} FROM data WHERE {col} IS NOT NULL LIMIT 1000)")
        if sample and not table.count(f"{col} IS NOT NULL AND NOT ({test})", []):
            return kind
    return "string"
