"""The storage protocol (DESIGN §9), each test on local disk and on S3 (moto's server over HTTP).

``raw()`` looks behind the storage layer's back — every file under the root, every object and
pending multipart upload in the bucket — so "leaves nothing behind" is checked where it matters.
"""

from __future__ import annotations

import hashlib
import json
import stat
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from aistudio_jupyter.errors import Conflict, InvalidInput, NotFound, Unavailable
from aistudio_jupyter.storage import Storage, storage_from_url
from aistudio_jupyter.storage.base import DEFAULT_PART_SIZE, MIB
from aistudio_jupyter.storage.local import LocalStorage
from aistudio_jupyter.storage.s3 import S3Storage

PART = 5 * MIB


@dataclass
class Backend:
    kind: str
    storage: Storage
    make: Callable[..., Storage]  # a fresh instance from the same URL, as after a server restart
    raw: Callable[[], list[str]]


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        root = tmp_path / "storage"
        url = root.as_uri()

        def raw() -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

        def make(part_size: int = PART) -> Storage:
            return storage_from_url(url, part_size=part_size)

    else:
        bucket = request.getfixturevalue("s3_bucket")
        url = bucket.url("data/root")

        def raw() -> list[str]:
            return bucket.object_names() + [f"pending:{k}" for k in bucket.pending_uploads()]

        def make(part_size: int = PART) -> Storage:
            return storage_from_url(url, s3_endpoint_url=bucket.endpoint_url, part_size=part_size)

    return Backend(request.param, make(), make, raw)


def blob(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes (a hash chain), so offsets matter."""
    out = bytearray()
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest()
    while len(out) < size:
        block = hashlib.sha512(block).digest()
        out += block * 64
    return bytes(out[:size])


def chunks(data: bytes, size: int = MIB):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_all(storage: Storage, key: str) -> bytes:
    with storage.open_reader(key) as reader:
        return b"".join(reader)


def test_streaming_write_of_many_parts_reads_back_identical(backend):
    data = blob(20 * MIB)
    with backend.storage.open_writer("blobs/big") as writer:
        for chunk in chunks(data):
            writer.write(chunk)
        info = writer.commit()
    assert info.size == len(data) == writer.bytes_written
    assert sha(read_all(backend.storage, "blobs/big")) == sha(data)
    if backend.kind == "s3":
        assert info.etag.endswith("-4"), "20 MiB in 5 MiB parts is a 4-part multipart upload"
    assert backend.storage.stat("blobs/big") == info


def test_nothing_is_visible_before_commit(backend):
    s = backend.storage
    writer = s.open_writer("blobs/pending")
    writer.write(blob(6 * MIB))  # past one part: on S3 a part is already uploaded
    assert not s.exists("blobs/pending")
    with pytest.raises(NotFound):
        s.stat("blobs/pending")
    with pytest.raises(NotFound):
        s.open_reader("blobs/pending")
    assert list(s.list("")) == []
    writer.commit()
    assert list(s.list("")) == ["blobs/pending"]


def test_abort_leaves_nothing_behind(backend):
    s = backend.storage
    writer = s.open_writer("blobs/aborted")
    for chunk in chunks(blob(12 * MIB)):
        writer.write(chunk)
    writer.abort()
    assert not s.exists("blobs/aborted")
    assert backend.raw() == []
    # leaving the block without commit (here by an exception) aborts as well
    with pytest.raises(RuntimeError, match="client went away"):
        with s.open_writer("blobs/aborted") as writer:
            writer.write(blob(7 * MIB))
            raise RuntimeError("client went away")
    assert backend.raw() == []


def test_ranged_reads(backend):
    s = backend.storage
    data = blob(1000, seed=3)
    with s.open_writer("r/obj") as writer:
        writer.write(data)
        writer.commit()
    assert s.read_range("r/obj", 0, 10) == data[:10]
    assert s.read_range("r/obj", 990, 100) == data[990:]
    assert s.read_range("r/obj", 123, 0) == b""
    assert s.read_range("r/obj", 1000, 5) == b""
    assert s.read_range("r/obj", 5000, 5) == b""
    with s.open_reader("r/obj", 100, 200) as reader:
        assert reader.read(7) == data[100:107]
        assert reader.read() == data[107:200]
        assert reader.read() == b""
    with s.open_reader("r/obj", 500) as reader:
        assert reader.read() == data[500:]
    for start, end in ((-1, None), (10, 5)):
        with pytest.raises(InvalidInput):
            s.open_reader("r/obj", start, end)
    with pytest.raises(NotFound):
        s.read_range("r/missing", 0, 10)


def test_stat_list_delete(backend):
    s = backend.storage
    before = datetime.now(timezone.utc) - timedelta(minutes=5)
    for key in ("a/b/1", "a/b/2", "a/c", "ab", "z"):
        with s.open_writer(key) as writer:
            writer.write(key.encode())
            writer.commit()
    assert sorted(s.list("")) == ["a/b/1", "a/b/2", "a/c", "ab", "z"]
    assert sorted(s.list("a/")) == ["a/b/1", "a/b/2", "a/c"]
    assert sorted(s.list("a")) == ["a/b/1", "a/b/2", "a/c", "ab"]
    assert sorted(s.list("a/b")) == ["a/b/1", "a/b/2"]
    assert list(s.list("nothing/")) == []

    info = s.stat("a/c")
    assert info.key == "a/c" and info.size == 3 and info.modified > before and info.modified.tzinfo is not None
    with s.open_writer("a/c") as writer:
        writer.write(b"longer now")
        writer.commit()
    assert s.stat("a/c").size == 10 and s.stat("a/c").etag != info.etag
    assert read_all(s, "a/c") == b"longer now"

    s.delete("a/c")
    s.delete("a/c")  # idempotent
    s.delete("never/existed")
    assert not s.exists("a/c")
    assert sorted(s.list("a/")) == ["a/b/1", "a/b/2"]

    path = s.local_path("a/b/1")
    if backend.kind == "local":
        assert path.read_bytes() == b"a/b/1"
    else:
        assert path is None


def test_move_renames_an_object(backend):
    s = backend.storage
    data = blob(3 * MIB, seed=9)
    with s.open_writer("uploads/tmp") as writer:
        writer.write(data)
        writer.commit()
    info = s.move("uploads/tmp", "blobs/sha256/ab/abcdef")
    assert info.size == len(data) and not s.exists("uploads/tmp")
    assert read_all(s, "blobs/sha256/ab/abcdef") == data
    with pytest.raises(NotFound):
        s.move("uploads/tmp", "blobs/other")


def append(storage: Storage, key: str, state, data: bytes, chunk: int = MIB):
    """One "request" of a resumable upload; the returned state goes through JSON like a database row."""
    with storage.open_append(key, json.loads(json.dumps(state)) if state is not None else None) as appender:
        for piece in chunks(data, chunk):
            appender.write(piece)
        return json.loads(json.dumps(appender.sync()))


def test_resumable_append_survives_restart_and_lost_acknowledgements(backend):
    key = "uploads/up_1"
    parts = [blob(n * MIB // 2, seed=i) for i, n in enumerate((6, 8, 12, 10, 4))]

    first = backend.storage
    state = append(first, key, None, parts[0])  # 3 MiB: below one part, staged as a tail
    state = append(first, key, state, parts[1], chunk=300_000)  # crosses the 5 MiB boundary
    assert state["offset"] == 7 * MIB
    # a request that dies before acknowledging: its bytes must never show up
    with first.open_append(key, state) as appender:
        appender.write(blob(MIB, seed=99))
    del first

    second = backend.make()  # the server restarted
    state = append(second, key, state, parts[2])
    assert state["offset"] == 13 * MIB
    # this request is acknowledged by storage but the server dies before persisting the state…
    append(second, key, state, parts[3])
    # …so the client resumes from the last persisted offset and sends those bytes again
    third = backend.make()
    state = append(third, key, state, parts[3])
    state = append(third, key, state, parts[4])

    expected = b"".join(parts)
    info = third.complete(state, "datasets/ds_1/v1")
    assert info.size == state["offset"] == len(expected)
    assert sha(read_all(third, "datasets/ds_1/v1")) == sha(expected)
    assert backend.raw() == [third.name("datasets/ds_1/v1") if backend.kind == "s3" else "datasets/ds_1/v1"]
    # a complete() retried after it finished (say the server died before recording it) is harmless
    assert third.complete(state, "datasets/ds_1/v1").size == len(expected)


def test_small_and_empty_uploads_complete(backend):
    s = backend.storage
    data = blob(700_000, seed=5)
    state = None
    for piece in chunks(data, 100_000):
        state = append(s, "uploads/small", state, piece)
    assert s.complete(state, "blobs/small").size == len(data)
    assert read_all(s, "blobs/small") == data

    empty = append(s, "uploads/empty", None, b"")
    assert s.complete(empty, "blobs/empty").size == 0
    assert read_all(s, "blobs/empty") == b""


def test_discard_leaves_nothing_behind(backend):
    s = backend.storage
    state = append(s, "uploads/gone", None, blob(7 * MIB))
    state = append(s, "uploads/gone", state, blob(MIB, seed=1))
    with s.open_append("uploads/gone", state) as appender:
        appender.write(blob(6 * MIB, seed=2))  # an unacknowledged part, too
    assert backend.raw() != []
    s.discard(state)
    assert backend.raw() == []
    s.discard(state)  # idempotent
    with pytest.raises(Conflict):
        s.complete(state, "blobs/never")
    assert backend.raw() == []


def test_starting_an_upload_again_drops_what_was_staged(backend):
    s = backend.storage
    append(s, "uploads/again", None, blob(6 * MIB))
    state = append(s, "uploads/again", None, b"fresh")
    assert s.complete(state, "blobs/again").size == 5
    assert read_all(s, "blobs/again") == b"fresh"
    assert len(backend.raw()) == 1


UNSAFE_KEYS = ["..", "../x", "a/../b", "a/./b", "/etc/passwd", "a\\b", "..\\x", "a\x00b", "%2e%2e/x", "a%2Fb", ".staging/x", "a/.tmp", "", "a//b", "a/", "é", "a b", "x" * 600, None, 7]
UNSAFE_PREFIXES = ["..", "../x", "a/../b", "/etc", "a\\b", "a\x00b", "%2e%2e", ".staging/", "a//b", "é", None]


def test_unsafe_keys_are_refused(backend):
    s = backend.storage

    def state(key):
        return {"v": 1, "backend": backend.kind, "key": key, "offset": 0, "upload_id": None, "parts": [], "segments": [], "garbage": []}

    calls = {
        "open_writer": lambda key: s.open_writer(key),
        "open_append": lambda key: s.open_append(key),
        "open_reader": lambda key: s.open_reader(key),
        "read_range": lambda key: s.read_range(key, 0, 1),
        "stat": lambda key: s.stat(key),
        "exists": lambda key: s.exists(key),
        "delete": lambda key: s.delete(key),
        "local_path": lambda key: s.local_path(key),
        "move from": lambda key: s.move(key, "ok"),
        "move to": lambda key: s.move("ok", key),
        "complete to": lambda key: s.complete(state("uploads/ok"), key),
        "complete from": lambda key: s.complete(state(key), "ok"),
        "discard": lambda key: s.discard(state(key)),
    }
    for key in UNSAFE_KEYS:
        for name, call in calls.items():
            with pytest.raises(InvalidInput):
                call(key)
                pytest.fail(f"{name}({key!r}) was accepted")
    for prefix in UNSAFE_PREFIXES:
        with pytest.raises(InvalidInput):
            s.list(prefix)  # refused at the call, not at the first next()
            pytest.fail(f"list({prefix!r}) was accepted")
    assert backend.raw() == []


def test_tampered_upload_state_is_refused(backend):
    s = backend.storage
    state = append(s, "uploads/t", None, blob(6 * MIB))
    for bad in ({**state, "offset": -1}, {**state, "backend": "other"}, {**state, "v": 2}, "not a dict"):
        with pytest.raises(InvalidInput):
            s.complete(bad, "blobs/t")
    if backend.kind == "s3":
        # segment names are checked, so a state cannot point deletes outside its staging area
        with pytest.raises(InvalidInput):
            s.open_append("uploads/t", {**state, "garbage": ["../../blobs/precious"]})
        with pytest.raises(InvalidInput):
            s.complete({**state, "offset": state["offset"] + 1}, "blobs/t")
    assert s.complete(state, "blobs/t").size == 6 * MIB


def test_memory_stays_flat_while_writing_64_mib(backend):
    s = backend.make(part_size=DEFAULT_PART_SIZE)
    chunk = blob(MIB, seed=4)
    tracemalloc.start()
    try:
        with s.open_writer("blobs/huge") as writer:
            for _ in range(64):
                writer.write(chunk)
            writer.commit()
        state = None
        for _ in range(4):  # four 16 MiB "requests" of a resumable upload
            with s.open_append("uploads/huge", state) as appender:
                for _ in range(16):
                    appender.write(chunk)
                state = appender.sync()
        s.complete(state, "blobs/huge2")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.stat("blobs/huge").size == s.stat("blobs/huge2").size == 64 * MIB
    assert peak < 32 * MIB, f"peak {peak / MIB:.1f} MiB while writing 2 × 64 MiB"


def test_factory_builds_each_backend_from_its_url(backend):
    s = backend.storage
    assert isinstance(s, LocalStorage if backend.kind == "local" else S3Storage)
    again = backend.make()
    assert type(again) is type(s) and again.url == s.url
    for url in ("http://example.com/x", "file://otherhost/x", "file:relative", "s3://", "s3://Bad_Bucket/x", "s3://bucket/../x", ""):
        with pytest.raises(ValueError):
            storage_from_url(url)
    with pytest.raises(ValueError):
        storage_from_url("s3://bucket/x", part_size=MIB)


def test_local_files_and_directories_are_private(tmp_path):
    # local only: S3 has no modes; the storage root may hold every user's data
    s = LocalStorage((tmp_path / "root").as_uri())
    with s.open_writer("a/b/c") as writer:
        writer.write(b"x")
        writer.commit()
    state = append(s, "uploads/u", None, b"y")
    for path in (tmp_path / "root", tmp_path / "root" / "a", tmp_path / "root" / "a" / "b", tmp_path / "root" / ".staging"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for path in (tmp_path / "root" / "a" / "b" / "c", *(tmp_path / "root" / ".staging").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert s.complete(state, "d").size == 1


def test_unreachable_s3_is_unavailable(s3_bucket):
    # S3 only: a dead endpoint is a 503 for the client, never a 500
    from tests.live import free_port

    s = S3Storage(s3_bucket.url(), endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    for call in (lambda: s.stat("k"), lambda: s.open_reader("k"), lambda: list(s.list("")), lambda: s.open_writer("k").commit()):
        with pytest.raises(Unavailable):
            call()
