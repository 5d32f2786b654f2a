"""`/jobs` routes (read-only until the scheduler lands)."""

from __future__ import annotations

from ..schemas.jobs import JobOut
from .resources import ReadOnlyCollectionHandler, ReadOnlyItemHandler


class JobMixin:
    service_name = "jobs"
    kind = "job"
    out_model = JobOut


class JobsHandler(JobMixin, ReadOnlyCollectionHandler):
    """List jobs; ``status`` filters by state."""


class JobHandler(JobMixin, ReadOnlyItemHandler):
    """Read one job."""


default_handlers = [
    ("/jobs", JobsHandler),
    ("/jobs/{id}", JobHandler),
]
