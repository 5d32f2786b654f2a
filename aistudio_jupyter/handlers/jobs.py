"""`/jobs` routes: submit script and notebook jobs, read them, cancel them, read their logs."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..schemas.common import ErrorEnvelope
from ..schemas.jobs import JobCreate, JobOut, LogOut, LogQuery
from .base import AIStudioHandler, Operation
from .resources import CollectionHandler, ReadOnlyItemHandler


class JobMixin:
    service_name = "jobs"
    kind = "job"
    out_model = JobOut
    create_model = JobCreate


class JobsHandler(JobMixin, CollectionHandler):
    """List jobs (``status`` filters by state); submit a script/module or notebook job."""

    @classmethod
    def openapi_operations(cls) -> dict[str, Operation]:
        ops = super().openapi_operations()
        ops["post"] = Operation("Queue a script, module or notebook job", JobOut, body=JobCreate, status=201, tag="job")
        return ops


class JobHandler(JobMixin, ReadOnlyItemHandler):
    """Read one job."""


class JobCancelHandler(AIStudioHandler):
    """Cancel a job: SIGTERM to its process group, SIGKILL after the grace period."""

    operations = {"post": Operation("Cancel a job (queued and interactive ones at once; a running process is stopped within the grace period)", JobOut, status=202, tag="job")}
    openapi_responses = {"post": {409: ("The job has already ended", ErrorEnvelope)}}

    @web.authenticated
    @authorized
    async def post(self, id: str) -> None:
        self.reply(await self.services.jobs.cancel(self.principal, id), status=202)


class JobLogsHandler(AIStudioHandler):
    """A byte range of a job's stdout or stderr log."""

    operations = {"get": Operation("Read a job's stdout or stderr from a byte offset", LogOut, query=LogQuery, tag="job")}

    @web.authenticated
    @authorized
    async def get(self, id: str) -> None:
        query = self.parse_query(LogQuery)
        self.reply(await self.services.jobs.logs(self.principal, id, query))


default_handlers = [
    ("/jobs", JobsHandler),
    ("/jobs/{id}", JobHandler),
    ("/jobs/{id}/cancel", JobCancelHandler),
    ("/jobs/{id}/logs", JobLogsHandler),
]
