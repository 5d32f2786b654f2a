"""Domain logic and ownership rules. No tornado here: the same calls back the REST API, the
Python client (through the API) and, later, the agents' tools and the hub service."""

from __future__ import annotations

import dataclasses

from ..serving.supervisor import DeploymentSupervisor
from ..store.session import Database
from .agents import AgentService
from .compute import ComputeService
from .datasets import DatasetService
from .deployments import DeploymentService
from .events import EventService
from .gc import GarbageCollector
from .job_gauges import JobGaugeSampler
from .jobs import JobService
from .meta import MetaService
from .metrics import MetricService
from .model_versions import ModelVersionService
from .models import ModelService
from .profiles import ProfileService
from .rate_limits import RateLimiter
from .rows import RowService
from .runs import RunService
from .scan import ScanService
from .supervisor import JobSupervisor
from .tokens import TokenService
from .training import TrainingService
from .uploads import UploadService
from .validation import ValidationService
from .versions import VersionService


@dataclasses.dataclass
class Services:
    """Every service of one server process, built once by the app."""

    db: Database
    #: first, so it starts before and stops after the services that publish
    events: EventService
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
    metrics: MetricService
    runs: RunService
    scans: ScanService
    profiles: ProfileService
    gc: GarbageCollector
    model_versions: ModelVersionService
    training: TrainingService
    #: claims, launches and watches jobs; after ``events`` so it stops before it
    supervisor: JobSupervisor
    #: runs ``validate`` jobs in this process; after ``jobs`` and ``events``, which it uses
    validation: ValidationService
    #: compute estimates (and measured runs in a child process)
    compute: ComputeService
    #: runs deployments' replicas and routes predictions; after ``events`` so it stops before it
    serving: DeploymentSupervisor = None
    #: the Storage (``storage.base``) holding every byte; None when built without one
    storage: object = None
    #: samples the job gauges on /metrics; started last, stopped first
    job_gauges: object = None
    #: requests per minute per user (the tier's requests_per_minute)
    rate_limits: object = None

    @classmethod
    def build(cls, db: Database, *, parent=None, tiers: dict, price_per_gpu_hour: float, storage=None) -> Services:
        kw = {"parent": parent, "db": db}
        # built first: other services receive it as their trait ``events``
        events = EventService(**kw)
        versions = VersionService(storage=storage, events=events, tiers=tiers, **kw)
        scans = ScanService(storage=storage, versions=versions, **kw)
        tokens = TokenService(**kw)
        jobs = JobService(events=events, tiers=tiers, **kw)
        jobs.supervisor = JobSupervisor(events=events, tokens=tokens, jobs=jobs, tiers=tiers, **kw)
        models = ModelService(events=events, **kw)
        serving = DeploymentSupervisor(events=events, storage=storage, **kw)
        return cls(
            db=db,
            events=events,
            datasets=DatasetService(events=events, **kw),
            models=models,
            jobs=jobs,
            agents=AgentService(**kw),
            deployments=DeploymentService(events=events, supervisor=serving, **kw),
            tokens=tokens,
            meta=MetaService(tiers=tiers, price_per_gpu_hour=price_per_gpu_hour, **kw),
            versions=versions,
            uploads=UploadService(storage=storage, versions=versions, events=events, tiers=tiers, **kw),
            metrics=MetricService(events=events, **kw),
            runs=RunService(events=events, **kw),
            rows=RowService(scans=scans, **kw),
            scans=scans,
            profiles=ProfileService(scans=scans, **kw),
            gc=GarbageCollector(storage=storage, **kw),
            model_versions=ModelVersionService(storage=storage, versions=versions, events=events, **kw),
            training=TrainingService(storage=storage, versions=versions, jobs=jobs, models=models, **kw),
            supervisor=jobs.supervisor,
            validation=ValidationService(scans=scans, jobs=jobs, events=events, **kw),
            compute=ComputeService(price_per_gpu_hour=price_per_gpu_hour, **kw),
            serving=serving,
            storage=storage,
            job_gauges=JobGaugeSampler(db),
            rate_limits=RateLimiter(tiers=tiers, parent=parent),
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
