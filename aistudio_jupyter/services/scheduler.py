"""The queue is the ``jobs`` table: which queued jobs this host starts next, and on which GPUs.

Order: tier priority (``jobs.priority``, from the owner's tier at submission), then age. Limits:
per user (their tier's ``concurrent_jobs``), per tier (an optional ``tier_concurrent_jobs``
across all its users), this host's GPUs (exclusive: the GPUs held are those of starting and
running jobs on this host) and CPU slots. A job that does not fit now is passed over for a
smaller one behind it rather than blocking the queue.

Several servers may share one database (and one host). A claim runs in one transaction that
first takes a lock every claimer waits on — a PostgreSQL advisory transaction lock, SQLite's
``BEGIN IMMEDIATE`` — because the GPUs free on a host depend on every claimer's rows, which
row locks on the queued jobs alone (``FOR UPDATE SKIP LOCKED``, taken too) do not cover.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ..schemas.jobs import LAUNCHED_KINDS
from ..store import orm
from ..store.types import utcnow

#: key of the advisory lock that serialises claims across servers on PostgreSQL
SCHEDULER_LOCK = 0x41495353
ACTIVE_STATES = ("starting", "running")
#: queued rows looked at per claim; more wait for the next tick
CLAIM_WINDOW = 200


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What this host offers and who is claiming."""

    host: str
    owner_id: str
    gpus: tuple[int, ...]
    cpu_slots: float
    lease_seconds: float


@dataclasses.dataclass(frozen=True)
class Claim:
    """A job this supervisor now owns, to be launched."""

    id: str
    owner: str
    kind: str
    spec: dict
    resources: dict
    gpu_ids: tuple[int, ...]
    fencing_token: int


def lock_claims(session: Session) -> None:
    """Wait for every other claimer on this database (held until the transaction ends)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEDULER_LOCK})
    # SQLite: the caller's write transaction began IMMEDIATE, which already excludes writers


def has_queued(session: Session) -> bool:
    return session.scalar(select(orm.Job.id).where(orm.Job.state == "queued", orm.Job.kind.in_(LAUNCHED_KINDS)).limit(1)) is not None


def claim(
    session: Session,
    capacity: Capacity,
    tiers: Mapping[str, Mapping],
    job_dir: Callable[[str], str],
    publish: Callable[[Session, orm.Job], object],
) -> list[Claim]:
    """Move the queued jobs that fit to ``starting`` under this supervisor's lease."""
    lock_claims(session)
    active = session.execute(
        select(orm.Job.owner, orm.Job.tier, orm.Job.host, orm.Job.gpu_ids, orm.Job.resources).where(orm.Job.state.in_(ACTIVE_STATES), orm.Job.kind.in_(LAUNCHED_KINDS))
    ).all()
    per_user = Counter(a.owner for a in active)
    per_tier = Counter(a.tier or "default" for a in active)
    held = {int(g) for a in active if a.host == capacity.host for g in (a.gpu_ids or ())}
    free_gpus = [g for g in capacity.gpus if g not in held]
    cpus_used = sum(float((a.resources or {}).get("cpus", 1.0)) for a in active if a.host == capacity.host)
    queued = session.scalars(
        select(orm.Job)
        .where(orm.Job.state == "queued", orm.Job.kind.in_(LAUNCHED_KINDS))
        .order_by(orm.Job.priority.desc(), orm.Job.created_at, orm.Job.id)
        .limit(CLAIM_WINDOW)
        .with_for_update(skip_locked=True)
    ).all()
    now = utcnow()
    claims = []
    for row in queued:
        quotas = tiers.get(row.tier or "default") or tiers["default"]
        tier_name = row.tier or "default"
        if per_user[row.owner] >= int(quotas.get("concurrent_jobs", 1)):
            continue
        tier_limit = quotas.get("tier_concurrent_jobs")
        if tier_limit is not None and per_tier[tier_name] >= int(tier_limit):
            continue
        gpus = int((row.resources or {}).get("gpus", 0))
        cpus = float((row.resources or {}).get("cpus", 1.0))
        if gpus > len(free_gpus) or cpus_used + cpus > capacity.cpu_slots + 1e-9:
            continue
        assigned, free_gpus = free_gpus[:gpus], free_gpus[gpus:]
        cpus_used += cpus
        per_user[row.owner] += 1
        per_tier[tier_name] += 1
        row.state = "starting"
        row.host = capacity.host
        row.gpu_ids = assigned
        row.lease_owner = capacity.owner_id
        row.lease_expires_at = now + dt.timedelta(seconds=capacity.lease_seconds)
        row.heartbeat_at = now
        row.fencing_token = (row.fencing_token or 0) + 1
        row.attempts = (row.attempts or 0) + 1
        row.job_dir = job_dir(row.id)
        row.updated_at = now
        publish(session, row)
        claims.append(Claim(row.id, row.owner, row.kind, dict(row.spec or {}), dict(row.resources or {}), tuple(assigned), row.fencing_token))
    return claims
