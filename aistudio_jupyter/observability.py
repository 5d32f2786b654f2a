"""Prometheus metrics on Jupyter's own ``/metrics`` (DESIGN §12), all named ``aistudio_…``.

They live in prometheus_client's default registry, which jupyter_server's ``/metrics`` serves
(behind its auth unless ``authenticate_prometheus`` is off). Label values are bounded: handler
class names, HTTP methods, status classes and job states, never ids or user names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

API_REQUEST_SECONDS = Histogram(
    "aistudio_api_request_duration_seconds",
    "Time to answer an AI Studio API request.",
    ["handler", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
UPLOAD_BYTES = Counter("aistudio_upload_bytes", "Bytes received by uploads (tus PATCH bodies and multipart files).")
JOBS = Gauge("aistudio_jobs", "Jobs by state, as last sampled from the database.", ["state"])
QUEUE_DEPTH = Gauge("aistudio_job_queue_depth", "Jobs waiting to start (queued), as last sampled.")
GPUS_IN_USE = Gauge("aistudio_gpus_in_use", "GPUs held by starting or running jobs, as last sampled.")
EVENTS_SENT = Counter("aistudio_events_sent", "Events written to WebSocket subscribers.")
# per deployment: labelled only for deployments that exist and the caller can read, so a scan of
# made-up ids cannot grow the series without bound
PREDICT_REQUESTS = Counter("aistudio_deployment_requests", "Predict requests per deployment and status class.", ["deployment", "code"])
PREDICT_ERRORS = Counter("aistudio_deployment_errors", "Predict requests that failed, per deployment and status class.", ["deployment", "code"])
PREDICT_SECONDS = Histogram(
    "aistudio_deployment_request_seconds",
    "Predict latency per deployment, validation, queueing and the replica's answer included.",
    ["deployment"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

JOB_STATES = ("queued", "starting", "running", "succeeded", "failed", "canceled", "lost")


def observe_request(handler: str, method: str, status: int, seconds: float) -> None:
    API_REQUEST_SECONDS.labels(handler, method, f"{status // 100}xx").observe(seconds)


def set_job_gauges(sample: dict[str, Any]) -> None:
    for state, n in sample["states"].items():
        JOBS.labels(state).set(n)
    QUEUE_DEPTH.set(sample["states"].get("queued", 0))
    GPUS_IN_USE.set(sample["gpus"])


def observe_predict(deployment_id: str, status: int, seconds: float) -> None:
    code = f"{status // 100}xx"
    PREDICT_REQUESTS.labels(deployment_id, code).inc()
    if status >= 400:
        PREDICT_ERRORS.labels(deployment_id, code).inc()
    PREDICT_SECONDS.labels(deployment_id).observe(seconds)
