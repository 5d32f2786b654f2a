"""Pages of rows from a stored dataset version, read with DuckDB straight from the file.

The file is scanned, never loaded whole: DuckDB pushes the filter, projection and LIMIT into
its readers (``scan.py`` says how a version on local disk or S3 becomes a scannable source).
Local Parquet files are paged by row number, so a page far into the file decodes only its row
groups, and sorted pages sort keys and row numbers only (``_parquet_page``).
Every request gets a fresh in-memory connection with a memory and thread cap, in a worker
thread. Only file paths we build are ever put into SQL text, and as bound parameters; column
names are checked against the file's schema and quoted as identifiers, filter values are bound
parameters.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import datetime as dt
import decimal
import math
import uuid
from typing import Any

import duckdb
from traitlets import Any as AnyTrait
from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import InvalidInput, Unavailable, UnsupportedMediaType
from ..identity import Principal
from ..schemas.rows import RowColumn, RowsOut, RowsQuery
from .row_filters import Clause, parse_filter, parse_names
from .scan import Scannable, Source, connect, quote

__all__ = ["RowService", "json_safe", "quote"]

def json_safe(value: Any) -> Any:
    """A DuckDB result value as something json.dumps writes and every JSON parser reads."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


class RowService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    scans = AnyTrait(help="The ScanService (finds, authorises and opens stored versions).")
    memory_limit = Unicode("512MB", config=True, help="DuckDB memory_limit of all row requests together.")
    threads = Int(2, config=True, help="DuckDB worker threads shared by all row requests.")
    max_concurrent = Int(4, config=True, help="Row requests scanning files at once; more wait.")

    _gate: asyncio.Semaphore | None = None
    _database: duckdb.DuckDBPyConnection | None = None
    _database_lock = threading.Lock()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """A fresh connection (its own registrations) to the service's one in-memory DuckDB: a
        new database per request costs tens of milliseconds, a cursor nothing, and the memory and
        thread caps then bound all requests together."""
        with self._database_lock:
            if self._database is None:
                self._database = connect(self.memory_limit, self.threads)
        return self._database.cursor()

    async def rows(self, who: Principal, dataset_id: str, query: RowsQuery) -> RowsOut:
        # parsed before any I/O: a malformed query is the caller's problem whatever is stored
        clauses = parse_filter(query.filter) if query.filter else []
        sort = parse_names(query.sort, "sort", signed=True) if query.sort else []
        wanted = [name for name, _ in parse_names(query.columns, "columns")] if query.columns else None
        source = await self.scans.source(who, dataset_id, query.version)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrent)
        async with self._gate:
            return await asyncio.to_thread(self._read, source, clauses, sort, wanted, query)

    # -- in a worker thread --------------------------------------------------------------------

    def _read(self, source: Source, clauses: list[Clause], sort: list[tuple[str, bool]], wanted: list[str] | None, query: RowsQuery) -> RowsOut:
        with self.scans.open(source) as scan:
            return self._scan(scan, clauses, sort, wanted, query)

    def _scan(self, scan: Scannable, clauses: list[Clause], sort: list[tuple[str, bool]], wanted: list[str] | None, query: RowsQuery) -> RowsOut:
        source = scan.source
        con = self._connection()
        try:
            relation, params = scan.relation(con)
            described = con.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
            types = {name: str(kind) for name, kind, *_ in described}
            picked = wanted or [name for name, *_ in described]
            for name in [*picked, *(c.column for c in clauses), *(n for n, _ in sort)]:
                if name not in types:
                    raise InvalidInput(f"No column {name!r} in version {source.version}.", {"column": name, "columns": list(types)[:200]})
            where, values = self._where(clauses)
            order = ", ".join(f"{quote(n)} {'DESC' if d else 'ASC'} NULLS LAST" for n, d in sort)
            select = ", ".join(quote(n) for n in picked)
            total = con.execute(f"SELECT count(*) FROM {relation}{where}", [*params, *values]).fetchone()[0]
            if source.format == "parquet" and scan.path and "file_row_number" not in types and (sort or not clauses):
                sql, args = self._parquet_page(scan.path, select, where, values, order, query)
            else:
                sql = f"SELECT {select} FROM {relation}{where}{' ORDER BY ' + order if order else ''} LIMIT ? OFFSET ?"
                args = [*params, *values, query.limit, query.offset]
            rows = con.execute(sql, args).fetchall()
        except (duckdb.ConversionException, duckdb.BinderException, duckdb.TypeMismatchException, duckdb.InvalidTypeException) as exc:
            raise InvalidInput(f"The filter does not fit the columns' types: {str(exc).splitlines()[0][:300]}", {"field": "filter"}) from None
        except duckdb.OutOfMemoryException:
            raise Unavailable("Reading these rows needs more memory than one request may use; filter or sort less.", retry_after=5) from None
        except (duckdb.InvalidInputException, duckdb.IOException) as exc:
            raise UnsupportedMediaType(f"The stored {source.format} file could not be read as a table: {str(exc).splitlines()[0][:300]}", {"format": source.format}) from None
        finally:
            con.close()
        return RowsOut(
            columns=[RowColumn(name=n, type=types[n]) for n in picked],
            rows=[[json_safe(v) for v in row] for row in rows],
            offset=query.offset,
            limit=query.limit,
            total_rows=total,
            version=source.version,
        )

    @staticmethod
    def _parquet_page(path: str, select: str, where: str, values: list, order: str, query: RowsQuery) -> tuple[str, list]:
        """A page of a local Parquet file addressed by row number (DuckDB's ``file_row_number``).

        Unsorted, the page is a row-number range: only the row groups holding it are decoded,
        instead of every row before the offset. Sorted, the sort runs over the sort keys and row
        numbers alone, and only the page's rows are then read whole (late materialisation); row
        number breaks ties, so pages of a sort never overlap.
        """
        source = "read_parquet(?, file_row_number = true)"
        if not order:
            # literals, not parameters: DuckDB prunes row groups by constant bounds only (both are ints we parsed)
            start, stop = int(query.offset), int(query.offset) + int(query.limit)
            return f"SELECT {select} FROM {source} WHERE file_row_number >= {start} AND file_row_number < {stop}", [path]
        order = f"{order}, file_row_number"
        page = f"SELECT file_row_number FROM {source}{where} ORDER BY {order} LIMIT ? OFFSET ?"
        return f"SELECT {select} FROM {source} WHERE file_row_number IN ({page}) ORDER BY {order}", [path, path, *values, query.limit, query.offset]

    @staticmethod
    def _where(clauses: list[Clause]) -> tuple[str, list]:
        parts, values = [], []
        for c in clauses:
            col = quote(c.column)
            if c.op == "is null" or (c.op == "=" and c.values == (None,)):
                parts.append(f"{col} IS NULL")
            elif c.op == "is not null" or (c.op == "!=" and c.values == (None,)):
                parts.append(f"{col} IS NOT NULL")
            elif None in c.values:
                raise InvalidInput(f"null can only be compared with '=', '!=' or 'is [not] null' (column {c.column!r}).", {"field": "filter"})
            elif c.op == "contains":
                parts.append(f"contains(CAST({col} AS VARCHAR), ?)")
                values.append(c.values[0])
            elif c.op == "startswith":
                parts.append(f"starts_with(CAST({col} AS VARCHAR), ?)")
                values.append(c.values[0])
            elif c.op == "in":
                parts.append(f"{col} IN ({', '.join(['?'] * len(c.values))})")
                values.extend(c.values)
            else:
                parts.append(f"{col} {c.op} ?")  # c.op is one of the parser's fixed symbols
                values.append(c.values[0])
        return (" WHERE " + " AND ".join(parts) if parts else ""), values
