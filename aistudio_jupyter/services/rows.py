"""Pages of rows from a stored dataset version, read with DuckDB straight from the file.

The file is scanned, never loaded whole: DuckDB pushes the filter, projection and LIMIT into
its CSV/Parquet/JSON readers (Arrow IPC goes through a memory-mapped pyarrow dataset). Every
request gets a fresh in-memory connection with a memory and thread cap, in a worker thread.
Only the file path (from our storage) is ever put into SQL text by us, and as a bound
parameter; column names are checked against the file's schema and quoted as identifiers,
filter values are bound parameters.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import decimal
import math
import uuid
from typing import Any

import duckdb
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, InvalidInput, Unavailable, UnsupportedMediaType
from ..identity import Principal
from ..schemas.rows import RowColumn, RowsOut, RowsQuery
from ..store import orm
from . import access
from .row_filters import Clause, parse_filter, parse_names
from .versions import blob_key

_SCANNABLE = ("csv", "tsv", "parquet", "json", "jsonl", "arrow")


@dataclasses.dataclass(frozen=True)
class _Source:
    version: int
    format: str
    schema: dict
    key: str


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
    storage = AnyTrait(help="The Storage holding the bytes.")
    versions = AnyTrait(help="The VersionService (resolves 'latest' and version numbers).")
    memory_limit = Unicode("512MB", config=True, help="DuckDB memory_limit of one row request.")
    threads = Int(2, config=True, help="DuckDB threads of one row request.")
    max_concurrent = Int(4, config=True, help="Row requests scanning files at once; more wait.")

    _gate: asyncio.Semaphore | None = None

    async def rows(self, who: Principal, dataset_id: str, query: RowsQuery) -> RowsOut:
        # parsed before any I/O: a malformed query is the caller's problem whatever is stored
        clauses = parse_filter(query.filter) if query.filter else []
        sort = parse_names(query.sort, "sort", signed=True) if query.sort else []
        wanted = [name for name, _ in parse_names(query.columns, "columns")] if query.columns else None
        source = await self.db.run(self._source, who, dataset_id, query.version)
        if source.format not in _SCANNABLE:
            raise UnsupportedMediaType(f"Rows can be read from tabular files only (csv, tsv, parquet, json, jsonl, arrow); this version is {source.format}.", {"format": source.format})
        path = self.storage.local_path(source.key)
        if path is None:
            raise Unavailable("Row paging of S3-stored datasets is not available yet; download the version instead.")
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrent)
        async with self._gate:
            return await asyncio.to_thread(self._scan, source, str(path), clauses, sort, wanted, query)

    def _source(self, session: Session, who: Principal, dataset_id: str, version: str) -> _Source:
        dataset = access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        if dataset.latest_version == 0:
            raise Conflict(f"Dataset {dataset_id!r} has no versions yet: upload a file first.", {"id": dataset_id})
        row = self.versions._load(session, who, dataset_id, version)
        return _Source(row.version, row.format, dict(row.schema_ or {}), blob_key(row.sha256))

    # -- in a worker thread --------------------------------------------------------------------

    def _scan(self, source: _Source, path: str, clauses: list[Clause], sort: list[tuple[str, bool]], wanted: list[str] | None, query: RowsQuery) -> RowsOut:
        con = duckdb.connect(":memory:", config={"memory_limit": self.memory_limit, "threads": self.threads})
        try:
            relation, params = self._relation(con, source, path)
            described = con.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
            types = {name: str(kind) for name, kind, *_ in described}
            picked = wanted or [name for name, *_ in described]
            for name in [*picked, *(c.column for c in clauses), *(n for n, _ in sort)]:
                if name not in types:
                    raise InvalidInput(f"No column {name!r} in version {source.version}.", {"column": name, "columns": list(types)[:200]})
            where, values = self._where(clauses)
            order = " ORDER BY " + ", ".join(f"{quote(n)} {'DESC' if d else 'ASC'} NULLS LAST" for n, d in sort) if sort else ""
            select = ", ".join(quote(n) for n in picked)
            total = con.execute(f"SELECT count(*) FROM {relation}{where}", [*params, *values]).fetchone()[0]
            rows = con.execute(f"SELECT {select} FROM {relation}{where}{order} LIMIT ? OFFSET ?", [*params, *values, query.limit, query.offset]).fetchall()
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
    def _relation(con: duckdb.DuckDBPyConnection, source: _Source, path: str) -> tuple[str, list]:
        """The FROM expression reading ``path`` and its bound parameters."""
        fmt = source.format
        if fmt in ("csv", "tsv"):
            delimiter = source.schema.get("delimiter") or ("\t" if fmt == "tsv" else ",")
            return "read_csv(?, delim = ?, header = true)", [path, delimiter]
        if fmt == "parquet":
            return "read_parquet(?)", [path]
        if fmt in ("json", "jsonl"):
            return "read_json_auto(?)", [path]
        if source.schema.get("ipc", "file") != "file":
            raise UnsupportedMediaType("Rows can be read from Arrow IPC files, not streams.", {"format": fmt})
        import pyarrow.dataset as pads

        # a memory-mapped dataset: DuckDB scans it batch by batch
        con.register("arrow_source", pads.dataset(path, format="arrow"))
        return "arrow_source", []

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
