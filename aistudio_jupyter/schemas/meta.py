"""Identity, quotas and health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Quotas(BaseModel):
    storage_bytes: int
    concurrent_jobs: int
    gpus_per_job: int
    gpu_hours_per_month: float
    requests_per_minute: int
    upload_bytes: int


class Usage(BaseModel):
    period: str = Field(description="Calendar month, YYYY-MM (UTC).")
    storage_bytes: int = Field(description="What the storage quota counts: every version of your datasets plus the declared length of your uploads in progress.")
    gpu_seconds: float
    cost: float
    active_jobs: int
    gpu_seconds_running: float = Field(0.0, description="GPU time of jobs still running (GPUs held × time since they started), not yet in gpu_seconds.")
    price_per_gpu_hour: float = Field(0.0, description="What one GPU-hour costs; the month's cost budget is gpu_hours_per_month × this.")


class MeOut(BaseModel):
    username: str
    display_name: str
    groups: list[str]
    teams: list[str]
    editor_teams: list[str]
    tier: str
    token_scopes: list[str] | None = Field(None, description="Set when the request used a scoped AI Studio token.")
    quotas: Quotas
    usage: Usage


class ComponentHealth(BaseModel):
    ok: bool
    dialect: str | None = None
    latency_ms: float | None = None
    error: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: ComponentHealth
