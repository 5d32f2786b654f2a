"""Dataset validation: reports, and the ``validate`` jobs that fill them, run in this process.

``submit`` checks the request against the version (a writer's dataset, known columns, a regex
DuckDB compiles), queues a ``validate`` job through ``JobService.submit`` and creates the
pending report naming it, then answers at once. A few worker tasks (``max_concurrent``) take
jobs off a queue and run each in a thread (``validation_scan``), publishing ``progress`` on
``job:<id>`` after every check and the job's status changes as every job does
(``jobs.publish_status``). Job state says whether the run worked; whether the data passed is
the report's.

A running job holds a lease that its worker renews; a job whose lease ran out, or whose
server process on this host is gone, is marked ``lost`` at start-up and by a periodic sweep,
so no validation stays ``running`` for ever. Queued jobs are picked up again at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from typing import Any

import duckdb
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float, Int, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import InvalidInput, NotFound
from ..identity import Principal
from ..schemas.jobs import TERMINAL_STATES, JobResources, JobSubmit
from ..schemas.validation import Rule, ValidateRequest, ValidationListQuery, ValidationOut, ValidationStarted
from ..store import orm
from ..store.types import utcnow
from . import access, audit, validation_scan
from .ids import new_id
from .jobs import publish_status
from .owner_events import announce
from .scan import Source

_RULES = TypeAdapter(list[Rule])
LOST_REASON = "server restarted during validation"


def _host_pid_alive(lease_owner: str | None) -> bool:
    """Whether the server process named by ``lease_owner`` (``host:pid:nonce``) still runs here."""
    host, _, rest = (lease_owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host's process: only its lease can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


class ValidationService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    scans = AnyTrait(help="The ScanService (resolves and opens stored versions).")
    jobs = AnyTrait(help="The JobService (submits the validate jobs).")
    events = AnyTrait(help="The EventService progress and status changes are published through.")
    memory_limit = Unicode("1GB", config=True, help="DuckDB memory_limit of one validation; larger files spill to disk.")
    threads = Int(2, config=True, help="DuckDB threads of one validation.")
    max_concurrent = Int(2, config=True, help="Validations running at once in this server; more wait in the queue.")
    lease_seconds = Float(60.0, config=True, help="How long a running validation's lease lasts; its worker renews it a few times per lease.")
    sweep_interval = Float(60.0, config=True, help="Seconds between sweeps for validations whose server is gone.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task] = []
        self._queued: set[str] = set()
        self._lease_owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- requests ----------------------------------------------------------------------------

    async def submit(self, who: Principal, dataset_id: str, body: ValidateRequest) -> ValidationStarted:
        """Queue a validation of one version; the report is pending until its job has run."""
        source, name = await self.db.run(self._prepare, who, dataset_id, body)
        report_id = new_id("val")
        spec = {"dataset_id": source.dataset_id, "version": source.version, "validation_id": report_id}
        job = await self.jobs.submit(who, JobSubmit(name=f"validate {name} v{source.version}"[:128], kind="validate", spec=spec, resources=JobResources(gpus=0)))
        try:
            report = await self.db.run(self._create, who, source, body, report_id, job.id, write=True)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.db.run(self._end, job.id, None, "failed", "the validation report could not be created", None, write=True)
            raise
        self._enqueue(job.id)
        return ValidationStarted(validation=report, job=job)

    def _prepare(self, session: Session, who: Principal, dataset_id: str, body: ValidateRequest) -> tuple[Source, str]:
        dataset = access.load(session, orm.Dataset, who, dataset_id, write=True, kind="dataset")
        source = self.scans.source_in(session, who, dataset_id, str(body.version))
        known = [c["name"] for c in source.schema.get("columns") or [] if isinstance(c, dict) and "name" in c]
        for i, rule in enumerate(body.rules):
            column = getattr(rule, "column", None)
            if known and column is not None and column not in known:
                raise InvalidInput(f"rules.{i}: no column {column!r} in version {source.version}.", {"field": f"rules.{i}.column", "column": column, "columns": known[:200]})
            if rule.check == "regex":
                _check_regex(i, rule.pattern)
        return source, dataset.name

    def _create(self, session: Session, who: Principal, source: Source, body: ValidateRequest, report_id: str, job_id: str) -> ValidationOut:
        dataset = session.get(orm.Dataset, source.dataset_id)
        now = utcnow()
        row = orm.ValidationReport(
            id=report_id, owner=who.username, visibility=dataset.visibility, team=dataset.team, dataset_id=source.dataset_id, version_id=source.version_id,
            job_id=job_id, state="pending", rules=[r.model_dump(mode="json") for r in body.rules], findings=[], created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(row)
        session.flush()
        audit.record(session, who, "validate", "dataset", source.dataset_id, {"version": source.version, "validation_id": report_id, "job_id": job_id, "rules": len(body.rules)})
        self._announce(session, row, source.version)
        return self._out(row, source.version)

    async def get(self, who: Principal, dataset_id: str, validation_id: str) -> ValidationOut:
        """One report of a dataset the caller can read."""
        return await self.db.run(self._get, who, dataset_id, validation_id)

    def _get(self, session: Session, who: Principal, dataset_id: str, validation_id: str) -> ValidationOut:
        access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        R, V = orm.ValidationReport, orm.DatasetVersion
        found = session.execute(select(R, V.version).join(V, V.id == R.version_id).where(R.id == validation_id, R.dataset_id == dataset_id)).first()
        if found is None:
            raise NotFound(f"No validation {validation_id!r} of dataset {dataset_id!r}.", {"id": validation_id})
        return self._out(*found)

    async def list(self, who: Principal, dataset_id: str, query: ValidationListQuery) -> list[ValidationOut]:
        """The dataset's newest reports first."""
        return await self.db.run(self._list, who, dataset_id, query)

    def _list(self, session: Session, who: Principal, dataset_id: str, query: ValidationListQuery) -> list[ValidationOut]:
        access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        R, V = orm.ValidationReport, orm.DatasetVersion
        stmt = select(R, V.version).join(V, V.id == R.version_id).where(R.dataset_id == dataset_id).order_by(R.created_at.desc(), R.id.desc()).limit(query.limit)
        return [self._out(r, v) for r, v in session.execute(stmt).all()]

    @staticmethod
    def _out(row: orm.ValidationReport, version: int) -> ValidationOut:
        return ValidationOut(
            id=row.id, dataset_id=row.dataset_id, version=version, version_id=row.version_id, job_id=row.job_id, owner=row.owner, state=row.state,
            passed=row.passed, rules=list(row.rules or []), summary=row.summary, findings=list(row.findings or []), error=row.error,
            created_at=row.created_at, updated_at=row.updated_at,
        )  # fmt: skip

    # -- workers -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers; take back queued validations and end those whose server is gone."""
        self._ensure_workers()
        try:
            await self.sweep()
        except Exception as exc:  # the database may be down at start-up; the periodic sweep retries
            self.log.warning("validation start-up sweep failed: %s", exc)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._queue = None
        self._queued.clear()

    def _ensure_workers(self) -> None:
        if self._tasks:
            return
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(max(1, self.max_concurrent))]
        self._tasks.append(asyncio.create_task(self._sweep_periodically()))

    def _enqueue(self, job_id: str) -> None:
        self._ensure_workers()
        if job_id not in self._queued:
            self._queued.add(job_id)
            self._queue.put_nowait(job_id)

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            self._queued.discard(job_id)
            try:
                await self._run(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the job is marked failed where possible; the worker lives on
                self.log.exception("validation job %s failed unexpectedly", job_id)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except Exception as exc:  # the database may be down; the next sweep retries
                self.log.warning("validation sweep failed: %s", exc)

    async def sweep(self) -> None:
        """Mark validations whose server is gone ``lost``; queue the queued ones we do not hold."""
        queued = await self.db.run(self._sweep, write=True)
        for job_id in queued:
            self._enqueue(job_id)

    def _sweep(self, session: Session) -> list[str]:
        J = orm.Job
        now = utcnow()
        for row in session.scalars(select(J).where(J.kind == "validate", J.state.in_(("starting", "running"))).with_for_update()):
            expired = row.lease_expires_at is None or row.lease_expires_at < now
            if expired or not _host_pid_alive(row.lease_owner):
                self._end(session, row.id, None, "lost", LOST_REASON, None)
        return list(session.scalars(select(J.id).where(J.kind == "validate", J.state == "queued").order_by(J.created_at)))

    # -- one run ---------------------------------------------------------------------------------

    async def _run(self, job_id: str) -> None:
        claim = await self.db.run(self._claim, job_id, write=True)
        if claim is None:
            return
        source, report_id, rules = claim
        limits = validation_scan.Limits(self.memory_limit, self.threads, self.scans.work_dir())
        renew = asyncio.create_task(self._renew(job_id))
        try:
            findings, summary = await asyncio.to_thread(self._scan, job_id, source, rules, limits)
        except validation_scan.Canceled as exc:
            await self.db.run(self._end, job_id, report_id, None, str(exc), None, write=True)
        except duckdb.OutOfMemoryException:
            message = f"the validation needed more memory than its limit ({self.memory_limit}, c.ValidationService.memory_limit) even when spilling to disk"
            await self.db.run(self._end, job_id, report_id, "failed", message, None, write=True)
        except Exception as exc:
            message = _reason(exc)
            if not isinstance(exc, (duckdb.Error, ValueError, OSError)):
                self.log.exception("validation %s failed", report_id)
            await self.db.run(self._end, job_id, report_id, "failed", message, None, write=True)
        else:
            await self.db.run(self._end, job_id, report_id, "succeeded", None, (findings, summary), write=True)
        finally:
            renew.cancel()

    def _scan(self, job_id: str, source: Source, rules: list, limits: validation_scan.Limits) -> tuple[list[dict], dict]:
        def progress(step: int, steps: int, message: str) -> None:
            self.db.call(self._progress, job_id, step / steps if steps else 1.0, message, write=True)

        with self.scans.open(source) as scan:
            return validation_scan.run(scan, rules, limits, progress)

    async def _renew(self, job_id: str) -> None:
        # a single check of a large file can outlast a lease: renewing it here keeps the job ours
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with contextlib.suppress(Exception):
                await self.db.run(self._extend, job_id, write=True)

    def _lease_until(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.lease_seconds)

    def _claim(self, session: Session, job_id: str) -> tuple[Source, str, list] | None:
        job = session.get(orm.Job, job_id, with_for_update=True)
        if job is None or job.kind != "validate":
            return None
        if job.state in TERMINAL_STATES:  # canceled while queued: its report says so
            self._end(session, job_id, None, None, f"the validation job was {job.state} before it ran", None)
            return None
        if job.state != "queued":
            return None  # taken by another server sharing the database
        report = session.get(orm.ValidationReport, job.spec.get("validation_id"))
        version = session.get(orm.DatasetVersion, report.version_id) if report is not None else None
        if version is None:
            self._end(session, job_id, None, "failed", "the validation report or its dataset version no longer exists", None)
            return None
        now = utcnow()
        job.state, job.started_at, job.attempts, job.progress = "running", now, job.attempts + 1, 0.0
        job.host, job.lease_owner, job.lease_expires_at, job.heartbeat_at = socket.gethostname(), self._lease_owner, self._lease_until(), now
        report.state = "running"
        publish_status(self.events, session, job)
        self._announce(session, report, version.version)
        source = Source(report.dataset_id, version.id, version.version, version.format, dict(version.schema_ or {}), version.sha256, version.size_bytes)
        return source, report.id, _RULES.validate_python(report.rules or [])

    def _owned_running(self, session: Session, job_id: str) -> orm.Job:
        job = session.get(orm.Job, job_id, with_for_update=True)
        if job is None or job.state != "running" or job.lease_owner != self._lease_owner:
            state = job.state if job is not None else "deleted"
            raise validation_scan.Canceled(f"the validation job was {state}" + (f" ({job.exit_reason})" if job is not None and job.exit_reason else ""))
        return job

    def _progress(self, session: Session, job_id: str, fraction: float, message: str) -> None:
        job = self._owned_running(session, job_id)
        job.progress, job.heartbeat_at, job.lease_expires_at = round(fraction, 4), utcnow(), self._lease_until()
        self.events.publish_in(session, f"job:{job_id}", "progress", {"progress": job.progress, "message": message})

    def _extend(self, session: Session, job_id: str) -> None:
        job = self._owned_running(session, job_id)
        job.heartbeat_at, job.lease_expires_at = utcnow(), self._lease_until()

    def _end(self, session: Session, job_id: str, report_id: str | None, state: str | None, reason: str | None, result: tuple[list, dict] | None) -> None:
        """Finish the job (``state``; None: someone else ended it already) and its report."""
        job = session.get(orm.Job, job_id, with_for_update=True)
        report_id = report_id or (job.spec.get("validation_id") if job is not None else None)
        report = session.get(orm.ValidationReport, report_id) if report_id else None
        if report is not None:
            if result is not None:
                findings, summary = result
                passed = not any(not f["passed"] and f["severity"] == "error" for f in findings)
                report.findings, report.summary, report.passed, report.state = findings, summary, passed, "passed" if passed else "failed"
            else:
                report.state, report.error, report.passed = "error", reason, None
            self._announce(session, report)
        if job is None or state is None or job.state in TERMINAL_STATES:
            return
        job.state, job.finished_at, job.exit_reason, job.lease_expires_at = state, utcnow(), reason, None
        if state == "succeeded":
            job.progress = 1.0
            job.result = {"validation_id": report_id, "passed": report.passed if report is not None else None}
        publish_status(self.events, session, job)
        if report is not None:
            self.events.publish_in(session, f"dataset:{report.dataset_id}", "validation", {"id": report.id, "state": report.state, "passed": report.passed, "job_id": job_id})

    def _announce(self, session: Session, report: orm.ValidationReport, version: int | None = None) -> None:
        """The report's state, on its dataset's owner's topic (one subscription for a whole list)."""
        dataset = session.get(orm.Dataset, report.dataset_id)
        if dataset is None:
            return
        if version is None:
            version = session.scalar(select(orm.DatasetVersion.version).where(orm.DatasetVersion.id == report.version_id))
        summary = {"id": report.id, "dataset_id": dataset.id, "version": version, "state": report.state, "passed": report.passed, "error": report.error, "job_id": report.job_id}
        announce(self.events, session, dataset.owner, "dataset", "validation", dataset.id, validation=summary)


def _check_regex(index: int, pattern: str) -> None:
    """A pattern DuckDB's RE2 compiles (no backreferences or lookaround), or 422."""
    con = duckdb.connect(":memory:", config={"threads": 1, "memory_limit": "64MB"})
    try:
        con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        raise InvalidInput(f"rules.{index}.pattern is not a valid RE2 regular expression: {str(exc).splitlines()[0][:200]}", {"field": f"rules.{index}.pattern"}) from None
    finally:
        con.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:500]
