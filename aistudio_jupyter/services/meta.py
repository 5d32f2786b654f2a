"""Identity, quotas, usage and health: what ``GET /me`` and ``GET /health`` report."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Dict
from traitlets.config import LoggingConfigurable

from .. import __version__
from ..identity import Principal, quotas_of
from ..schemas.jobs import TERMINAL_STATES
from ..schemas.meta import ComponentHealth, HealthOut, MeOut, Quotas, Usage
from ..store import orm
from ..store.types import utcnow
from .versions import storage_used


class MetaService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    tiers = Dict(help="Tier name → quotas (see AIStudio.tiers).")
    price_per_gpu_hour = AnyTrait(0.0, help="Cost of one GPU-hour, for usage reports.")

    async def me(self, who: Principal) -> MeOut:
        """The caller's identity, tier, quotas and this month's usage."""
        return await self.db.run(self._me, who)

    def _me(self, session: Session, who: Principal) -> MeOut:
        period = utcnow().strftime("%Y-%m")
        # the quota's own count (datasets + uploads in flight): what /me shows is what uploads are refused by
        storage = storage_used(session, who.username)
        gpu_seconds = session.scalar(
            select(func.coalesce(func.sum(orm.UsageRecord.amount), 0.0)).where(
                orm.UsageRecord.owner == who.username, orm.UsageRecord.period == period, orm.UsageRecord.kind == "gpu_seconds"
            )
        )
        active = session.scalar(select(func.count()).select_from(orm.Job).where(orm.Job.owner == who.username, orm.Job.state.not_in(TERMINAL_STATES)))
        # a job's GPU time is recorded when it ends; the dashboard shows the running ones' too
        now = utcnow()
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        running = session.execute(
            select(orm.Job.gpu_ids, orm.Job.started_at).where(orm.Job.owner == who.username, orm.Job.state == "running", orm.Job.started_at.is_not(None))
        ).all()
        gpu_running = sum(len(ids or []) * max(0.0, (now - max(started, month)).total_seconds()) for ids, started in running)
        tier = quotas_of(self.tiers, who)
        return MeOut(
            username=who.username,
            display_name=who.display_name or who.username,
            groups=list(who.groups),
            teams=list(who.teams),
            editor_teams=list(who.editor_teams),
            tier=who.tier if who.tier in self.tiers else "default",
            token_scopes=list(who.scopes) if who.scopes is not None else None,
            quotas=Quotas(**{k: tier[k] for k in Quotas.model_fields}),
            usage=Usage(period=period, storage_bytes=int(storage), gpu_seconds=float(gpu_seconds), cost=round(float(gpu_seconds) / 3600 * float(self.price_per_gpu_hour), 4), active_jobs=int(active),
                        gpu_seconds_running=float(gpu_running), price_per_gpu_hour=float(self.price_per_gpu_hour)),
        )

    async def health(self) -> HealthOut:
        """Probe the parts; degraded rather than failing when one is down."""
        database = ComponentHealth(**await asyncio.get_running_loop().run_in_executor(None, self.db.health))
        return HealthOut(status="ok" if database.ok else "degraded", version=__version__, database=database)
