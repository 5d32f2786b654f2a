"""Domain logic and ownership rules. No tornado here: the same calls back the REST API, the
Python client (through the API) and, later, the agents' tools and the hub service."""

from __future__ import annotations

import dataclasses

from ..store.session import Database
from .agents import AgentService
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
            storage=storage,
        )

    def close(self) -> None:
        self.uploads.close()
        self.db.close()
