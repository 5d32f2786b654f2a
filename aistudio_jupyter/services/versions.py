"""Dataset versions: immutable, content-addressed, created only from received and checked bytes.

``publish`` is the one way bytes become a version, whether they came through tus or a small
multipart upload: sniff the format (refusing what we do not serve), then in one transaction
place the bytes at ``blobs/sha256/<2 hex>/<sha256>`` (identical content is stored once), create
the version (and the dataset, when the upload named a new one), bump the dataset's
``latest_version`` and ``size_bytes``, mark the upload completed and write the audit row.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from sqlalchemy import func, null, select, text
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Int
from traitlets.config import LoggingConfigurable

from ..errors import AIStudioError, Conflict, InsufficientStorage, InvalidInput, NotFound
from ..identity import Principal, quotas_of
from ..schemas.common import Page
from ..schemas.datasets import DatasetOut
from ..schemas.uploads import VersionFileOut, VersionListQuery, VersionOut
from ..store import orm
from ..store.types import utcnow
from . import access, audit, formats, pagination, zips
from .ids import new_id
from .owner_events import announce

BLOB_PREFIX = "blobs/sha256"
#: namespace of the PostgreSQL advisory locks that serialise work on one blob
_BLOB_LOCK = 0x626C6F62


def blob_key(sha256: str) -> str:
    """Where the bytes with this sha256 live; derived from the hash alone."""
    return f"{BLOB_PREFIX}/{sha256[:2]}/{sha256}"


def lock_blob(session: Session, sha256: str) -> None:
    """Serialise, until the transaction ends, everything that creates, reuses or deletes this blob."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": _BLOB_LOCK, "key": int(sha256[:8], 16) - 2**31})
    else:
        # a SQLite write transaction is exclusive (BEGIN IMMEDIATE), but a session begins it only
        # at its first statement: begin it now, before the caller looks at storage
        session.connection()


def storage_used(session: Session, owner: str, exclude_upload: str | None = None) -> int:
    """Bytes counted against ``owner``'s storage quota, as ``/me`` reports them: every version of
    their datasets (``Dataset.size_bytes``) plus the declared length of their uploads in flight,
    which are promised already (or parallel uploads would overshoot the quota together)."""
    stored = session.scalar(select(func.coalesce(func.sum(orm.Dataset.size_bytes), 0)).where(orm.Dataset.owner == owner))
    pending = select(func.coalesce(func.sum(orm.Upload.length), 0)).where(orm.Upload.owner == owner, orm.Upload.state == "active")
    if exclude_upload:
        pending = pending.where(orm.Upload.id != exclude_upload)
    return int(stored) + int(session.scalar(pending))


class RangeNotSatisfiable(AIStudioError):
    code, status = "range_not_satisfiable", 416


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a new version goes: an existing dataset (``dataset_id``) or a new one named ``name``."""

    dataset_id: str | None = None
    name: str | None = None
    description: str = ""
    visibility: str = "private"
    team: str | None = None


@dataclasses.dataclass(frozen=True)
class Received:
    """Bytes fully received and stored under ``key`` (a key only this upload uses)."""

    key: str
    sha256: str
    size: int
    filename: str | None
    #: the tus upload this completes; marked completed in the version's transaction
    upload_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Download:
    key: str
    size: int
    sha256: str
    filename: str
    media_type: str



def version_number(version: str, latest: int) -> int:
    """A path's ``{v}`` (a number or ``latest``) as a version number; 422 otherwise."""
    if version == "latest":
        return latest
    if version.isascii() and version.isdigit() and len(version) <= 9:
        return int(version)
    raise InvalidInput("A version is a positive number or 'latest'.", {"field": "v"})

class VersionService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage holding the bytes.")
    events = AnyTrait(None, allow_none=True, help="The EventService: a new version is announced on dataset:<id> (and upload:<id>, and the owner's user:<owner>).")
    tiers = Dict(help="Tier name → quotas (see AIStudio.tiers).")
    zip_max_entries = Int(100_000, config=True, help="Most entries a zip of images may have.")
    zip_max_uncompressed_bytes = Int(32 * 1024**3, config=True, help="Most bytes a zip of images may declare once unpacked.")
    zip_max_ratio = Float(100.0, config=True, help="Most declared unpacked bytes per byte of zip archive; zip bombs reach thousands.")

    def tier(self, who: Principal) -> dict:
        return quotas_of(self.tiers, who)

    # -- checks shared with upload creation --------------------------------------------------

    def check_target(self, session: Session, who: Principal, target: Target, incoming: int, *, exclude_upload: str | None = None) -> orm.Dataset | None:
        """The dataset a version will go to (None: a new one), after permission, name and quota checks."""
        dataset = None
        if target.dataset_id:
            dataset = access.load(session, orm.Dataset, who, target.dataset_id, write=True, kind="dataset")
        elif target.name:
            taken = session.scalar(select(orm.Dataset.id).where(orm.Dataset.owner == who.username, orm.Dataset.name == target.name))
            if taken:
                # not reused silently: adding to a dataset is said with its id (``dataset`` metadata)
                raise Conflict(f"A dataset named {target.name!r} already exists; pass its id as 'dataset' to add a version.", {"field": "name", "id": taken})
            access.check_sharing(who, target.visibility, target.team)
        else:
            raise InvalidInput("Say where the file goes: 'dataset' (an existing dataset's id) or 'name' (a new dataset).", {"field": "dataset"})
        self._check_quota(session, who, dataset.owner if dataset else who.username, incoming, exclude_upload)
        return dataset

    def _check_quota(self, session: Session, who: Principal, owner: str, incoming: int, exclude_upload: str | None) -> None:
        limit = int(self.tier(who)["storage_bytes"])
        used = storage_used(session, owner, exclude_upload)
        if used + incoming > limit:
            raise InsufficientStorage(
                f"Storage quota exceeded: {owner} uses {used} of {limit} bytes and this file needs {incoming} more. Delete datasets or ask for a larger tier.",
                {"used_bytes": used, "limit_bytes": limit, "needed_bytes": incoming},
            )

    # -- publishing ----------------------------------------------------------------------------

    def zip_limits(self) -> zips.ZipLimits:
        return zips.ZipLimits(self.zip_max_entries, self.zip_max_uncompressed_bytes, self.zip_max_ratio)

    async def publish(self, who: Principal, target: Target, received: Received) -> VersionOut:
        """Check ``received`` and make it a new version. The caller deletes ``received.key`` after."""
        detected = await asyncio.to_thread(formats.sniff, self.storage, received.key, received.size, self.zip_limits())
        return await self.db.run(self._commit, who, target, received, detected, write=True)

    def _commit(self, session: Session, who: Principal, target: Target, received: Received, detected: formats.Detected) -> VersionOut:
        self._lock_blob(session, received.sha256)
        blob = blob_key(received.sha256)
        # under the blob's lock: a failed commit elsewhere cannot delete it between check and use
        created = not self.storage.exists(blob)
        if created:
            self.storage.move(received.key, blob)
        try:
            out = self._create_version(session, who, target, received, detected)
            session.flush()
            return out
        except BaseException:
            if created:
                # nobody else can refer to it yet: they would have to take the lock we hold
                self.storage.delete(blob)
            raise

    def _lock_blob(self, session: Session, sha256: str) -> None:
        lock_blob(session, sha256)

    def _create_version(self, session: Session, who: Principal, target: Target, received: Received, detected: formats.Detected) -> VersionOut:
        dataset = self.check_target(session, who, target, received.size, exclude_upload=received.upload_id)
        new = dataset is None
        if new:
            dataset = orm.Dataset(
                id=new_id("ds"), owner=who.username, name=target.name, description=target.description, tags=[], visibility=target.visibility, team=target.team
            )
            session.add(dataset)
            session.flush()
            audit.record(session, who, "create", "dataset", dataset.id, {"name": dataset.name, "upload_id": received.upload_id})
        version = orm.DatasetVersion(
            id=new_id("dv"),
            dataset_id=dataset.id,
            version=dataset.latest_version + 1,
            sha256=received.sha256,
            size_bytes=received.size,
            format=detected.format,
            schema_=detected.schema,
            row_count=detected.row_count,
            created_by=who.username,
            created_at=utcnow(),
        )
        session.add(version)
        session.flush()  # no ORM relationship orders the inserts: the file row refers to this one
        file = orm.DatasetFile(
            id=new_id("df"),
            version_id=version.id,
            path=received.filename or f"{dataset.name}.{detected.format}",
            sha256=received.sha256,
            size_bytes=received.size,
            content_type=detected.media_type,
        )
        session.add(file)
        # size_bytes is what the dataset's versions occupy, summed: the storage quota reads it
        dataset.latest_version = version.version
        dataset.size_bytes = dataset.size_bytes + received.size
        dataset.updated_at = utcnow()
        if received.upload_id:
            upload = session.get(orm.Upload, received.upload_id)
            upload.state, upload.result_version_id, upload.target_dataset_id, upload.storage_state = "completed", version.id, dataset.id, null()
        session.flush()
        if self.events is not None:
            announced = {"dataset_id": dataset.id, "version_id": version.id, "version": version.version, "size_bytes": received.size, "format": detected.format}
            self.events.publish_in(session, f"dataset:{dataset.id}", "version", announced)
            if received.upload_id:
                self.events.publish_in(session, f"upload:{received.upload_id}", "status", {"state": "completed", "offset": received.size, "length": received.size, **announced})
            # a dataset this version creates is announced once, as created, with its version
            action = "created" if new else "version"
            announce(self.events, session, dataset.owner, "dataset", action, dataset.id, DatasetOut.model_validate(dataset), version=announced)
        audit.record(
            session,
            who,
            "create",
            "dataset_version",
            version.id,
            {"dataset_id": dataset.id, "version": version.version, "sha256": received.sha256, "size_bytes": received.size, "format": detected.format, "upload_id": received.upload_id},
        )
        return self._out(version, [file])

    @staticmethod
    def _out(row: orm.DatasetVersion, files: list[orm.DatasetFile]) -> VersionOut:
        out = VersionOut.model_validate(row)
        out.files = [VersionFileOut.model_validate(f) for f in files]
        return out

    # -- reading -------------------------------------------------------------------------------

    async def list(self, who: Principal, dataset_id: str, query: VersionListQuery) -> Page[VersionOut]:
        """One page of a dataset's versions, newest first by default."""
        return await self.db.run(self._list, who, dataset_id, query)

    def _list(self, session: Session, who: Principal, dataset_id: str, query: VersionListQuery) -> Page[VersionOut]:
        access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        V = orm.DatasetVersion
        rows, cursor = pagination.fetch_page(session, select(V).where(V.dataset_id == dataset_id), V.version, V.id, query.sort.startswith("-"), query.cursor, query.limit)
        files: dict[str, list] = {}
        if rows:
            for f in session.scalars(select(orm.DatasetFile).where(orm.DatasetFile.version_id.in_([r.id for r in rows]))):
                files.setdefault(f.version_id, []).append(f)
        return Page[VersionOut](items=[self._out(r, files.get(r.id, [])) for r in rows], next_cursor=cursor)

    async def get(self, who: Principal, dataset_id: str, version: str) -> VersionOut:
        """One version by number, or ``latest``."""
        return await self.db.run(self._get, who, dataset_id, version)

    def _get(self, session: Session, who: Principal, dataset_id: str, version: str) -> VersionOut:
        row = self._load(session, who, dataset_id, version)
        return self._out(row, list(session.scalars(select(orm.DatasetFile).where(orm.DatasetFile.version_id == row.id))))

    def _load(self, session: Session, who: Principal, dataset_id: str, version: str) -> orm.DatasetVersion:
        dataset = access.load(session, orm.Dataset, who, dataset_id, kind="dataset")
        number = version_number(version, dataset.latest_version)
        row = session.scalar(select(orm.DatasetVersion).where(orm.DatasetVersion.dataset_id == dataset.id, orm.DatasetVersion.version == number))
        if row is None:
            raise NotFound(f"Dataset {dataset_id!r} has no version {version}.", {"id": dataset_id, "version": version})
        return row

    async def download(self, who: Principal, dataset_id: str, version: str) -> Download:
        """Where a version's bytes are, with the name and media type to serve them under."""
        return await self.db.run(self._download, who, dataset_id, version)

    def _download(self, session: Session, who: Principal, dataset_id: str, version: str) -> Download:
        row = self._load(session, who, dataset_id, version)
        file = session.scalar(select(orm.DatasetFile).where(orm.DatasetFile.version_id == row.id).limit(1))
        media = file.content_type if file else formats.MEDIA_TYPES.get(row.format, "application/octet-stream")
        return Download(blob_key(row.sha256), row.size_bytes, row.sha256, file.path if file else f"{row.sha256[:12]}.{row.format}", media)

    async def read(self, download: Download, start: int, end: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a download, a chunk at a time, read in a worker thread."""
        if not 0 <= start <= end <= download.size:
            raise RangeNotSatisfiable("The range is outside the file.", {"size": download.size})
        reader = await asyncio.to_thread(self.storage.open_reader, download.key, start, end)
        try:
            while data := await asyncio.to_thread(reader.read, chunk):
                yield data
        finally:
            await asyncio.to_thread(reader.close)
