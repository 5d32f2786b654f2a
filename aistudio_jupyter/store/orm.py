"""SQLAlchemy 2 models for every resource of DESIGN §3.

Every owned resource carries id, owner, visibility, team and timestamps (``OwnedMixin``), and
the indexes its list query walks: keyset pagination orders by (created_at, id), and each way
of seeing a row (own, public, a team's; see ``services.access.readable_branches``) has an
index that yields its rows already in that order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from .types import JSONType, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSONType, list[Any]: JSONType}


class OwnedMixin:
    """Columns shared by every row a user owns and shares."""

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    team: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @declared_attr.directive
    def __table_args__(cls):
        t = cls.__tablename__
        return (
            Index(f"ix_{t}_created", "created_at", "id"),
            Index(f"ix_{t}_owner_created", "owner", "created_at", "id"),
            Index(f"ix_{t}_visibility_created", "visibility", "created_at", "id"),
            Index(f"ix_{t}_visibility_team_created", "visibility", "team", "created_at", "id"),
            *getattr(cls, "__extra_args__", ()),
        )


class Dataset(OwnedMixin, Base):
    __tablename__ = "datasets"
    __extra_args__ = (UniqueConstraint("owner", "name"), Index("ix_datasets_name", "name"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"), Index("ix_dataset_versions_sha256", "sha256"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(32))
    schema_: Mapped[dict[str, Any]] = mapped_column("schema", default=dict)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DatasetFile(Base):
    __tablename__ = "dataset_files"
    __table_args__ = (UniqueConstraint("version_id", "path"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    #: the user's file name: metadata only, never part of a filesystem path or object key
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")


class Upload(Base):
    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_owner_created", "owner", "created_at"), Index("ix_uploads_expires", "expires_at"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="active")
    length: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    target_dataset_id: Mapped[str | None] = mapped_column(String(40))
    result_version_id: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    #: the storage layer's resumable-upload state (``Storage.open_append``); None once discarded or published
    storage_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column()


class ValidationReport(OwnedMixin, Base):
    __tablename__ = "validation_reports"
    __extra_args__ = (Index("ix_validation_reports_version", "version_id"),)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    rules: Mapped[list[Any]] = mapped_column(default=list)
    findings: Mapped[list[Any]] = mapped_column(default=list)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    #: rows checked, columns inferred, rule pass/fail counts: what a report's header shows
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)


class Job(OwnedMixin, Base):
    __tablename__ = "jobs"
    __extra_args__ = (
        Index("ix_jobs_state_priority", "state", "priority", "created_at"),
        Index("ix_jobs_owner_state", "owner", "state"),
    )
    name: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    backend: Mapped[str] = mapped_column(String(16), default="local")
    pid: Mapped[int | None] = mapped_column(Integer)
    process_start_time: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    exit_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    #: 0..1 where the job reports it (validate jobs, trainers with a known step count)
    progress: Mapped[float | None] = mapped_column(Float)
    #: what a finished job produced (a model version id, a report id, ...)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: GPU indexes on ``host`` held exclusively while the job is starting or running
    gpu_ids: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    host: Mapped[str | None] = mapped_column(String(255))
    #: the supervisor that owns the job; another may take over only once the lease expires,
    #: and every write it makes carries ``fencing_token`` so a stale owner's writes lose
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column()
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column()
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column()
    #: the owner's tier when submitted: the scheduler's concurrency limits come from it
    tier: Mapped[str | None] = mapped_column(String(64))
    #: where the job's logs and exit record live on ``host`` (derived from the id, never user input)
    job_dir: Mapped[str | None] = mapped_column(String(1024))


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_job_key_step", "job_id", "key", "step"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)


class EventTopic(Base):
    """Per-topic counter: an event's ``seq`` is taken here in the event's own transaction, so
    seqs commit in order and a replay from the database never skips one (DESIGN §7)."""

    __tablename__ = "event_topics"
    topic: Mapped[str] = mapped_column(String(160), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("topic", "seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(160))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class DatasetProfile(Base):
    """A version's profile, computed once: versions are immutable."""

    __tablename__ = "dataset_profiles"
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Model(OwnedMixin, Base):
    __tablename__ = "models"
    __extra_args__ = (UniqueConstraint("owner", "name"), Index("ix_models_name", "name"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    task: Mapped[str | None] = mapped_column(String(32))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"), Index("ix_model_versions_stage", "model_id", "stage"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), default="none")
    artifact_key: Mapped[str | None] = mapped_column(String(512))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    job_id: Mapped[str | None] = mapped_column(String(40), index=True)
    dataset_version_id: Mapped[str | None] = mapped_column(String(40), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Agent(OwnedMixin, Base):
    __tablename__ = "agents"
    __extra_args__ = (UniqueConstraint("owner", "name"), Index("ix_agents_name", "name"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    tools: Mapped[list[Any]] = mapped_column(default=list)
    planner: Mapped[str] = mapped_column(String(32), default="react")
    llm: Mapped[str | None] = mapped_column(String(128))
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AgentRun(OwnedMixin, Base):
    __tablename__ = "agent_runs"
    __extra_args__ = (Index("ix_agent_runs_agent", "agent_id", "created_at"),)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)


class AgentStep(Base):
    __tablename__ = "agent_steps"
    __table_args__ = (UniqueConstraint("run_id", "index"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Deployment(OwnedMixin, Base):
    __tablename__ = "deployments"
    __extra_args__ = (UniqueConstraint("owner", "name"), Index("ix_deployments_state", "state"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    model_version: Mapped[int | None] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    batching: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    status_message: Mapped[str | None] = mapped_column(Text)
    #: what the owner asked for ("running" | "stopped"); ``state`` is what is
    desired_state: Mapped[str] = mapped_column(String(16), default="running", server_default="running")
    #: the replicas as the serving supervisor last saw them
    replica_status: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    #: the one server running the replicas; another takes over only once the lease expires
    host: Mapped[str | None] = mapped_column(String(255))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_actor_created", "actor", "created_at"), Index("ix_audit_events_resource", "resource_type", "resource_id"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_owner_period", "owner", "period", "kind"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(255))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[float] = mapped_column(Float)
    job_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"), Index("ix_api_tokens_owner", "owner"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    #: sha256 of the token: tokens are 256 random bits, so a fast hash is enough
    token_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    job_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
