"""The built-in trainer's server side: ``POST /models/train`` and train jobs' checkpoints.

Submitting checks everything that can be checked without running anything: the dataset
version is readable and tabular, the columns exist in its stored schema, the model spec's
shapes line up. Only then is the model created (or reused, by name) and a ``train`` job
queued; the job process (``runtime/trainer``) reads the resolved spec.

A checkpoint is one safetensors file per job (model and optimizer tensors, the step and RNG
state in its metadata), written only by the job's own process with its job token and read
by anyone who can read the job, e.g. a later job resuming from it.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Int
from traitlets.config import LoggingConfigurable

from ..errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from ..identity import Principal
from ..schemas.jobs import JobOut, JobSubmit
from ..schemas.model_versions import CheckpointOut
from ..schemas.models import ModelCreate
from ..schemas.training import TrainJobSpec, TrainSpec
from ..store import orm
from . import access
from .ids import new_id
from .model_versions import BlobReceiver
from .versions import Download

CHECKPOINT_MEDIA_TYPE = "application/vnd.safetensors"
TABULAR = ("csv", "tsv", "parquet", "json", "jsonl", "arrow")


def checkpoint_key(job_id: str) -> str:
    """The latest checkpoint of a job; derived from its (server-made) id alone."""
    return f"checkpoints/{job_id}/latest"


def check_model_source(spec: TrainSpec, n_features: int) -> dict | None:
    """The layer-list spec completed with ``input_shape`` (the feature count when left out),
    or a 422 naming the field or the layer whose shapes do not line up."""
    if spec.model.spec is None:
        return None  # an entry point is imported only inside the job process
    from .. import modelspec

    completed = {"input_shape": [n_features], **spec.model.spec}
    outputs = 1 if spec.task == "regression" else 2  # the class count is known once the data is read
    try:
        parsed = modelspec.ModelSpec.model_validate(completed)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ["model", "spec", *first["loc"]]
        details: dict = {"field": "model.spec", "loc": loc}
        if len(first["loc"]) > 1 and first["loc"][0] == "layers" and isinstance(first["loc"][1], int):
            details["layer"] = first["loc"][1]
        raise InvalidInput(f"{'.'.join(map(str, loc))}: {first['msg']}", details) from None
    if parsed.input_dtype == "float" and parsed.input_shape != [n_features]:
        raise InvalidInput(f"model.spec.input_shape is {parsed.input_shape} but there are {n_features} feature columns.", {"field": "model.spec.input_shape"})
    try:
        modelspec.infer_shapes(parsed, outputs=outputs)
    except modelspec.SpecError as exc:
        details = {"field": "model.spec"}
        if exc.index >= 0:
            details["layer"] = exc.index
        raise InvalidInput(f"model.spec: {exc.message}", details) from None
    return completed


class TrainingService(LoggingConfigurable):
    """Queue train jobs; store and serve their checkpoints."""

    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage holding checkpoints.")
    jobs = AnyTrait(help="The JobService that queues the train jobs.")
    models = AnyTrait(help="The ModelService (a train request may create the model).")
    versions = AnyTrait(help="The VersionService (dataset versions and their ranged reader).")
    max_checkpoint_bytes = Int(32 * 1024**3, config=True, help="Largest checkpoint a train job may store.")

    # -- submitting ----------------------------------------------------------------------------

    async def train(self, who: Principal, spec: TrainSpec) -> JobOut:
        """Check ``spec`` against the dataset, create or reuse the model, queue the job."""
        plan = await self.db.run(self._plan, who, spec)
        completed = check_model_source(spec, len(plan.features))
        model_id = await self.db.run(self._model_for, who, spec, write=True)
        model = plan.model.model_copy(update={"spec": completed}) if completed else plan.model
        plan = plan.model_copy(update={"model_id": model_id, "model": model})
        name = spec.name or f"train {spec.model_name}"
        return await self.jobs.submit(who, JobSubmit(name=name, kind="train", spec=plan.model_dump(mode="json"), resources=spec.resources))

    def _plan(self, session: Session, who: Principal, spec: TrainSpec) -> TrainJobSpec:
        version = self.versions._load(session, who, spec.dataset, str(spec.dataset_version) if spec.dataset_version else "latest")
        if version.format not in TABULAR:
            raise InvalidInput(f"Version {version.version} of the dataset is a {version.format} file, not a table.", {"field": "dataset"})
        columns = [c["name"] for c in (version.schema_ or {}).get("columns", [])]
        for field, names in (("target", [spec.target]), ("features", spec.features or [])):
            missing = [n for n in names if n not in columns]
            if missing:
                raise InvalidInput(f"{field}: the dataset has no column {missing[0]!r}.", {"field": field, "column": missing[0], "columns": columns[:200]})
        features = spec.features or [c for c in columns if c != spec.target]
        if not features:
            raise InvalidInput("features: the dataset has no column besides the target.", {"field": "features"})
        if spec.resume_from_job:
            job = access.load(session, orm.Job, who, spec.resume_from_job, kind="job")
            if job.kind != "train":
                raise InvalidInput("resume_from_job must be a train job.", {"field": "resume_from_job"})
        values = spec.model_dump() | {
            "dataset_version": version.version,
            "dataset_version_id": version.id,
            "features": features,
            "model_id": "",
        }
        return TrainJobSpec.model_validate(values)

    def _model_for(self, session: Session, who: Principal, spec: TrainSpec) -> str:
        found = session.scalar(select(orm.Model.id).where(orm.Model.owner == who.username, orm.Model.name == spec.model_name))
        if found:
            return found
        return self.models._create(session, who, ModelCreate(name=spec.model_name, task=spec.task)).id

    # -- checkpoints ---------------------------------------------------------------------------

    async def open_checkpoint(self, who: Principal, job_id: str, declared: int | None) -> Checkpoint:
        """Start receiving a checkpoint of ``job_id``; only that job's own token may."""
        if declared is not None and declared > self.max_checkpoint_bytes:
            raise PayloadTooLarge(f"Checkpoints are limited to {self.max_checkpoint_bytes} bytes.", {"limit": self.max_checkpoint_bytes})
        await self.db.run(self._check_own_job, who, job_id)
        receiver = await BlobReceiver.open(self.storage, f"checkpoints/{job_id}/incoming-{new_id('ck')}", self.max_checkpoint_bytes, "checkpoint")
        return Checkpoint(self, job_id, receiver)

    @staticmethod
    def _check_own_job(session: Session, who: Principal, job_id: str) -> None:
        job = access.load(session, orm.Job, who, job_id, kind="job")
        if who.job_id != job.id:
            raise Forbidden("Only the job's own process writes its checkpoints.", {"id": job_id})

    async def checkpoint(self, who: Principal, job_id: str) -> Download:
        """The latest checkpoint of a job the caller can read."""
        await self.db.run(lambda s: access.load(s, orm.Job, who, job_id, kind="job"))
        key = checkpoint_key(job_id)
        try:
            info = await asyncio.to_thread(self.storage.stat, key)
        except NotFound:
            raise NotFound(f"Job {job_id!r} has no checkpoint.", {"id": job_id}) from None
        return Download(key, info.size, info.etag.strip('"'), f"{job_id}-checkpoint.safetensors", CHECKPOINT_MEDIA_TYPE)

    def read(self, download: Download, start: int, end: int):
        return self.versions.read(download, start, end)


class Checkpoint:
    """One ``PUT /jobs/{id}/checkpoint``: streamed, checked as safetensors, then made the latest."""

    def __init__(self, service: TrainingService, job_id: str, receiver: BlobReceiver):
        self._service, self.job_id, self._receiver = service, job_id, receiver

    def feed(self, data: bytes):
        return self._receiver.feed(data)

    async def finish(self) -> CheckpointOut:
        storage = self._service.storage
        try:
            sha256, size = await self._receiver.finish()
            await self._receiver.check_safetensors(size)
            # a rename: a reader sees the previous checkpoint or this one, never half of one
            await asyncio.to_thread(storage.move, self._receiver.key, checkpoint_key(self.job_id))
            return CheckpointOut(job_id=self.job_id, sha256=sha256, size_bytes=size)
        finally:
            await self.release()

    async def release(self) -> None:
        try:
            await self._receiver.abort()
        finally:
            await asyncio.to_thread(self._service.storage.delete, self._receiver.key)

    interrupted = release
