"""Metric points: what a run sends, and the downsampled series a chart reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from .common import StrictModel

#: points per POST; the runtime sends at most 1,000 at a time
MAX_BATCH = 10_000
#: series per GET; each series is downsampled to ``max_points`` on its own
MAX_KEYS = 100
MAX_POINTS = 10_000
#: below this a series cannot keep each bucket's first, last, minimum and maximum
MIN_POINTS = 8
MAX_STEP = 2**62

#: ``train/loss``, ``eval_accuracy``, ``lr-Adam``: no commas (the GET's ``keys`` list), no control characters
MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^,\x00-\x1f\x7f]+$")]


class MetricPointIn(StrictModel):
    key: MetricKey
    step: int = Field(ge=0, le=MAX_STEP)
    value: float
    wall_time: float | None = Field(None, ge=0, le=1e11, description="Seconds since the epoch when it was measured; default: when the server received it.")


class MetricsIn(StrictModel):
    """A batch of points; an empty batch is a heartbeat that asks whether the job was canceled."""

    points: list[MetricPointIn] = Field(max_length=MAX_BATCH)


class MetricsAccepted(BaseModel):
    accepted: int = Field(description="Points stored.")
    canceled: bool = Field(description="Someone asked for the job to stop: the run should end.")


class MetricsQuery(StrictModel):
    # bounded well below tornado's 64 KiB request line even when every character is percent-encoded UTF-8
    keys: str | None = Field(None, min_length=1, max_length=2000, description=f"Comma-separated keys (at most {MAX_KEYS}); default every key of the job.")
    since_step: int = Field(0, ge=0, le=MAX_STEP, description="Only points at this step or later.")
    max_points: int = Field(1000, ge=MIN_POINTS, le=MAX_POINTS, description="Most points per series; longer series are downsampled keeping each bucket's first, last, minimum and maximum.")


class MetricPointOut(BaseModel):
    step: int
    value: float
    wall_time: float


class MetricsOut(BaseModel):
    series: dict[str, list[MetricPointOut]]
