"""Blob garbage collection and storage accounting: deleting datasets then collecting frees the
blobs no version needs (local disk and S3, in the server and through ``jupyter aistudio gc``),
keeps shared and young ones, never takes the blob of an upload completing meanwhile; and
``/me`` reports exactly what the upload quota counts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading

import pytest

from aistudio_jupyter.services.versions import blob_key, lock_blob

from ..test_cli import run_cli
from .test_uploads import TUS, app, create, metadata_header, s3_config, upload_bytes  # noqa: F401 -- fixtures


def table(seed: int, rows: int = 2000) -> bytes:
    return b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * seed) for i in range(rows))


async def new_dataset(api, data: bytes, name: str, user: str = "alice") -> str:
    _, reply = await upload_bytes(api, data, name=name, filename=f"{name}.csv")
    assert reply.status == 204, reply.body
    return reply.headers["AIStudio-Dataset"]


async def delete(api, ds: str) -> None:
    assert (await api("DELETE", f"datasets/{ds}")).status == 204


@pytest.fixture(params=["local", "s3"])
def storage_kind(request, aistudio_config):
    if request.param == "s3":
        request.getfixturevalue("s3_config")
    return request.param


async def test_collect_frees_unreferenced_blobs_only(storage_kind, api, app):
    storage, gc = app.services.storage, app.services.gc
    shared, alone = table(1), table(2)
    one = await new_dataset(api, shared, "one")
    two = await new_dataset(api, shared, "two")  # same bytes: one blob, two versions
    three = await new_dataset(api, alone, "three")
    keys = {name: blob_key(hashlib.sha256(data).hexdigest()) for name, data in (("shared", shared), ("alone", alone))}
    assert all(await asyncio.gather(*(asyncio.to_thread(storage.exists, k) for k in keys.values())))

    await delete(api, one)
    await delete(api, three)
    # within the grace period nothing goes
    kept = await asyncio.to_thread(gc.collect)
    assert kept.deleted == [] and kept.too_young == 1 and kept.referenced == 1
    dry = await asyncio.to_thread(gc.collect, 0, True)
    assert dry.deleted == [keys["alone"]] and dry.bytes_freed == len(alone) and await asyncio.to_thread(storage.exists, keys["alone"])

    done = await asyncio.to_thread(gc.collect, 0)
    assert done.deleted == [keys["alone"]] and done.scanned == 2 and done.referenced == 1
    assert not await asyncio.to_thread(storage.exists, keys["alone"])
    assert await asyncio.to_thread(storage.exists, keys["shared"])  # dataset "two" still needs it
    downloaded = await api("GET", f"datasets/{two}/versions/1/download")
    assert downloaded.status == 200 and downloaded.body == shared

    await delete(api, two)
    assert (await asyncio.to_thread(gc.collect, 0)).deleted == [keys["shared"]]
    assert [k async for k in _keys(storage)] == []
    # the same bytes uploaded again after collection are stored again
    again = await new_dataset(api, shared, "again")
    assert (await api("GET", f"datasets/{again}/rows", params={"limit": "1"})).body["total_rows"] == 2000


async def _keys(storage):
    for key in await asyncio.to_thread(lambda: list(storage.list("blobs/"))):
        yield key


async def test_uploads_completing_during_collection_keep_their_blob(api, app):
    """Publish the bytes of a just-deleted dataset while collections run: a version never loses its blob."""
    gc, storage = app.services.gc, app.services.storage
    data = table(7)
    key = blob_key(hashlib.sha256(data).hexdigest())
    for round in range(4):
        ds = await new_dataset(api, data, f"racer-{round}")
        await delete(api, ds)  # the blob is now garbage
        collecting = asyncio.gather(*(asyncio.to_thread(gc.collect, 0) for _ in range(2)))
        revived = await new_dataset(api, data, f"revived-{round}")
        await collecting
        assert await asyncio.to_thread(storage.exists, key), round
        assert (await api("GET", f"datasets/{revived}/versions/1/download")).body == data
        await delete(api, revived)


async def test_gc_command(api, app, aistudio_config):
    if not aistudio_config["database_url"].startswith("sqlite"):
        pytest.skip("the command runs the collector tested above on both databases; one process start is enough")
    keep = await new_dataset(api, table(3), "keep")
    gone = await new_dataset(api, table(4), "gone")
    await delete(api, gone)
    args = ["--database-url", aistudio_config["database_url"], "gc", "--storage-url", aistudio_config["storage_url"], "--grace-seconds", "0"]
    dry = await asyncio.to_thread(run_cli, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    dry = json.loads(dry.stdout)
    assert dry["dry_run"] is True and dry["deleted"] == [blob_key(hashlib.sha256(table(4)).hexdigest())]
    assert await asyncio.to_thread(app.services.storage.exists, dry["deleted"][0])
    done = json.loads((await asyncio.to_thread(run_cli, *args)).stdout)
    assert done["deleted"] == dry["deleted"] and done["referenced"] == 1
    assert not await asyncio.to_thread(app.services.storage.exists, dry["deleted"][0])
    assert (await api("GET", f"datasets/{keep}/rows")).status == 200


@pytest.fixture
def small_quota(aistudio_config):
    aistudio_config["tiers"] = {"default": {"upload_bytes": 100_000, "storage_bytes": 200_000}}


async def test_me_reports_what_the_quota_counts(small_quota, api):
    data = table(5, rows=5000)  # ~50 kB
    await new_dataset(api, data, "stored")
    pending = await create(api, 60_000, name="in-flight")  # declared, nothing sent yet
    usage = (await api("GET", "me")).body["usage"]
    assert usage["storage_bytes"] == len(data) + 60_000
    # what is left by /me's count is exactly what the next upload may declare
    left = 200_000 - usage["storage_bytes"]
    too_much = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": str(left + 1), "Upload-Metadata": metadata_header(name="over")})
    assert too_much.status == 507 and too_much.body["error"]["details"]["used_bytes"] == usage["storage_bytes"]
    assert (await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": str(left), "Upload-Metadata": metadata_header(name="fits")})).status == 201
    # a terminated upload no longer counts, in either
    assert (await api("DELETE", f"uploads/{pending}", headers=TUS)).status == 204
    assert (await api("GET", "me")).body["usage"]["storage_bytes"] == len(data) + left


async def test_the_blob_lock_is_held_from_the_moment_it_is_taken(app):
    """Publishing checks storage right after taking the lock, before any other statement: the
    lock must already exclude a collector then (on SQLite the write transaction begins at once)."""
    db, sha = app.services.db, "ab" * 32
    held, release, order = threading.Event(), threading.Event(), []

    def first(session):
        lock_blob(session, sha)
        held.set()
        release.wait(5)
        order.append("first")

    def second(session):
        lock_blob(session, sha)
        order.append("second")

    one = asyncio.ensure_future(asyncio.to_thread(db.call, first, write=True))
    await asyncio.to_thread(held.wait, 5)
    two = asyncio.ensure_future(asyncio.to_thread(db.call, second, write=True))
    await asyncio.sleep(0.5)
    assert order == []  # the second waits for the first's transaction
    release.set()
    await asyncio.gather(one, two)
    assert order == ["first", "second"]
