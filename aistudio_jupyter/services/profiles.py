"""Profiles of dataset versions: per-column statistics, computed once per version, out of core.

DuckDB reads the stored file (``scan.py``) under a memory and thread cap and spills to local
scratch space beyond it, so a file larger than memory profiles with bounded memory. Text files
(CSV, TSV, JSON) are parsed once into a temporary on-disk DuckDB table, then scanned column-wise;
Parquet and Arrow are scanned in place. The passes:

1. count, nulls, approximate distinct (HyperLogLog), min/max and mean/std of every column;
2. quantiles of every numeric and temporal column (exact, on a random sample for big files);
3. 20-bin histograms of numeric columns between the min and max found by pass 1;
4. the value counts of every low-cardinality column in one scan (whence their top 10), and a
   grouped top-10 for each high-cardinality string column.

Versions are immutable, so a profile is computed once: the ``dataset_profiles`` row is the cache
shared by every server process, and within a process concurrent first requests for a version
share one computation (a pending task per version).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, Unavailable, UnsupportedMediaType
from ..identity import Principal
from ..schemas.profiles import QUANTILES, ProfileOut, ProfileQuery
from ..store import orm
from ..store.types import utcnow
from .rows import json_safe
from .scan import TEXT_FORMATS, Scannable, Source, connect, quote

BINS = 20
TOP = 10
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE")


def kind_of(duck_type: str) -> str:
    base = duck_type.split("(", 1)[0].strip().upper()
    if base in _NUMERIC:
        return "numeric"
    if base == "VARCHAR":
        return "string"
    if base == "BOOLEAN":
        return "boolean"
    if base in _TEMPORAL:
        return "temporal"
    return "other"


class ProfileService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    scans = AnyTrait(help="The ScanService (finds, authorises and opens stored versions).")
    memory_limit = Unicode("256MB", config=True, help="DuckDB memory_limit of one profile computation (it spills to local disk beyond it).")
    threads = Int(2, config=True, help="DuckDB threads of one profile computation.")
    max_concurrent = Int(1, config=True, help="Profiles computed at once; more wait.")
    max_columns = Int(500, config=True, help="Columns profiled per version; wider files are profiled on their first columns.")
    low_cardinality = Int(1000, config=True, help="Columns with at most this many distinct values get their top values from one shared pass.")
    quantile_sample_rows = Int(1_000_000, config=True, help="Quantiles are exact up to this many rows, and computed on a uniform random sample of about this many rows beyond.")

    _gate: asyncio.Semaphore | None = None

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._pending: dict[str, asyncio.Task] = {}

    async def profile(self, who: Principal, dataset_id: str, query: ProfileQuery) -> ProfileOut:
        """The profile of a version ``who`` may read; computed on first request, then stored."""
        source = await self.scans.source(who, dataset_id, query.version)
        stored = await self.db.run(self._stored, source)
        if stored is not None:
            return stored
        task = self._pending.get(source.version_id)
        if task is None:
            task = asyncio.ensure_future(self._compute(source))
            self._pending[source.version_id] = task
            task.add_done_callback(lambda _: self._pending.pop(source.version_id, None))
        # shielded: a client that gives up must not cancel the computation the others wait for
        return await asyncio.shield(task)

    def _stored(self, session: Session, source: Source) -> ProfileOut | None:
        row = session.get(orm.DatasetProfile, source.version_id)
        return None if row is None else self._out(source, row, cached=True)

    @staticmethod
    def _out(source: Source, row: orm.DatasetProfile, cached: bool) -> ProfileOut:
        return ProfileOut(dataset_id=source.dataset_id, version=source.version, seconds=row.seconds, computed_at=row.created_at, cached=cached, **row.profile)

    async def _compute(self, source: Source) -> ProfileOut:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrent)
        async with self._gate:
            # another process may have finished it while this one waited
            stored = await self.db.run(self._stored, source)
            if stored is not None:
                return stored
            started = time.monotonic()
            profile = await asyncio.to_thread(self._run, source)
            seconds = round(time.monotonic() - started, 3)
        try:
            return await self.db.run(self._store, source, profile, seconds, write=True)
        except Conflict:  # computed by another process at the same time: theirs is as good
            return await self.db.run(self._stored, source)

    def _store(self, session: Session, source: Source, profile: dict, seconds: float) -> ProfileOut:
        row = orm.DatasetProfile(version_id=source.version_id, profile=profile, seconds=seconds, created_at=utcnow())
        session.add(row)
        session.flush()
        return self._out(source, row, cached=False)

    # -- in a worker thread --------------------------------------------------------------------

    def _run(self, source: Source) -> dict:
        with self.scans.open(source) as scan, tempfile.TemporaryDirectory(dir=self.scans.work_dir(), prefix="profile-") as tmp:
            con = connect(self.memory_limit, self.threads, database=str(Path(tmp) / "profile.duckdb"), temp_directory=str(Path(tmp) / "spill"))
            try:
                con.execute("SET preserve_insertion_order = false")  # nothing here depends on file order
                return self._profile(con, scan)
            except duckdb.OutOfMemoryException:
                raise Unavailable("Profiling this version needs more memory than it may use; try again later.", retry_after=30) from None
            except (duckdb.InvalidInputException, duckdb.IOException, duckdb.ConversionException) as exc:
                raise UnsupportedMediaType(f"The stored {source.format} file could not be read as a table: {str(exc).splitlines()[0][:300]}", {"format": source.format}) from None
            finally:
                con.close()

    def _profile(self, con: duckdb.DuckDBPyConnection, scan: Scannable) -> dict:
        relation, params = scan.relation(con)
        if scan.source.format in TEXT_FORMATS:
            # parsed once into columnar pages on local disk; every later pass reads those
            con.execute(f"CREATE TABLE data AS SELECT * FROM {relation}", params)
            relation, params = "data", []
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}", params).fetchall()
        columns = [(name, str(kind), kind_of(str(kind))) for name, kind, *_ in described][: self.max_columns]
        row_count, stats = self._stats(con, relation, params, columns)
        self._quantiles(con, relation, params, stats)
        self._histograms(con, relation, params, stats)
        self._top_values(con, relation, params, stats)
        for col in stats:
            col.pop("_float")
        return {"row_count": int(row_count), "columns_total": len(described), "columns": stats}

    def _stats(self, con, relation: str, params: list, columns: list[tuple[str, str, str]]) -> tuple[int, list[dict]]:
        """Pass 1, every column at once: counts, distinct values, range and moments."""
        select = ["count(*)"]
        for name, _, kind in columns:
            c = quote(name)
            select += [f"count({c})", f"approx_count_distinct({c})"]
            if kind == "numeric":
                select += [f"min({c})", f"max({c})", f"avg({c}::DOUBLE)", f"stddev_samp({c}::DOUBLE)"]
            elif kind == "other":
                select += ["NULL", "NULL", "NULL", "NULL"]
            else:
                select += [f"min({c})", f"max({c})", "NULL", "NULL"]
        row = con.execute(f"SELECT {', '.join(select)} FROM {relation}", params).fetchone()
        total, values = row[0], row[1:]
        out = []
        for i, (name, duck_type, kind) in enumerate(columns):
            count, distinct, lo, hi, mean, std = values[i * 6 : i * 6 + 6]
            col = {"name": name, "type": duck_type, "kind": kind, "count": int(count), "nulls": int(total - count), "distinct": min(int(distinct or 0), int(count))}
            col["_float"] = duck_type.upper() in ("FLOAT", "DOUBLE", "REAL")
            if col["_float"] and not all(v is None or math.isfinite(v) for v in (lo, hi, mean, std)):
                # NaN or an infinity would swamp range and moments: they count as values, not in those
                finite = f" FILTER (WHERE isfinite({quote(name)}))"
                c = quote(name)
                lo, hi, mean, std = con.execute(f"SELECT min({c}){finite}, max({c}){finite}, avg({c}){finite}, stddev_samp({c}){finite} FROM {relation}", params).fetchone()
            col.update(min=json_safe(lo), max=json_safe(hi), mean=json_safe(mean), std=json_safe(std), quantiles=None, top_values=None, histogram=None)
            out.append(col)
        return total, out

    def _quantiles(self, con, relation: str, params: list, stats: list[dict]) -> None:
        """Pass 2, numeric and temporal columns together: exact quantiles of every value up to
        ``quantile_sample_rows`` rows, beyond that of a uniform random (Bernoulli) sample of about
        that many rows: the rank error is then around 0.1 percentile points, and time and memory
        (the sampled values, 8 bytes each) stop growing with the file."""
        cols = [col for col in stats if col["kind"] in ("numeric", "temporal") and col["count"]]
        if not cols:
            return
        fractions = list(QUANTILES.values())
        select = []
        for col in cols:
            c = quote(col["name"])
            if col["kind"] == "numeric":
                finite = f" FILTER (WHERE isfinite({c}))" if col["_float"] else ""
                select.append(f"quantile_cont({c}::DOUBLE, {fractions}){finite}")
            else:
                select.append(f"quantile_disc({c}, {fractions})")
        total = max(col["count"] + col["nulls"] for col in cols)
        source = f"(SELECT {', '.join(quote(col['name']) for col in cols)} FROM {relation}"
        if total > self.quantile_sample_rows:
            percent = 100.0 * self.quantile_sample_rows / total
            source += f" USING SAMPLE {percent:.6f}% (bernoulli, 7)"
        row = con.execute(f"SELECT {', '.join(select)} FROM {source})", params).fetchone()
        for col, values in zip(cols, row):
            if values is not None:
                col["quantiles"] = dict(zip(QUANTILES, json_safe(values)))

    def _histograms(self, con, relation: str, params: list, stats: list[dict]) -> None:
        """Pass 3, numeric columns: 20 equal-width bins between the min and max of pass 1, a
        grouped count per column (small integer keys: DuckDB's perfect-hash aggregate)."""
        parts, bounds = [], []
        for col in stats:
            if col["kind"] != "numeric" or col["min"] is None or col["max"] is None:
                continue
            c = quote(col["name"])
            lo, hi = float(col["min"]), float(col["max"])
            width = (hi - lo) / BINS
            bucket = f"least(floor(({c}::DOUBLE - {lo!r}) / {width!r}), {BINS - 1})::INTEGER" if width > 0 else "0"
            keep = f"isfinite({c})" if col["_float"] else f"{c} IS NOT NULL"
            parts.append(f"SELECT {len(bounds)} AS col, {bucket} AS bin, count(*) AS n FROM {relation} WHERE {keep} GROUP BY bin")
            bounds.append((col, lo, width))
        if not parts:
            return
        counts: dict[tuple[int, int], int] = {}
        for i, b, n in con.execute(" UNION ALL ".join(parts), params * len(parts)).fetchall():
            counts[(i, b)] = n
        for i, (col, lo, width) in enumerate(bounds):
            bins = BINS if width > 0 else 1
            col["histogram"] = [{"lower": lo + b * width, "upper": lo + (b + 1) * width if width > 0 else lo, "count": int(counts.get((i, b), 0))} for b in range(bins)]

    def _top_values(self, con, relation: str, params: list, stats: list[dict]) -> None:
        """Pass 3: the most frequent values of string, boolean and low-cardinality columns; the
        low-cardinality ones share one scan (their full value counts are small), the others get
        a grouped top-N each."""
        shared = []
        for col in stats:
            wanted = col["kind"] in ("string", "boolean") or (col["kind"] != "other" and col["distinct"] <= self.low_cardinality)
            if not wanted or not col["count"]:
                continue
            if col["distinct"] <= self.low_cardinality:
                shared.append(col)
            else:
                c = quote(col["name"])
                rows = con.execute(f"SELECT {c}, count(*) AS n FROM {relation} WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY n DESC, {c} LIMIT {TOP}", params).fetchall()
                col["top_values"] = [{"value": json_safe(v), "count": int(n)} for v, n in rows]
        if shared:
            select = ", ".join(f"histogram({quote(col['name'])}) FILTER (WHERE {quote(col['name'])} IS NOT NULL)" for col in shared)
            row = con.execute(f"SELECT {select} FROM {relation}", params).fetchone()
            for col, counts in zip(shared, row):
                ranked = sorted(dict(counts or {}).items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP]
                col["top_values"] = [{"value": json_safe(v), "count": int(n)} for v, n in ranked]
