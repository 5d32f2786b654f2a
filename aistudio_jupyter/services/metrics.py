"""Metric points: batched ingestion from runs, and downsampled series for charts.

A run sends its points in batches (runtime/tracking.py); one batch is one transaction: a bulk
insert and one ``metrics`` event on ``job:<id>``, so a subscriber sees exactly what was stored.
Reading a long series asks the database for each step bucket's first, last, minimum and maximum
point, so a chart of millions of points costs ``max_points`` rows and still shows every spike.
"""

from __future__ import annotations

import datetime as dt
import time

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, Forbidden, InvalidInput
from ..identity import Principal
from ..schemas.jobs import TERMINAL_STATES
from ..schemas.metrics import MAX_KEYS, MetricKey, MetricsAccepted, MetricsOut, MetricsQuery, MetricPointIn
from ..store.orm import Job, MetricPoint
from ..store.types import utcnow
from . import access

#: an interactive run's heartbeat is refreshed at most this often by its metric batches
HEARTBEAT_EVERY = dt.timedelta(seconds=10)
#: a point under this key (0..1) also moves the job's progress bar (jobs.progress + a
#: ``progress`` event), so any run, the built-in trainer included, reports progress by logging
PROGRESS_KEY = "progress"
#: each downsampling bucket keeps up to this many points: first, last, minimum, maximum
PER_BUCKET = 4
_KEYS = TypeAdapter(list[MetricKey])

# Keys by a loose index scan: each step seeks the next key in (job_id, key, step), so listing
# a job's keys costs one probe per key instead of reading every point (DISTINCT would).
_KEYS_SQL = text(
    """
    WITH RECURSIVE k(key) AS (
        SELECT MIN(key) FROM metric_points WHERE job_id = :job
        UNION ALL
        SELECT (SELECT MIN(key) FROM metric_points WHERE job_id = :job AND key > k.key) FROM k WHERE k.key IS NOT NULL
    )
    SELECT key FROM k WHERE key IS NOT NULL LIMIT :n
    """
)


_COLUMNS = "job_id, key, step, value, wall_time"


def insert_points(session: Session, rows: list[tuple]) -> None:
    """Bulk-insert (job_id, key, step, value, wall_time) tuples in the session's transaction.

    COPY on PostgreSQL and the driver's executemany on SQLite: each costs a fraction per row of
    SQLAlchemy's executemany, whose per-row parameter processing dominated ingestion (measured
    with benchmarks/metrics.py); the ORM would even build an object per point.
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(f"COPY metric_points ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(f"INSERT INTO metric_points ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)


class MetricService(LoggingConfigurable):
    """Store and read metric points of jobs."""

    db = AnyTrait(help="The Database points live in.")
    events = AnyTrait(help="The EventService that publishes each batch on job:<id>.")

    async def ingest(self, who: Principal, job_id: str, points: list[MetricPointIn]) -> MetricsAccepted:
        """Store a batch for a job ``who`` may write (or whose job token ``who`` is)."""
        if who.job_id is not None and who.job_id != job_id:
            raise Forbidden("A job token writes metrics of its own job only.", {"id": job_id})
        return await self.db.run(self._ingest, who, job_id, points, write=True)

    def _ingest(self, session: Session, who: Principal, job_id: str, points: list[MetricPointIn]) -> MetricsAccepted:
        # the row lock orders batches against the job's state changes: no point lands after
        # the transaction that finished the job
        job = access.load(session, Job, who, job_id, write=True, kind="job")
        if job.state in TERMINAL_STATES:
            raise Conflict(f"Job {job_id} has ended ({job.state}); it takes no more metrics.", {"id": job_id, "state": job.state})
        now = time.time()
        rows = [(job_id, p.key, p.step, p.value, now if p.wall_time is None else p.wall_time) for p in points]
        if rows:
            insert_points(session, rows)
            published = [{"key": key, "step": step, "value": value, "wall_time": wall_time} for _, key, step, value, wall_time in rows]
            self.events.publish_in(session, f"job:{job_id}", "metrics", {"points": published})
            self._progress(session, job, rows)
        if job.kind == "interactive":
            self._beat(session, job)
        return MetricsAccepted(accepted=len(rows), canceled=job.cancel_requested_at is not None or job.state == "canceled")

    def _progress(self, session: Session, job: Job, rows: list[tuple]) -> None:
        marks = [(step, value) for _, key, step, value, _ in rows if key == PROGRESS_KEY and 0.0 <= value <= 1.0]
        if not marks:
            return
        fraction = max(marks)[1]  # the latest step's, whatever order the batch came in
        if fraction != job.progress:
            session.execute(update(Job).where(Job.id == job.id).values(progress=fraction, updated_at=job.updated_at).execution_options(synchronize_session=False))
            self.events.publish_in(session, f"job:{job.id}", "progress", {"progress": fraction, "message": ""})

    @staticmethod
    def _beat(session: Session, job: Job) -> None:
        """Keep an interactive run from being swept as lost (services/runs.py): its kernel is
        the only process, and its batches (or empty heartbeats) are the sign of life."""
        now = utcnow()
        if job.heartbeat_at is None or now - job.heartbeat_at >= HEARTBEAT_EVERY:
            # updated_at stays: it orders job lists by user-visible changes, not heartbeats
            session.execute(update(Job).where(Job.id == job.id).values(heartbeat_at=now, updated_at=job.updated_at).execution_options(synchronize_session=False))

    async def query(self, who: Principal, job_id: str, query: MetricsQuery) -> MetricsOut:
        """Series of a job ``who`` can read, each downsampled to ``query.max_points``."""
        keys = self._keys_of(query.keys)
        return await self.db.run(self._query, who, job_id, keys, query)

    @staticmethod
    def _keys_of(raw: str | None) -> list[str] | None:
        if raw is None:
            return None
        keys = list(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
        if not keys:
            raise InvalidInput("keys names no metric.", {"field": "keys"})
        if len(keys) > MAX_KEYS:
            raise InvalidInput(f"Ask for at most {MAX_KEYS} keys at once.", {"field": "keys", "limit": MAX_KEYS})
        try:
            _KEYS.validate_python(keys)
        except ValidationError:
            raise InvalidInput("keys holds a name that no metric can have (1-128 characters, no control characters).", {"field": "keys"}) from None
        return keys

    def _query(self, session: Session, who: Principal, job_id: str, keys: list[str] | None, query: MetricsQuery) -> MetricsOut:
        access.load(session, Job, who, job_id, kind="job")
        if keys is None:
            keys = list(session.scalars(_KEYS_SQL, {"job": job_id, "n": MAX_KEYS}))
        series = {key: self._series(session, job_id, key, query.since_step, query.max_points) for key in keys}
        return MetricsOut.model_validate({"series": series})

    @staticmethod
    def _series(session: Session, job_id: str, key: str, since_step: int, max_points: int) -> list[dict]:
        mp = MetricPoint
        where = (mp.job_id == job_id, mp.key == key, mp.step >= since_step)
        count, lo, hi = session.execute(select(func.count(), func.min(mp.step), func.max(mp.step)).where(*where)).one()
        # the (job_id, key, step) index hands the points over already in step order
        stmt = select(mp.step, mp.value, mp.wall_time).where(*where).order_by(mp.step, mp.id)
        # plain Core rows: the ORM's result layer would cost more than the scan itself
        conn = session.connection()
        if count <= max_points:
            return [{"step": s, "value": v, "wall_time": w} for s, v, w in conn.execute(stmt)]
        # Equal step buckets, each keeping its first, last, lowest and highest point: the
        # series' shape and every extreme survive in at most max_points points. One pass over
        # a server-side cursor: memory holds a bucket, never the series.
        width = -(-(hi - lo + 1) // (max_points // PER_BUCKET))
        kept: list[dict] = []
        current = None
        bucket: list = []  # [first, lowest, highest, last], each (index, step, value, wall_time)
        rows = (row for chunk in conn.execution_options(yield_per=5000).execute(stmt).partitions() for row in chunk)
        for index, (step, value, wall_time) in enumerate(rows):
            point = (index, step, value, wall_time)
            b = (step - lo) // width
            if b != current:
                _keep(kept, bucket)
                current, bucket = b, [point, point, point, point]
                continue
            if value < bucket[1][2]:
                bucket[1] = point
            if value > bucket[2][2]:
                bucket[2] = point
            bucket[3] = point
        _keep(kept, bucket)
        return kept


def _keep(kept: list[dict], bucket: list) -> None:
    """Append a bucket's distinct kept points in the order they were logged."""
    for _, step, value, wall_time in sorted(set(bucket)):
        kept.append({"step": step, "value": value, "wall_time": wall_time})
