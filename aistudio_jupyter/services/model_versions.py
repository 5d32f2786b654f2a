"""Model versions: safetensors weights (content-addressed in storage) + spec, metrics, lineage.

Weights arrive as a stream and are checked as safetensors by reading the header alone (an
8-byte length, a JSON table of tensors whose byte ranges must tile the rest of the file
exactly). Nothing here imports torch and nothing is ever unpickled: a pickle, a zip or a
truncated file is refused with 422 and its bytes are deleted.

A version registered with a job token belongs to that job: the job id and lineage come from
the token, whatever the request says, and the job's ``result`` names the new version.

Stages move along ``schemas.model_versions.TRANSITIONS`` under the model row's lock, so two
promotions of one model serialise. Version numbers are never reused: deleting the newest
version leaves ``Model.latest_version`` as it was, and ``latest`` means the newest that exists.
A version any deployment points at cannot be deleted (409 naming the deployments); the weights
of a deleted version stay in storage until the garbage collector (``services/gc.py``) finds
that no version names them, under the same per-blob lock ``_commit`` takes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Int
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from ..identity import Principal
from ..schemas.common import Page
from ..schemas.model_versions import (
    TRANSITIONS,
    HiddenRef,
    LineageDataset,
    LineageDeployment,
    LineageJob,
    LineageVersion,
    ModelCompareOut,
    ModelCompareQuery,
    ModelLineageOut,
    ModelVersionListQuery,
    ModelVersionMeta,
    ModelVersionOut,
    ModelVersionUpdate,
)
from ..schemas.models import ModelOut
from ..store import orm
from ..store.types import utcnow
from . import access, audit, pagination
from .ids import new_id
from .owner_events import announce
from .upload_streams import _Pipe
from .versions import Download, lock_blob, version_number

#: bytes per element of every dtype the safetensors format defines
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER_BYTES = 100 * 1024 * 1024
WEIGHTS_MEDIA_TYPE = "application/vnd.safetensors"
#: ``{v}`` names that mean "the newest version in this stage"
STAGE_ALIASES = ("production", "staging")
#: versions compared when the request names none
COMPARE_DEFAULT = 20


def artifact_key(sha256: str) -> str:
    """Where weights with this sha256 live; derived from the hash alone."""
    return f"models/sha256/{sha256[:2]}/{sha256}"


def check_safetensors(header_bytes: bytes, size: int) -> dict[str, Any]:
    """The tensor table of a safetensors file of ``size`` bytes whose first bytes are ``header_bytes``.

    Raises ``InvalidInput`` unless the header is a JSON object of ``{dtype, shape,
    data_offsets}`` entries whose ranges cover the data section exactly, without gaps or
    overlaps: the same checks the safetensors loader makes, without loading anything.
    """
    if size < 8 or len(header_bytes) < 8:
        raise InvalidInput("The weights are not safetensors: the file is shorter than its header length.", {"field": "weights"})
    n = int.from_bytes(header_bytes[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise InvalidInput("The weights are not safetensors: the header length does not fit the file.", {"field": "weights"})
    if len(header_bytes) < 8 + n:
        raise ValueError("check_safetensors needs the whole header")
    try:
        table = json.loads(header_bytes[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The weights are not safetensors: the header is not JSON.", {"field": "weights"}) from None
    if not isinstance(table, dict):
        raise InvalidInput("The weights are not safetensors: the header is not a JSON object.", {"field": "weights"})
    metadata = table.pop("__metadata__", None)
    if metadata is not None and (not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())):
        raise InvalidInput("The weights are not safetensors: __metadata__ must map strings to strings.", {"field": "weights"})
    spans = []
    for name, info in table.items():
        dtype, shape, offsets = (info.get(k) if isinstance(info, dict) else None for k in ("dtype", "shape", "data_offsets"))
        ok = (
            dtype in DTYPE_BYTES
            and isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        )
        if not ok or not 0 <= offsets[0] <= offsets[1] or offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise InvalidInput(f"The weights are not safetensors: tensor {name[:100]!r} is malformed.", {"field": "weights", "tensor": name[:100]})
        spans.append((offsets[0], offsets[1]))
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise InvalidInput("The weights are not safetensors: tensor data overlaps or leaves gaps.", {"field": "weights"})
        end = stop
    if end != size - 8 - n:
        raise InvalidInput("The weights are not safetensors: the tensors do not cover the file exactly.", {"field": "weights"})
    return {"tensors": len(table), "metadata": metadata or {}}


class BlobReceiver:
    """Bytes of one request streamed to a staging key while hashed; ``finish`` commits them."""

    def __init__(self, storage, key: str, writer, limit: int, what: str, buffer_bytes: int = 8 * 1024 * 1024):
        self.storage, self.key, self._writer, self.limit, self._what = storage, key, writer, limit, what
        self._hasher = hashlib.sha256()
        self._pipe = _Pipe(self._write, buffer_bytes, None)
        self._done = False

    @classmethod
    async def open(cls, storage, key: str, limit: int, what: str) -> BlobReceiver:
        return cls(storage, key, await asyncio.to_thread(storage.open_writer, key), limit, what)

    def feed(self, data: bytes):
        if self._done:
            return None
        if self._pipe.received + len(data) > self.limit:
            self._pipe.error = self._pipe.error or PayloadTooLarge(f"The {self._what} is larger than {self.limit} bytes.", {"limit": self.limit})
            return None
        return self._pipe.feed(data)

    def _write(self, buf: bytearray) -> None:
        self._hasher.update(buf)
        self._writer.write(buf)

    async def finish(self) -> tuple[str, int]:
        """Commit the bytes under ``key``; returns (sha256, size). The caller deletes ``key`` when done."""
        await self._pipe.drain()
        self._done = True
        await asyncio.to_thread(self._writer.commit)
        return self._hasher.hexdigest(), self._pipe.received

    async def check_safetensors(self, size: int) -> dict[str, Any]:
        head = await asyncio.to_thread(self.storage.read_range, self.key, 0, 8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        if len(head) == 8 and 8 + n <= min(size, 8 + MAX_HEADER_BYTES):
            head = await asyncio.to_thread(self.storage.read_range, self.key, 0, 8 + n)
        return check_safetensors(head, size)

    async def abort(self) -> None:
        """Drop whatever was received; idempotent."""
        if not self._done:
            self._done = True
            await self._pipe.stop()
            await asyncio.to_thread(self._writer.abort)


class Registration:
    """One ``POST /models/{id}/versions``: the weights streamed to storage as they arrive."""

    def __init__(self, service: ModelVersionService, who: Principal, model_id: str, weights: BlobReceiver):
        self._service, self._who, self._model_id, self.weights = service, who, model_id, weights

    async def finish(self, meta: ModelVersionMeta) -> ModelVersionOut:
        """Check the weights received and store the version described by ``meta``."""
        try:
            sha256, size = await self.weights.finish()
            info = await self.weights.check_safetensors(size)
            return await self._service._commit(self._who, self._model_id, meta, self.weights.key, sha256, size, info)
        finally:
            await self.abort()

    async def abort(self) -> None:
        """Drop the weights received so far; idempotent."""
        try:
            await self.weights.abort()
        finally:
            await asyncio.to_thread(self._service.storage.delete, self.weights.key)

    release = interrupted = abort


class ModelVersionService(LoggingConfigurable):
    """List, read, download and register versions of models."""

    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage holding the weights.")
    versions = AnyTrait(help="The VersionService (its ranged reader serves artifacts too).")
    events = AnyTrait(None, allow_none=True, help="The EventService: registrations, stage changes and deletions are announced on the owner's user:<owner>.")
    max_weights_bytes = Int(16 * 1024**3, config=True, help="Largest weights file a model version may have.")
    max_meta_bytes = Int(4 * 1024 * 1024, config=True, help="Largest 'meta' JSON part of a registration.")

    # -- reading -------------------------------------------------------------------------------

    async def list(self, who: Principal, model_id: str, query: ModelVersionListQuery) -> Page[ModelVersionOut]:
        """One page of a model's versions, newest first by default."""
        return await self.db.run(self._list, who, model_id, query)

    def _list(self, session: Session, who: Principal, model_id: str, query: ModelVersionListQuery) -> Page[ModelVersionOut]:
        access.load(session, orm.Model, who, model_id, kind="model")
        V = orm.ModelVersion
        stmt = select(V).where(V.model_id == model_id)
        if query.stage is not None:
            stmt = stmt.where(V.stage == query.stage)
        rows, cursor = pagination.fetch_page(session, stmt, V.version, V.id, query.sort.startswith("-"), query.cursor, query.limit)
        return Page[ModelVersionOut](items=[ModelVersionOut.model_validate(r) for r in rows], next_cursor=cursor)

    async def get(self, who: Principal, model_id: str, version: str) -> ModelVersionOut:
        """One version by number, ``latest``, or the newest in a stage (``production``, ``staging``)."""
        return await self.db.run(lambda s: ModelVersionOut.model_validate(self._load(s, who, model_id, version)))

    def _load(self, session: Session, who: Principal, model_id: str, version: str, *, write: bool = False) -> orm.ModelVersion:
        model = access.load(session, orm.Model, who, model_id, write=write, kind="model")
        return self._version_of(session, model, version)

    @staticmethod
    def _version_of(session: Session, model: orm.Model, version: str, *, lock: bool = False) -> orm.ModelVersion:
        V = orm.ModelVersion
        if version in STAGE_ALIASES:
            stmt = select(V).where(V.model_id == model.id, V.stage == version).order_by(V.version.desc()).limit(1)
        elif version == "latest":
            # the newest that exists: a deleted newest version's number is not reused
            stmt = select(V).where(V.model_id == model.id).order_by(V.version.desc()).limit(1)
        else:
            try:
                number = version_number(version, model.latest_version)
            except InvalidInput:
                raise InvalidInput("A version is a positive number, 'latest', 'production' or 'staging'.", {"field": "v"}) from None
            stmt = select(V).where(V.model_id == model.id, V.version == number)
        row = session.scalar(stmt.with_for_update() if lock else stmt)
        if row is None:
            raise NotFound(f"Model {model.id!r} has no version {version}.", {"id": model.id, "version": version})
        return row

    # -- stages --------------------------------------------------------------------------------

    async def set_stage(self, who: Principal, model_id: str, version: str, body: ModelVersionUpdate) -> ModelVersionOut:
        """Move a version to ``body.stage`` (owner or team editor), archiving the stage's other versions if asked."""
        return await self.db.run(self._set_stage, who, model_id, version, body, write=True)

    def _set_stage(self, session: Session, who: Principal, model_id: str, version: str, body: ModelVersionUpdate) -> ModelVersionOut:
        # the model row's lock serialises every stage change of the model's versions
        model = access.load(session, orm.Model, who, model_id, write=True, kind="model")
        row = self._version_of(session, model, version)
        before, after = row.stage, body.stage
        if before != after and after not in TRANSITIONS[before]:
            allowed = ", ".join(sorted(TRANSITIONS[before]))
            raise InvalidInput(f"A version in stage {before!r} can move to {allowed}, not {after!r}.", {"field": "stage", "from": before, "allowed": sorted(TRANSITIONS[before])})
        archived: list[int] = []
        if body.archive_existing and after in STAGE_ALIASES:
            V = orm.ModelVersion
            for other in session.scalars(select(V).where(V.model_id == model.id, V.stage == after, V.id != row.id).order_by(V.version)):
                other.stage = "archived"
                archived.append(other.version)
        row.stage = after
        model.updated_at = utcnow()
        session.flush()
        if before != after or archived:
            audit.record(session, who, "stage", "model_version", row.id, {"model_id": model.id, "version": row.version, "from": before, "to": after, "archived": archived})
            self._announce(session, model, "stage", version=_summary(row), archived=archived)
        return ModelVersionOut.model_validate(row)

    # -- comparing and lineage -----------------------------------------------------------------

    async def compare(self, who: Principal, model_id: str, query: ModelCompareQuery) -> ModelCompareOut:
        """Metrics, hyperparameters and lineage of some versions side by side."""
        return await self.db.run(self._compare, who, model_id, query)

    def _compare(self, session: Session, who: Principal, model_id: str, query: ModelCompareQuery) -> ModelCompareOut:
        model = access.load(session, orm.Model, who, model_id, kind="model")
        V = orm.ModelVersion
        if query.versions is None:
            rows = list(session.scalars(select(V).where(V.model_id == model.id).order_by(V.version.desc()).limit(COMPARE_DEFAULT)))[::-1]
        else:
            wanted = list(dict.fromkeys(int(n) for n in query.versions.split(",")))
            found = {r.version: r for r in session.scalars(select(V).where(V.model_id == model.id, V.version.in_(wanted)))}
            missing = [n for n in wanted if n not in found]
            if missing:
                raise NotFound(f"Model {model.id!r} has no version {', '.join(map(str, missing))}.", {"id": model.id, "versions": missing})
            rows = [found[n] for n in wanted]

        def table(values: list[dict]) -> dict[str, list]:
            keys = sorted({k for v in values for k in v})
            return {k: [v.get(k) for v in values] for k in keys}

        hyper = table([(r.lineage or {}).get("hyperparameters") or {} for r in rows])
        lineage = table([{k: v for k, v in (r.lineage or {}).items() if k != "hyperparameters"} for r in rows])
        metrics = table([{k: v for k, v in (r.metrics or {}).items() if isinstance(v, (int, float))} for r in rows])
        differs = [f"{section}.{k}" for section, t in (("hyperparameters", hyper), ("lineage", lineage)) for k, vals in t.items() if any(v != vals[0] for v in vals)]
        return ModelCompareOut(model_id=model.id, versions=rows, metrics=metrics, hyperparameters=hyper, lineage=lineage, differs=differs)

    async def lineage(self, who: Principal, model_id: str, version: str) -> ModelLineageOut:
        """dataset version -> job -> this version -> deployments, each as far as ``who`` may read it."""
        return await self.db.run(self._lineage, who, model_id, version)

    def _lineage(self, session: Session, who: Principal, model_id: str, version: str) -> ModelLineageOut:
        model = access.load(session, orm.Model, who, model_id, kind="model")
        row = self._version_of(session, model, version)
        lineage = row.lineage or {}
        dataset = None
        dataset_id = lineage.get("dataset_id")
        if row.dataset_version_id is not None or dataset_id is not None:
            dv = session.get(orm.DatasetVersion, row.dataset_version_id) if row.dataset_version_id else None
            dataset_id = dv.dataset_id if dv is not None else dataset_id
            ds = self._readable(session, orm.Dataset, who, dataset_id) if dataset_id else None
            if ds is None:
                dataset = HiddenRef(id=dataset_id or row.dataset_version_id)
            elif dv is not None:
                dataset = LineageDataset(id=ds.id, name=ds.name, version=dv.version, version_id=dv.id, sha256=dv.sha256, row_count=dv.row_count)
            else:
                dataset = LineageDataset(id=ds.id, name=ds.name, version=lineage.get("dataset_version"))
        job = None
        if row.job_id is not None:
            found = self._readable(session, orm.Job, who, row.job_id)
            job = LineageJob.model_validate(found) if found is not None else HiddenRef(id=row.job_id)
        deployments = []
        for dep in self._deployments_of(session, model, row):
            readable = self._readable(session, orm.Deployment, who, dep.id) is not None
            deployments.append(LineageDeployment.model_validate(dep) if readable else HiddenRef(id=dep.id))
        me = LineageVersion(id=row.id, model_id=model.id, model_name=model.name, version=row.version, stage=row.stage, artifact_sha256=row.artifact_sha256, created_by=row.created_by, created_at=row.created_at)
        return ModelLineageOut(dataset=dataset, job=job, model_version=me, deployments=deployments)

    @staticmethod
    def _readable(session: Session, table, who: Principal, id: str):
        return session.scalars(select(table).where(table.id == id, access.readable(table, who))).first()

    @staticmethod
    def _deployments_of(session: Session, model: orm.Model, row: orm.ModelVersion | None) -> list:
        """Deployments pointing at ``row`` (any state; one without a pinned version follows the newest), or at any version of ``model``."""
        D = orm.Deployment
        stmt = select(D).where(D.model_id == model.id)
        if row is not None:
            newest = session.scalar(select(func.max(orm.ModelVersion.version)).where(orm.ModelVersion.model_id == model.id))
            pinned = D.model_version == row.version
            stmt = stmt.where(or_(pinned, D.model_version.is_(None)) if row.version == newest else pinned)
        return list(session.scalars(stmt.order_by(D.created_at, D.id)))

    @classmethod
    def deployment_conflict(cls, session: Session, who: Principal, model: orm.Model, row: orm.ModelVersion | None) -> None:
        """Raise 409 naming the deployments that use ``row`` (or ``model``): they go first."""
        found = cls._deployments_of(session, model, row)
        if not found:
            return
        named = [{"id": d.id, "name": d.name, "state": d.state} if cls._readable(session, orm.Deployment, who, d.id) is not None else {"id": d.id, "hidden": True} for d in found]
        labels = ", ".join(f"{d['id']} ({d['name']!r})" if "name" in d else d["id"] for d in named)
        what = f"Version {row.version} of model {model.id!r}" if row is not None else f"Model {model.id!r}"
        raise Conflict(f"{what} is used by deployment(s) {labels}; delete them first.", {"id": model.id, "version": row.version if row is not None else None, "deployments": named})

    # -- deleting ------------------------------------------------------------------------------

    async def delete(self, who: Principal, model_id: str, version: str) -> None:
        """Delete a version no deployment uses; its weights go with the next garbage collection."""
        await self.db.run(self._delete, who, model_id, version, write=True)

    def _delete(self, session: Session, who: Principal, model_id: str, version: str) -> None:
        model = access.load(session, orm.Model, who, model_id, write=True, kind="model")
        # the row's lock first: a deployment being created on it (which reads it FOR SHARE)
        # either commits before the check below sees it, or finds the version gone
        row = self._version_of(session, model, version, lock=True)
        self.deployment_conflict(session, who, model, row)
        session.delete(row)
        model.updated_at = utcnow()
        session.flush()
        audit.record(session, who, "delete", "model_version", row.id, {"model_id": model.id, "version": row.version, "sha256": row.artifact_sha256})
        self._announce(session, model, "version_deleted", version=_summary(row))

    async def artifact(self, who: Principal, model_id: str, version: str) -> Download:
        """Where a version's weights are, with the name to serve them under."""

        def _artifact(session: Session) -> Download:
            row = self._load(session, who, model_id, version)
            if not row.artifact_sha256:
                raise NotFound(f"Version {row.version} of model {model_id!r} has no weights.", {"id": model_id, "version": version})
            return Download(artifact_key(row.artifact_sha256), 0, row.artifact_sha256, f"{model_id}-v{row.version}.safetensors", WEIGHTS_MEDIA_TYPE)

        found = await self.db.run(_artifact)
        info = await asyncio.to_thread(self.storage.stat, found.key)
        return Download(found.key, info.size, found.sha256, found.filename, found.media_type)

    def read(self, download: Download, start: int, end: int):
        return self.versions.read(download, start, end)

    # -- registering ---------------------------------------------------------------------------

    async def open_registration(self, who: Principal, model_id: str, declared: int | None) -> Registration:
        """Check that ``who`` may add a version to ``model_id`` and start receiving the weights."""
        if declared is not None and declared > self.max_weights_bytes + self.max_meta_bytes + 64 * 1024:
            raise PayloadTooLarge(f"Model weights are limited to {self.max_weights_bytes} bytes.", {"limit": self.max_weights_bytes})
        await self.db.run(lambda s: self._check_writable(s, who, model_id))
        receiver = await BlobReceiver.open(self.storage, f"models/incoming/{new_id('mw')}", self.max_weights_bytes, "weights part")
        return Registration(self, who, model_id, receiver)

    def _check_writable(self, session: Session, who: Principal, model_id: str) -> orm.Model:
        model = access.load(session, orm.Model, who, model_id, write=True, kind="model")
        job_id = who.job_id
        if job_id is not None:
            job = session.get(orm.Job, job_id)
            # a job registers for its owner only: the token's owner must be the job's
            if job is None or job.owner != who.username or model.owner != who.username:
                raise Forbidden("A job registers versions only of its owner's models.", {"id": model_id})
        return model

    async def _commit(self, who: Principal, model_id: str, meta: ModelVersionMeta, staged: str, sha256: str, size: int, info: dict) -> ModelVersionOut:
        def _store(session: Session) -> ModelVersionOut:
            model = self._check_writable(session, who, model_id)
            lineage = meta.lineage.model_dump()
            job_id = who.job_id
            if job_id is not None:
                lineage["job_id"] = job_id
            elif lineage["job_id"] is not None:
                # a user may name a job as the source only if it is theirs to change
                access.load(session, orm.Job, who, lineage["job_id"], write=True, kind="job")
            if lineage["dataset_version_id"] is not None:
                self._check_dataset_version(session, who, lineage)
            key = artifact_key(sha256)
            # under the blob's lock, as the garbage collector deletes: see services/gc.py
            lock_blob(session, sha256)
            # identical weights are stored once; the staged copy is deleted by the caller
            created = not self.storage.exists(key)
            if created:
                self.storage.move(staged, key)
            try:
                out = self._insert(session, who, model, meta, lineage, key, sha256, size, info)
                self._announce(session, model, "version", version=_summary(out))
                return out
            except BaseException:
                if created:
                    # nobody else can refer to it yet: they would have to take the lock we hold
                    self.storage.delete(key)
                raise

        return await self.db.run(_store, write=True)

    @staticmethod
    def _insert(session: Session, who: Principal, model: orm.Model, meta: ModelVersionMeta, lineage: dict, key: str, sha256: str, size: int, info: dict) -> ModelVersionOut:
        job_id = who.job_id
        spec = dict(meta.spec)
        if meta.input_example is not None:
            spec["input_example"] = meta.input_example
        spec["artifact"] = {"format": "safetensors", "size_bytes": size, "tensors": info["tensors"], "sha256": sha256}
        row = orm.ModelVersion(
            id=new_id("mv"),
            model_id=model.id,
            version=model.latest_version + 1,
            stage="none",
            artifact_key=key,
            artifact_sha256=sha256,
            spec=spec,
            metrics=meta.metrics,
            lineage=lineage,
            job_id=lineage["job_id"],
            dataset_version_id=lineage["dataset_version_id"],
            created_by=who.username,
            created_at=utcnow(),
        )
        session.add(row)
        model.latest_version = row.version
        model.updated_at = utcnow()
        if job_id is not None:
            job = session.get(orm.Job, job_id)
            job.result = {**(job.result or {}), "model_id": model.id, "model_version": row.version}
        session.flush()
        audit.record(session, who, "create", "model_version", row.id, {"model_id": model.id, "version": row.version, "sha256": sha256, "size_bytes": size, "job_id": lineage["job_id"]})
        return ModelVersionOut.model_validate(row)

    def _announce(self, session: Session, model: orm.Model, action: str, **summary: Any) -> None:
        announce(self.events, session, model.owner, "model", action, model.id, ModelOut.model_validate(model), **summary)

    @staticmethod
    def _check_dataset_version(session: Session, who: Principal, lineage: dict) -> None:
        row = session.get(orm.DatasetVersion, lineage["dataset_version_id"])
        if row is None:
            raise InvalidInput("lineage.dataset_version_id names no dataset version you can read.", {"field": "lineage.dataset_version_id"})
        try:
            access.load(session, orm.Dataset, who, row.dataset_id, kind="dataset")
        except NotFound:
            raise InvalidInput("lineage.dataset_version_id names no dataset version you can read.", {"field": "lineage.dataset_version_id"}) from None
        lineage["dataset_id"], lineage["dataset_version"] = row.dataset_id, row.version


def _summary(row: orm.ModelVersion | ModelVersionOut) -> dict[str, Any]:
    """What a ``model`` event says of a version: enough to patch a list row, never the spec."""
    return {"id": row.id, "version": row.version, "stage": row.stage, "created_at": row.created_at}
