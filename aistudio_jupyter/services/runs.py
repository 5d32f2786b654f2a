"""Interactive runs: jobs whose process is the user's own kernel (``with ais.track(...)``).

The scheduler never launches them; they start ``running`` and the kernel ends them with
``finish``. A kernel can die without saying so, so a run that has sent neither points nor a
heartbeat for ``idle_timeout`` seconds is marked ``lost``: no job stays running for ever.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..errors import Conflict
from ..identity import Principal
from ..schemas.jobs import TERMINAL_STATES, JobOut
from ..schemas.runs import InteractiveRunCreate, RunFinish
from ..store.orm import Job
from ..store.types import utcnow
from . import access, audit
from .ids import new_id
from .jobs import publish_status


class RunService(LoggingConfigurable):
    """Create and finish interactive runs; sweep the ones whose kernel went away."""

    db = AnyTrait(help="The Database jobs live in.")
    events = AnyTrait(help="The EventService that publishes status changes.")
    idle_timeout = Float(900.0, config=True, help="Seconds without metrics or heartbeat after which an interactive run is marked lost (the runtime beats every 30 s).")
    sweep_interval = Float(60.0, config=True, help="Seconds between sweeps for lost interactive runs.")

    async def create(self, who: Principal, body: InteractiveRunCreate) -> JobOut:
        """A running interactive job owned by ``who``."""
        return await self.db.run(self._create, who, body, write=True)

    def _create(self, session: Session, who: Principal, body: InteractiveRunCreate) -> JobOut:
        access.check_sharing(who, body.visibility, body.team)
        now = utcnow()
        row = Job(
            id=new_id("job"),
            owner=who.username,
            name=body.name,
            tier=who.tier,
            kind="interactive",
            state="running",
            spec={"config": body.config},
            resources={},
            visibility=body.visibility,
            team=body.team,
            started_at=now,
            heartbeat_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        out = publish_status(self.events, session, row)
        audit.record(session, who, "create", "job", row.id, {"kind": "interactive", "name": body.name})
        return out

    async def finish(self, who: Principal, job_id: str, body: RunFinish) -> JobOut:
        """End an interactive run ``who`` may change."""
        return await self.db.run(self._finish, who, job_id, body, write=True)

    def _finish(self, session: Session, who: Principal, job_id: str, body: RunFinish) -> JobOut:
        row = access.load(session, Job, who, job_id, write=True, kind="job")
        if row.kind != "interactive":
            raise Conflict(f"Only interactive runs are finished by their client; job {job_id} is a {row.kind} job.", {"id": job_id, "kind": row.kind})
        if row.state in TERMINAL_STATES:
            raise Conflict(f"Job {job_id} has already ended ({row.state}).", {"id": job_id, "state": row.state})
        # a run stopped because someone canceled it ended canceled, however its loop exited
        state = "canceled" if row.cancel_requested_at is not None else body.state
        self._end(row, state, body.reason)
        out = publish_status(self.events, session, row)
        audit.record(session, who, "finish", "job", row.id, {"state": state})
        return out

    @staticmethod
    def _end(row: Job, state: str, reason: str | None) -> None:
        row.state = state
        row.exit_reason = reason
        row.finished_at = utcnow()

    # -- the sweep -------------------------------------------------------------------------

    async def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def stop(self) -> None:
        task = getattr(self, "_sweeper", None)
        if task is not None:
            task.cancel()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down; the next sweep retries
                self.log.warning("AI Studio: sweeping interactive runs failed: %s", f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(self.sweep_interval)

    async def sweep(self) -> list[str]:
        """Mark interactive runs silent for ``idle_timeout`` as lost; returns their ids."""
        return await self.db.run(self._sweep, write=True)

    def _sweep(self, session: Session) -> list[str]:
        cutoff = utcnow() - dt.timedelta(seconds=self.idle_timeout)
        stale = (
            select(Job)
            .where(Job.kind == "interactive", Job.state == "running", func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at) < cutoff)
            .limit(500)
            .with_for_update(skip_locked=True)
        )
        lost = []
        for row in session.scalars(stale):
            self._end(row, "lost", f"The run's kernel sent nothing for {self.idle_timeout:.0f} s: it stopped without finishing the run.")
            publish_status(self.events, session, row)
            lost.append(row.id)
        return lost
