"""Garbage collection of content-addressed blobs that nothing refers to any more.

Deleting a dataset deletes its versions' rows but not their bytes: a blob
(``blobs/sha256/<2 hex>/<sha256>``) may be shared by any number of versions, of any owner. The
same goes for model weights (``models/sha256/<2 hex>/<sha256>``) when a model version, or a
whole model, is deleted. ``collect`` lists both prefixes, and deletes the objects whose hash no
``DatasetVersion``, ``DatasetFile`` or ``ModelVersion`` (``artifact_sha256``) row names, once
they are older than a grace period. Checkpoints and upload staging areas are outside both
prefixes and never touched here.

Why an upload completing at the same time never loses its blob. Publishing a version
(``VersionService._commit``, and ``ModelVersionService._commit`` for weights) runs in one
transaction: take the blob's lock, reuse the blob if it exists or move the new bytes there,
insert the version row, commit. Deletion here does the
same dance in its own transaction per blob: take the same lock, check again that no row refers
to the hash, delete the object, commit. The lock is a PostgreSQL transaction-level advisory lock
(``versions.lock_blob``); on SQLite every write transaction is exclusive, which serialises the
two just the same. So either the publish committed first, and the re-check sees its row and keeps
the blob, or the deletion committed first, and the publish (which only looks after taking the
lock) finds no blob and moves its own bytes in. The first, lock-free listing may be stale in
both directions; only the re-check under the lock decides. The grace period (by the object's
modification time) adds a margin for writers that do not take the lock, such as a future
feature writing a blob before its row, and keeps the bytes of a just-deleted dataset around for a
while (for operators restoring a database backup taken minutes earlier).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt

from sqlalchemy import exists, select, union
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..errors import AIStudioError, NotFound
from ..store import orm
from .model_versions import artifact_key
from .versions import BLOB_PREFIX, blob_key, lock_blob

#: (prefix, key of a hash) of every content-addressed area collected
AREAS = ((BLOB_PREFIX, blob_key), ("models/sha256", artifact_key))


@dataclasses.dataclass
class Collection:
    """What one ``collect`` found and did."""

    scanned: int = 0
    referenced: int = 0
    too_young: int = 0
    deleted: list[str] = dataclasses.field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _references(session: Session, sha256: str | None = None):
    """Hashes some row still needs (all of them, or whether ``sha256`` is one)."""
    sources = [(orm.DatasetVersion, orm.DatasetVersion.sha256), (orm.DatasetFile, orm.DatasetFile.sha256), (orm.ModelVersion, orm.ModelVersion.artifact_sha256)]
    if sha256 is not None:
        return any(session.scalar(select(exists().where(column == sha256))) for _, column in sources)
    return set(session.scalars(union(*(select(column).where(column.is_not(None)) for _, column in sources))))


class GarbageCollector(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    storage = AnyTrait(help="The Storage holding the blobs.")
    grace_seconds = Float(24 * 3600.0, config=True, help="Unreferenced blobs younger than this are kept (by their storage modification time).")
    interval_seconds = Float(6 * 3600.0, config=True, help="Seconds between collections in the server; 0 disables them (run `jupyter aistudio gc` instead).")

    _task: asyncio.Task | None = None

    def collect(self, grace_seconds: float | None = None, dry_run: bool = False) -> Collection:
        """Delete unreferenced blobs older than ``grace_seconds`` (default: the configured grace). Blocking."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        report = Collection(dry_run=dry_run)
        needed = self.db.call(_references)
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=grace)
        for key, key_of in self._objects():
            sha256 = key.rsplit("/", 1)[-1]
            if len(sha256) != 64 or key != key_of(sha256):
                continue  # not a blob this code wrote
            report.scanned += 1
            if sha256 in needed:
                report.referenced += 1
                continue
            try:
                info = self.storage.stat(key)
            except NotFound:
                continue
            modified = info.modified if info.modified.tzinfo else info.modified.replace(tzinfo=dt.timezone.utc)
            if modified > cutoff:
                report.too_young += 1
                continue
            if dry_run or self.db.call(self._delete_unreferenced, sha256, key, write=True):
                report.deleted.append(key)
                report.bytes_freed += info.size
            else:
                report.referenced += 1  # published meanwhile
        if report.deleted and not dry_run:
            self.log.info("gc: deleted %d unreferenced blobs (%d bytes)", len(report.deleted), report.bytes_freed)
        return report

    def _objects(self):
        for prefix, key_of in AREAS:
            for key in self.storage.list(prefix + "/"):
                yield key, key_of

    def _delete_unreferenced(self, session: Session, sha256: str, key: str) -> bool:
        lock_blob(session, sha256)  # the lock publishing takes: see the module's docstring
        if _references(session, sha256):
            return False
        self.storage.delete(key)
        return True

    # -- in the server -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.interval_seconds > 0 and self.storage is not None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await asyncio.to_thread(self.collect)
            except AIStudioError as exc:  # the database or storage is down: the next round retries
                self.log.warning("gc: %s", exc.message)
            except Exception:
                self.log.exception("gc failed")
