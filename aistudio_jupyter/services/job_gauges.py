"""Samples the job gauges of ``aistudio_jupyter.observability`` in the background, so a
Prometheus scrape reads the last sample and never waits on the database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..observability import JOB_STATES, set_job_gauges
from ..store import orm

log = logging.getLogger(__name__)


def sample_jobs(session: Session) -> dict[str, Any]:
    """Counts for the job gauges: one grouped query and one over the live jobs' GPU lists."""
    counts = dict.fromkeys(JOB_STATES, 0)
    for state, n in session.execute(select(orm.Job.state, func.count()).group_by(orm.Job.state)):
        counts[state] = n
    gpus = sum(len(ids or []) for ids in session.scalars(select(orm.Job.gpu_ids).where(orm.Job.state.in_(("starting", "running")))))
    return {"states": counts, "gpus": gpus}


class JobGaugeSampler:
    """Refreshes the job gauges every ``interval`` seconds."""

    def __init__(self, db, interval: float = 15.0):
        self.db, self.interval = db, interval
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def sample(self) -> None:
        set_job_gauges(await self.db.run(sample_jobs))

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:  # an outage: the gauges keep their last values
                log.debug("AI Studio: job gauges not sampled (%s)", type(exc).__name__)
            await asyncio.sleep(self.interval)
