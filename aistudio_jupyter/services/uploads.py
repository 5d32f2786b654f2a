"""Uploads: tus 1.0.0 state (core, creation, termination, checksum, expiration) and small files.

Bytes stream in through the sessions of ``upload_streams.py`` (flat memory, storage work in
worker threads). A PATCH is acknowledged only once its bytes are durable (``Appender.sync``)
and the new offset and storage state are in the database, so an upload resumes after a server
restart. The sha256 of the whole file is kept
running in memory; after a restart it is recomputed from the stored bytes on completion.
Completion goes through ``VersionService.publish``; a failed one leaves no version, no dataset
and no bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Int
from traitlets.config import LoggingConfigurable

from ..errors import AIStudioError, BadRequest, Conflict, NotFound, PayloadTooLarge, QuotaExceeded, Unavailable
from ..identity import Principal, quotas_of
from ..schemas.uploads import UploadMetadata, UploadOut
from ..store import orm
from ..store.types import utcnow
from . import audit
from .ids import new_id
from .upload_streams import FileSession, PatchSession, received_key
from .versions import Received, Target, VersionService

MIB = 1024 * 1024
CHECKSUM_ALGORITHMS = ("sha256", "sha1")


class UploadGone(AIStudioError):
    code, status = "gone", 410


class UploadLocked(AIStudioError):
    code, status = "locked", 423


def hash_object(storage, key: str) -> str:
    """sha256 of a stored object, read a MiB at a time."""
    digest = hashlib.sha256()
    with storage.open_reader(key) as reader:
        for chunk in reader:
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass
class _Upload:
    """An upload row's fields, copied out of the session."""

    id: str
    owner: str
    state: str
    length: int
    offset: int
    meta: dict[str, Any]
    target_dataset_id: str | None
    storage_state: dict | None
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, row: orm.Upload) -> _Upload:
        return cls(row.id, row.owner, row.state, row.length or 0, row.offset, dict(row.meta or {}), row.target_dataset_id, row.storage_state, row.expires_at)

    def target(self) -> Target:
        m = self.meta
        return Target(self.target_dataset_id, m.get("name"), m.get("description", ""), m.get("visibility", "private"), m.get("team"))


@dataclasses.dataclass(frozen=True)
class TusStatus:
    upload: UploadOut
    #: the Upload-Metadata header as the client sent it (tus: HEAD repeats it)
    metadata: str


class UploadService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage the bytes go to.")
    versions = AnyTrait(help="The VersionService that turns completed uploads into dataset versions.")
    events = AnyTrait(None, allow_none=True, help="The EventService: acknowledged bytes and the outcome are published on upload:<id>.")
    tiers = Dict(help="Tier name → quotas (see AIStudio.tiers).")
    expiry_seconds = Float(24 * 3600.0, config=True, help="An unfinished upload expires this long after its last acknowledged bytes; its staged bytes are then deleted.")
    retention_seconds = Float(7 * 24 * 3600.0, config=True, help="How long records of finished, failed and expired uploads are kept.")
    orphan_grace_seconds = Float(3600.0, config=True, help="Received bytes that belong to no upload in progress are deleted once this old.")
    buffer_bytes = Int(4 * MIB, config=True, help="Bytes gathered from the network before each write to storage (two buffers per upload at most).")
    checkpoint_bytes = Int(64 * MIB, config=True, help="Within one long PATCH without a checksum, bytes after which the offset is made durable and recorded.")
    max_active_uploads = Int(32, config=True, help="Unfinished uploads one user may have at once (0: no limit).")
    small_file_bytes = Int(64 * MIB, config=True, help="Largest request to POST /datasets/{id}/files; bigger files go through tus.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="aistudio-upload")
        #: uploads with a request in flight in this process; tus clients must not overlap PATCHes
        self._busy: set[str] = set()
        #: upload id → (offset, sha256 of the bytes before it); lost on restart, recomputed then
        self._hashes: dict[str, tuple[int, Any]] = {}

    @property
    def _versions(self) -> VersionService:
        return self.versions

    async def _run(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def tier(self, who: Principal) -> dict:
        return quotas_of(self.tiers, who)

    def max_size(self, who: Principal) -> int:
        """The largest upload ``who`` may start (Tus-Max-Size)."""
        return int(self.tier(who)["upload_bytes"])

    def _expiry(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.expiry_seconds)

    # -- creation, status, termination ---------------------------------------------------------

    async def create(self, who: Principal, length: int, metadata: UploadMetadata, raw_metadata: str) -> UploadOut:
        """Start an upload of ``length`` bytes; refused early when it cannot succeed."""
        if length <= 0:
            raise BadRequest("Upload-Length must be at least 1: empty files are not datasets.", {"header": "Upload-Length"})
        limit = self.max_size(who)
        if length > limit:
            raise PayloadTooLarge(f"The file is {length} bytes; your tier allows uploads up to {limit} bytes.", {"length": length, "limit": limit})
        return await self.db.run(self._create, who, length, metadata, raw_metadata, write=True)

    def _create(self, session: Session, who: Principal, length: int, metadata: UploadMetadata, raw_metadata: str) -> UploadOut:
        if self.max_active_uploads:
            active = session.scalar(select(func.count()).select_from(orm.Upload).where(orm.Upload.owner == who.username, orm.Upload.state == "active"))
            if active >= self.max_active_uploads:
                raise QuotaExceeded(
                    f"You have {active} unfinished uploads; finish or delete one first.", {"active": active, "limit": self.max_active_uploads}, retry_after=60
                )
        target = Target(metadata.dataset, None if metadata.dataset else metadata.name, metadata.description, metadata.visibility, metadata.team)
        self._versions.check_target(session, who, target, length)
        meta = metadata.model_dump(exclude={"dataset"}, exclude_none=True)
        row = orm.Upload(
            id=new_id("up"), owner=who.username, state="active", length=length, offset=0, meta={**meta, "raw": raw_metadata}, target_dataset_id=metadata.dataset, expires_at=self._expiry()
        )
        session.add(row)
        session.flush()
        audit.record(session, who, "create", "upload", row.id, {"length": length, "dataset_id": metadata.dataset, "name": target.name})
        return self._out(session, row)

    @staticmethod
    def _out(session: Session, row: orm.Upload) -> UploadOut:
        version = session.get(orm.DatasetVersion, row.result_version_id) if row.result_version_id else None
        return UploadOut(
            id=row.id,
            state=row.state,
            length=row.length or 0,
            offset=row.offset,
            filename=(row.meta or {}).get("filename"),
            dataset_id=version.dataset_id if version else row.target_dataset_id,
            version=version.version if version else None,
            version_id=row.result_version_id,
            error=row.error,
            created_at=row.created_at,
            expires_at=row.expires_at if row.state == "active" else None,
        )

    def _load(self, session: Session, who: Principal, upload_id: str) -> orm.Upload:
        # uploads are personal: another user's id answers exactly like a missing one
        row = session.scalar(select(orm.Upload).where(orm.Upload.id == upload_id, orm.Upload.owner == who.username))
        if row is None:
            raise NotFound(f"No upload with id {upload_id!r}.", {"id": upload_id})
        return row

    async def get(self, who: Principal, upload_id: str) -> UploadOut:
        """Where an upload stands, failed and expired ones included (with their error)."""
        return await self.db.run(lambda s: self._out(s, self._load(s, who, upload_id)))

    async def status(self, who: Principal, upload_id: str) -> TusStatus:
        """Where an upload stands, with its metadata header (tus HEAD); failed or expired: gone."""
        return await self.db.run(self._status, who, upload_id)

    def _status(self, session: Session, who: Principal, upload_id: str) -> TusStatus:
        row = self._load(session, who, upload_id)
        self._refuse_gone(row)
        return TusStatus(self._out(session, row), (row.meta or {}).get("raw", ""))

    @staticmethod
    def _refuse_gone(row: orm.Upload) -> None:
        if row.state in ("failed", "expired"):
            raise UploadGone(f"The upload {row.state}: {row.error or 'it was not finished in time'}.", {"id": row.id, "state": row.state, "error": row.error})
        if row.state == "active" and row.expires_at is not None and row.expires_at < utcnow():
            raise UploadGone("The upload expired; start a new one.", {"id": row.id, "state": "expired"})

    async def terminate(self, who: Principal, upload_id: str) -> None:
        """Abandon an upload and delete its staged bytes (tus termination)."""
        if upload_id in self._busy:
            raise UploadLocked("A request is still writing to this upload.", {"id": upload_id})
        up = await self.db.run(self._terminate, who, upload_id, write=True)
        self._hashes.pop(upload_id, None)
        await self._discard(up)

    def _terminate(self, session: Session, who: Principal, upload_id: str) -> _Upload:
        row = self._load(session, who, upload_id)
        up = _Upload.of(row)
        session.delete(row)
        audit.record(session, who, "delete", "upload", upload_id, {"state": up.state, "offset": up.offset})
        return up

    async def _discard(self, up: _Upload) -> None:
        if up.storage_state:
            await self._run(self.storage.discard, up.storage_state)
        await self._run(self.storage.delete, received_key(up.id))

    # -- PATCH ---------------------------------------------------------------------------------

    async def open_patch(self, who: Principal, upload_id: str, offset: int, length: int | None, checksum: tuple[str, bytes] | None) -> PatchSession:
        """Start receiving ``length`` bytes (None: unknown) at ``offset``; the caller feeds, then finishes."""
        if upload_id in self._busy:
            raise UploadLocked("Another request is writing to this upload; retry when it ends.", {"id": upload_id})
        self._busy.add(upload_id)
        try:
            up = await self.db.run(self._load_for_patch, who, upload_id)
            if up.state == "completed" and offset == up.length and not length:
                return PatchSession(self, who, up, None, None, None)
            if offset != up.offset:
                raise Conflict(f"Upload-Offset is {offset} but the upload is at {up.offset}; resume from there.", {"offset": up.offset})
            if length is not None and offset + length > up.length:
                raise PayloadTooLarge(f"The request goes past Upload-Length ({up.length} bytes).", {"length": up.length, "offset": offset})
            appender = None
            if up.offset < up.length:
                appender = await self._run(self.storage.open_append, received_key(up.id), up.storage_state)
            cached = self._hashes.get(upload_id)
            hasher = cached[1].copy() if cached and cached[0] == offset else (hashlib.sha256() if offset == 0 else None)
            return PatchSession(self, who, up, appender, hasher, checksum)
        except BaseException:
            self._busy.discard(upload_id)
            raise

    def _load_for_patch(self, session: Session, who: Principal, upload_id: str) -> _Upload:
        row = self._load(session, who, upload_id)
        self._refuse_gone(row)
        return _Upload.of(row)

    def _acknowledge(self, session: Session, upload_id: str, offset: int, state: dict) -> None:
        session.execute(update(orm.Upload).where(orm.Upload.id == upload_id).values(offset=offset, storage_state=state, expires_at=self._expiry(), updated_at=utcnow()))
        # only durable offsets are announced: a watcher never sees progress that a resume would undo
        length = session.scalar(select(orm.Upload.length).where(orm.Upload.id == upload_id))
        self._announce(session, upload_id, "progress", {"state": "active", "offset": offset, "length": length})

    def _announce(self, session: Session, upload_id: str, type_: str, data: dict) -> None:
        if self.events is not None:
            self.events.publish_in(session, f"upload:{upload_id}", type_, data)

    async def _complete(self, who: Principal, up: _Upload, hasher: Any) -> None:
        """Publish the received bytes and make them a dataset version, or fail the upload."""
        key = received_key(up.id)
        keep = False
        try:
            info = await self._run(self.storage.complete, up.storage_state, key)
            if info.size != up.length:
                raise Conflict("The stored bytes do not have the declared Upload-Length.", {"length": up.length, "stored": info.size})
            sha256 = hasher.hexdigest() if hasher is not None else await self._run(hash_object, self.storage, key)
            await self._versions.publish(who, up.target(), Received(key, sha256, up.length, up.meta.get("filename"), up.id))
        except AIStudioError as exc:
            if isinstance(exc, Unavailable):
                keep = True  # an outage, not the file: a PATCH at the final offset completes it later
                raise
            await self.db.run(self._fail, up.id, exc.message, write=True)
            await self._discard(up)
            raise
        except BaseException:
            keep = True
            raise
        finally:
            self._hashes.pop(up.id, None)
            if not keep:
                await self._run(self.storage.delete, key)

    def _fail(self, session: Session, upload_id: str, message: str) -> None:
        session.execute(update(orm.Upload).where(orm.Upload.id == upload_id).values(state="failed", error=message[:2000], storage_state=null(), updated_at=utcnow()))
        self._announce(session, upload_id, "status", {"state": "failed", "error": message[:2000]})

    # -- clean-up ------------------------------------------------------------------------------

    async def clean_up(self) -> dict[str, int]:
        """Expire stale uploads and delete their bytes; drop old records and orphaned bytes.

        The app runs this at start-up and periodically; it is safe to run from several servers.
        """
        now = utcnow()
        stale = await self.db.run(self._expire, now, frozenset(self._busy), write=True)
        for up in stale:
            self._hashes.pop(up.id, None)
            await self._discard(up)
            await self.db.run(self._forget_state, up.id, write=True)
        purged = await self.db.run(self._purge, now - dt.timedelta(seconds=self.retention_seconds), write=True)
        orphans = await self._sweep_orphans(now)
        if stale or orphans:
            self.log.info("AI Studio uploads: %d expired, %d orphaned objects deleted, %d old records purged", len(stale), orphans, purged)
        return {"expired": len(stale), "orphans": orphans, "purged": purged}

    def _expire(self, session: Session, now: dt.datetime, busy: frozenset[str]) -> list[_Upload]:
        U = orm.Upload
        due = session.scalars(select(U).where(U.state == "active", U.expires_at < now).limit(500)).all()
        # also those whose bytes an earlier pass failed to delete
        leftover = session.scalars(select(U).where(U.state.in_(("failed", "expired")), U.storage_state.is_not(None)).limit(500)).all()
        out = []
        for row in [*due, *leftover]:
            if row.id in busy:
                continue
            if row.state == "active":
                row.state, row.error = "expired", "expired before it was finished"
            out.append(_Upload.of(row))
        return out

    # SQL NULL, not JSON null: the sweeps below select on IS NULL
    def _forget_state(self, session: Session, upload_id: str) -> None:
        session.execute(update(orm.Upload).where(orm.Upload.id == upload_id).values(storage_state=null()))

    def _purge(self, session: Session, before: dt.datetime) -> int:
        U = orm.Upload
        result = session.execute(delete(U).where(U.state.in_(("completed", "failed", "expired")), U.updated_at < before, U.storage_state.is_(None)))
        return result.rowcount or 0

    async def _sweep_orphans(self, now: dt.datetime) -> int:
        keys = await self._run(lambda: list(self.storage.list("uploads/")))
        if not keys:
            return 0
        ids = {k.split("/", 1)[1]: k for k in keys if k.count("/") == 1}
        active = set(await self.db.run(lambda s: list(s.scalars(select(orm.Upload.id).where(orm.Upload.id.in_(list(ids)), orm.Upload.state == "active")))))
        deleted = 0
        for upload_id, key in ids.items():
            if upload_id in active or upload_id in self._busy:
                continue
            try:
                info = await self._run(self.storage.stat, key)
            except NotFound:
                continue
            if (now - info.modified).total_seconds() >= self.orphan_grace_seconds:
                await self._run(self.storage.delete, key)
                deleted += 1
        return deleted

    # -- small files ---------------------------------------------------------------------------

    async def open_file(self, who: Principal, dataset_id: str, declared: int | None) -> FileSession:
        """Start receiving one small file for a new version of ``dataset_id``."""
        limit = min(self.small_file_bytes, self.max_size(who))
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"The request is {declared} bytes; send files over {limit} bytes with tus (/uploads).", {"limit": limit})
        await self.db.run(lambda s: self._versions.check_target(s, who, Target(dataset_id), declared or 0))
        upload_id = new_id("sf")
        self._busy.add(upload_id)  # so the orphan sweep leaves its bytes alone
        try:
            writer = await self._run(self.storage.open_writer, received_key(upload_id))
        except BaseException:
            self._busy.discard(upload_id)
            raise
        return FileSession(self, who, dataset_id, upload_id, writer, limit)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
