"""Domain logic and ownership rules. No tornado here: the same calls back the REST API, the
Python client (through the API) and, later, the agents' tools and the hub service."""

from __future__ import annotations

import dataclasses

from ..store.session import Database
from .agents import AgentService
from .compute import ComputeService
from .datasets import DatasetService
from .deployments import DeploymentService
from .jobs import JobService
from .meta import MetaService
from .models import ModelService
from .rows import RowService
from .tokens import TokenService
from .uploads import UploadService
from .versions import VersionService


@dataclasses.dataclass
class Services:
    """Every service of one server process, built once by the app."""

    db: Database
    datasets: DatasetService
    models: ModelService
    jobs: JobService
    agents: AgentService
    deployments: DeploymentService
    tokens: TokenService
    meta: MetaService
    versions: VersionService
    uploads: UploadService
    rows: RowService
    #: compute estimates (and measured runs in a child process)
    compute: ComputeService
    #: the Storage (``storage.base``) holding every byte; None when built without one
    storage: object = None

    @classmethod
    def build(cls, db: Database, *, parent=None, tiers: dict, price_per_gpu_hour: float, storage=None) -> Services:
        kw = {"parent": parent, "db": db}
        versions = VersionService(storage=storage, tiers=tiers, **kw)
        return cls(
            db=db,
            datasets=DatasetService(**kw),
            models=ModelService(**kw),
            jobs=JobService(**kw),
            agents=AgentService(**kw),
            deployments=DeploymentService(**kw),
            tokens=TokenService(**kw),
            meta=MetaService(tiers=tiers, price_per_gpu_hour=price_per_gpu_hour, **kw),
            versions=versions,
            uploads=UploadService(storage=storage, versions=versions, tiers=tiers, **kw),
            rows=RowService(storage=storage, versions=versions, **kw),
            compute=ComputeService(price_per_gpu_hour=price_per_gpu_hour, **kw),
            storage=storage,
        )

    def _with_lifecycle(self, hook: str) -> list:
        found = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name not in ("db", "storage") and callable(getattr(value, hook, None)):
                found.append(value)
        return found

    async def start(self) -> None:
        """Start every service's background work (supervisors, listeners, sweeps), on the
        server's running loop, in field order. A service opts in with ``async def start()``."""
        for service in self._with_lifecycle("start"):
            await service.start()

    async def stop(self) -> None:
        """Stop background work in reverse order; each service's ``async def stop()``."""
        for service in reversed(self._with_lifecycle("stop")):
            try:
                await service.stop()
            except Exception:  # one failing stop must not keep the others running
                service.log.warning("stopping %s failed", type(service).__name__, exc_info=True)

    def close(self) -> None:
        self.uploads.close()
        self.db.close()
