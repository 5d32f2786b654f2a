"""Jobs: listing and reading now; submission is the scheduler's door."""

from __future__ import annotations

from typing import get_args

from sqlalchemy.orm import Session

from ..identity import Principal
from ..schemas.jobs import JobState, JobOut, JobSubmit
from ..store import orm
from . import access, audit
from .ids import new_id
from .resources import ResourceService


class JobService(ResourceService[JobOut]):
    orm = orm.Job
    out = JobOut
    kind = "job"
    id_prefix = "job"
    unique_name = False
    filters = {"status": "state"}
    statuses = frozenset(get_args(JobState))

    async def submit(self, who: Principal, body: JobSubmit) -> JobOut:
        """Queue a job owned by ``who``."""
        return await self._db().run(self._submit, who, body, write=True)

    def _submit(self, session: Session, who: Principal, body: JobSubmit) -> JobOut:
        access.check_sharing(who, body.visibility, body.team)
        row = orm.Job(id=new_id(self.id_prefix), owner=who.username, state="queued", **body.model_dump())
        session.add(row)
        session.flush()
        audit.record(session, who, "submit", self.kind, row.id, {"kind": body.kind})
        return self.to_out(session, row)
