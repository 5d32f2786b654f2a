"""TrainingMonitor: live curves, progress, status, logs and a Cancel button for one job.

The kernel loads the first state (the job, its downsampled history, the log's tail and each
topic's last event seq, read first so nothing falls between the two); from then on the
browser follows ``job:<id>`` on the events WebSocket and cancels over REST by itself, so the
monitor keeps moving, and Cancel works, while this same kernel is busy in a training loop.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..runtime.client import APIError, Client
from .base import StudioWidget

#: bytes of each log stream shown when the monitor opens
LOG_TAIL_BYTES = 16 * 1024
TERMINAL = ("succeeded", "failed", "canceled", "lost")


def _job_id_and_client(job_or_run: Any) -> tuple[str, Client | None]:
    """The id of a TrainJob/Job record, a job dict, an id, or an ``ais.track`` Run, and the
    client that object came with (if any)."""
    from ..runtime.tracking import Run

    if isinstance(job_or_run, Run):
        return job_or_run.id, job_or_run._client
    if isinstance(job_or_run, dict):
        if "id" not in job_or_run:
            raise ValueError("monitor() needs a job: this record has no id.")
        return job_or_run["id"], getattr(job_or_run, "_client_ref", None)
    if isinstance(job_or_run, str) and job_or_run:
        return job_or_run, None
    raise TypeError(f"monitor() takes a job (TrainJob, job record or id) or an ais.track run, not {type(job_or_run).__name__}.")


class TrainingMonitor(StudioWidget):
    """A job's live training curves, progress with ETA, status, logs, GPU use and Cancel."""

    _module = "monitor.js"

    job_id = traitlets.Unicode(help="The job watched.").tag(sync=True)
    job = traitlets.Dict(help="The job's record as last loaded.").tag(sync=True)
    series = traitlets.Dict(help="Metric key → [{step, value, wall_time}], downsampled to max_points.").tag(sync=True)
    log_text = traitlets.Dict(help="Stream → the log's tail text.").tag(sync=True)
    log_offsets = traitlets.Dict(help="Stream → the byte offset the tail ends at (live chunks continue from it).").tag(sync=True)
    revision = traitlets.Int(0, help="Bumped by every load, so the browser takes the new state over its own.").tag(sync=True)
    since = traitlets.Dict(help="Topic → the last event seq already reflected in this state.").tag(sync=True)
    max_points = traitlets.Int(1000, help="Points per series loaded (and kept live in the browser).").tag(sync=True)
    x_key = traitlets.Unicode("step", help="The charts' x axis: step, epoch or time.").tag(sync=True)
    smoothing = traitlets.Float(0.6, min=0.0, max=0.99, help="EMA smoothing of the curves, 0 for none.").tag(sync=True)
    log_y = traitlets.Bool(False, help="Logarithmic y axes.").tag(sync=True)

    def __init__(self, job_or_run: Any, *, client: Client | None = None, max_points: int = 1000, **traits: Any) -> None:
        job_id, own_client = _job_id_and_client(job_or_run)
        super().__init__(client=client or own_client, job_id=job_id, max_points=max_points, **traits)
        self.refresh()

    @property
    def topic(self) -> str:
        return f"job:{self.job_id}"

    @property
    def state(self) -> str | None:
        """The job's state as last loaded."""
        return self.job.get("state")

    def refresh(self) -> None:
        """Load the job, its history and log tail again (the browser resumes events after them)."""
        self._guard(self._load)

    def _load(self) -> None:
        # the heads first: events after them are exactly those the loads below may not include
        since = self._heads([self.topic])
        job = self.client.request("GET", f"/jobs/{self.job_id}")
        series = self.client.request("GET", f"/jobs/{self.job_id}/metrics", params={"max_points": self.max_points})["series"]
        try:
            text, offsets = self._log_tail()
        except APIError:
            text, offsets = {}, {}  # the curves are worth showing without the log
        with self.hold_sync():
            self.job, self.series = job, series
            self.log_text, self.log_offsets = text, offsets
            self.since = since
            self.revision += 1

    def _log_tail(self) -> tuple[dict[str, str], dict[str, int]]:
        text: dict[str, str] = {}
        offsets: dict[str, int] = {}
        for stream in ("stdout", "stderr"):
            path = f"/jobs/{self.job_id}/logs"
            size = self.client.request("GET", path, params={"stream": stream, "limit": 1})["size"]
            page = self.client.request("GET", path, params={"stream": stream, "offset": max(0, size - LOG_TAIL_BYTES), "limit": LOG_TAIL_BYTES})
            body = page["text"]
            if page["offset"] > 0:  # started mid-line: show whole lines only
                body = body.split("\n", 1)[1] if "\n" in body else ""
            text[stream], offsets[stream] = body, page["next_offset"]
        return text, offsets

    def cancel(self) -> dict | None:
        """Ask the job to stop; returns its record (None, with ``error`` set, when refused)."""
        job = self._guard(self.client.request, "POST", f"/jobs/{self.job_id}/cancel")
        if job is not None:
            self.job = job
        return job


def monitor(job_or_run: Any, **options: Any) -> TrainingMonitor:
    """``ais.monitor(job)``: a live TrainingMonitor of a job or an ``ais.track`` run."""
    return TrainingMonitor(job_or_run, **options)
