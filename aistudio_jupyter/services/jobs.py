"""Jobs: submission, cancel, logs, and the one way a job's state change is published.

The scheduler and supervisor (services/scheduler.py, services/supervisor.py) start and watch
the processes; this module is the door users and other services come through.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import get_args

from sqlalchemy import update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Unicode, default

from ..errors import Conflict, InvalidInput
from ..executors.base import JobPaths
from ..identity import Principal, quotas_of
from ..schemas.jobs import LAUNCHED_KINDS, TERMINAL_STATES, JobCreate, JobOut, JobState, JobSubmit, LogOut, LogQuery
from ..store import orm
from ..store.types import utcnow
from . import access, audit
from .ids import new_id
from .resources import ResourceService


def publish_status(events, session: Session, row: orm.Job) -> JobOut:
    """Publish a job's state in the transaction that changed it (contract 2): ``status`` on
    ``job:<id>`` and ``job`` on ``user:<owner>``. Returns the JobOut it published."""
    session.flush()
    out = JobOut.model_validate(row)
    data = out.model_dump(mode="json")
    events.publish_in(session, f"job:{row.id}", "status", data)
    events.publish_in(session, f"user:{row.owner}", "job", data)
    return out


def revoke_job_tokens(session: Session, job_id: str) -> None:
    """A finished job's token stops working (within the token cache's few seconds)."""
    session.execute(update(orm.ApiToken).where(orm.ApiToken.job_id == job_id, orm.ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


class JobService(ResourceService[JobOut]):
    orm = orm.Job
    out = JobOut
    kind = "job"
    id_prefix = "job"
    unique_name = False
    filters = {"status": "state"}
    statuses = frozenset(get_args(JobState))

    events = AnyTrait(help="The EventService status changes are published through.")
    tiers = AnyTrait(help="Tier name → quotas (priority, concurrent_jobs, gpus_per_job).")
    supervisor = AnyTrait(None, allow_none=True, help="The JobSupervisor, woken when a job is queued or canceled.")
    root_dir = Unicode(help="The server's root directory: script and notebook paths are relative to it. Default: the Jupyter server's root_dir.")

    @default("root_dir")
    def _default_root_dir(self) -> str:
        server = getattr(self.parent, "serverapp", None)
        return str(getattr(server, "root_dir", "") or os.getcwd())

    # -- submission ------------------------------------------------------------------------

    async def create(self, who: Principal, body: JobCreate) -> JobOut:
        """``POST /jobs``: queue a script or notebook job whose file lies under the root."""
        self.resolve_entry(body.kind, body.spec)
        submit = JobSubmit(name=body.name or Path(body.spec.get("path") or body.spec.get("module", "")).name, kind=body.kind, spec=body.spec, resources=body.resources, visibility=body.visibility, team=body.team)
        return await self.submit(who, submit)

    def resolve_entry(self, kind: str, spec: dict) -> Path | None:
        """The absolute file a script/notebook spec names, confined to the root directory."""
        relative = spec.get("path")
        if kind not in ("script", "notebook") or relative is None:
            return None
        root = Path(self.root_dir or ".").resolve()
        # resolve() follows symbolic links, so one pointing out of the root is refused too
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise InvalidInput("The path leads outside the server's root directory.", {"field": "spec.path"})
        if not target.is_file():
            raise InvalidInput(f"No file {relative!r} under the server's root directory.", {"field": "spec.path"})
        return target

    async def submit(self, who: Principal, body: JobSubmit) -> JobOut:
        """Queue a job owned by ``who`` (the internal door other services use)."""
        quotas = quotas_of(self.tiers, who)
        limit = quotas.get("gpus_per_job")
        if limit is not None and body.resources.gpus > limit:
            raise InvalidInput(f"Your tier allows at most {limit} GPUs per job.", {"field": "resources.gpus", "limit": limit})
        if body.kind in LAUNCHED_KINDS and self.supervisor is not None:
            self.supervisor.check_fits(body.resources)
        out = await self._db().run(self._submit, who, body, int(quotas.get("priority", 0)), write=True)
        self._wake()
        return out

    def _submit(self, session: Session, who: Principal, body: JobSubmit, priority: int) -> JobOut:
        access.check_sharing(who, body.visibility, body.team)
        now = utcnow()
        row = orm.Job(id=new_id(self.id_prefix), owner=who.username, state="queued", priority=priority, tier=who.tier, created_at=now, updated_at=now, **body.model_dump())
        session.add(row)
        out = publish_status(self.events, session, row)
        audit.record(session, who, "submit", self.kind, row.id, {"kind": body.kind})
        return out

    def _wake(self) -> None:
        if self.supervisor is not None:
            self.supervisor.wake()

    # -- cancel ----------------------------------------------------------------------------

    async def cancel(self, who: Principal, id: str) -> JobOut:
        """Cancel a job: queued and interactive ones at once; a running process gets SIGTERM,
        then SIGKILL after the grace period, from the supervisor that owns it."""
        out = await self._db().run(self._cancel, who, id, write=True)
        self._wake()
        return out

    def _cancel(self, session: Session, who: Principal, id: str) -> JobOut:
        row = access.load(session, orm.Job, who, id, write=True, kind=self.kind)
        if row.state in TERMINAL_STATES:
            raise Conflict(f"Job {id} has already ended ({row.state}).", {"id": id, "state": row.state})
        now = utcnow()
        row.cancel_requested_at = row.cancel_requested_at or now
        if row.state == "queued" or row.kind not in LAUNCHED_KINDS:
            # no process of ours to stop: an interactive run learns on its next flush
            row.state = "canceled"
            row.finished_at = now
            row.exit_reason = f"canceled by {who.username}"
            revoke_job_tokens(session, row.id)
        out = publish_status(self.events, session, row)
        audit.record(session, who, "cancel", self.kind, row.id, {"state": row.state})
        return out

    # -- logs ------------------------------------------------------------------------------

    async def logs(self, who: Principal, id: str, query: LogQuery) -> LogOut:
        """Bytes ``[offset, offset + limit)`` of a job's stdout or stderr."""
        job_dir, finished = await self._db().run(self._log_location, who, id)
        return await asyncio.to_thread(read_log, job_dir, query, finished)

    def _log_location(self, session: Session, who: Principal, id: str) -> tuple[str | None, bool]:
        row = access.load(session, orm.Job, who, id, kind=self.kind)
        return row.job_dir, row.state in TERMINAL_STATES


def read_log(job_dir: str | None, query: LogQuery, finished: bool) -> LogOut:
    """A slice of a log file; a job that never started has an empty log."""
    data, size = b"", 0
    if job_dir:
        try:
            with open(JobPaths(Path(job_dir)).log(query.stream), "rb") as f:
                size = f.seek(0, 2)
                if query.offset < size:
                    f.seek(query.offset)
                    data = f.read(query.limit)
        except FileNotFoundError:
            pass
    if query.offset > size:
        raise InvalidInput(f"The {query.stream} log has {size} bytes; offset {query.offset} is past its end.", {"field": "offset", "size": size})
    end = query.offset + len(data)
    return LogOut(stream=query.stream, offset=query.offset, next_offset=end, size=size, text=data.decode("utf-8", "replace"), complete=finished and end >= size)
