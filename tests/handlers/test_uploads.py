"""tus uploads with a real client (tuspy): cut off, resumed, completed into dataset versions
whose sha256 is the file's, on SQLite and PostgreSQL, local disk and S3; every bad input gets
its status and the JSON envelope, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
import random
import socket
import time
import zipfile
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from ..conftest import TOKENS
from ..live import LiveServer

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


class Sha256Uploader(Uploader):
    """tuspy's uploader, checksumming each chunk with sha256 (its default is sha1)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def make_csv(path: Path, size: int, seed: int = 0) -> str:
    """A CSV of about ``size`` bytes; returns its sha256."""
    rng = random.Random(seed)
    words = ["setosa", "versicolor", "virginica"]
    lines = ["id,sepal_length,petal_width,species\n"]
    total = len(lines[0])
    i = 0
    while total < size:
        line = f"{i},{rng.random() * 8:.4f},{rng.random() * 3:.4f},{words[i % 3]}\n"
        lines.append(line)
        total += len(line)
        i += 1
    data = "".join(lines).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def metadata_header(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.fixture
def server_url(jp_fetch, jp_http_port, jp_base_url):
    """The API's URL for blocking clients (jp_fetch is what makes the test server listen)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}aistudio/api"


@pytest.fixture
def app(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


def storage_files(root: Path) -> list[str]:
    """Every file under the local storage root, staging and temp areas included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"token {TOKENS[user]}"}


def assert_tus_error(reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers.get("Tus-Resumable") == "1.0.0"
    if reply.body:  # HEAD answers have no body
        error = reply.body["error"]
        assert error["message"] and isinstance(error["details"], dict)
        if code:
            assert error["code"] == code


async def create(api, length: int, user: str = "alice", **meta) -> str:
    meta.setdefault("name", "iris")
    reply = await api("POST", "uploads", user=user, body=b"", headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata_header(**meta)})
    assert reply.status == 201, reply.body
    return reply.headers["Location"].rsplit("/", 1)[1]


async def patch(api, upload_id: str, offset: int, data: bytes, user: str = "alice", **headers):
    return await api(
        "PATCH", f"uploads/{upload_id}", user=user, body=data, headers={**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream", **headers}
    )


async def upload_bytes(api, data: bytes, **meta):
    """Create and send ``data`` in one PATCH; the last reply."""
    upload_id = await create(api, len(data), **meta)
    return upload_id, await patch(api, upload_id, 0, data)


def cut_patch(url: str, headers: dict[str, str], declared: int, payload: bytes) -> None:
    """A PATCH that announces ``declared`` bytes, sends ``payload`` and hangs up."""
    parts = url.split("/", 3)
    host, port = parts[2].split(":")
    head = [f"PATCH /{parts[3]} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {declared}", "Content-Type: application/offset+octet-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)


async def wait_for_offset(api, upload_id: str, offset: int, timeout: float = 20) -> None:
    """The server records a cut connection's bytes once it notices the hang-up."""
    deadline = time.monotonic() + timeout
    while True:
        head = await api("HEAD", f"uploads/{upload_id}", headers=TUS)
        if head.status == 200 and int(head.headers["Upload-Offset"]) == offset:
            return
        assert time.monotonic() < deadline, head.headers.get("Upload-Offset")
        await asyncio.sleep(0.05)


# -- real client: cut off, resumed, completed ---------------------------------------------


async def test_tuspy_upload_cut_off_and_resumed(api, server_url, tmp_path):
    path = tmp_path / "iris.csv"
    sha = make_csv(path, 24 * MiB)
    size = path.stat().st_size
    client = TusClient(f"{server_url}/uploads", headers=auth())

    options = await api("OPTIONS", "uploads")
    assert options.status == 204
    assert options.headers["Tus-Version"] == "1.0.0" and "checksum" in options.headers["Tus-Extension"].split(",")
    assert "sha256" in options.headers["Tus-Checksum-Algorithm"].split(",") and int(options.headers["Tus-Max-Size"]) > size

    # two 4 MiB chunks, with checksums, then the client stops
    first = Sha256Uploader(file_path=str(path), client=client, chunk_size=4 * MiB, upload_checksum=True, metadata={"filename": "iris ü.csv", "name": "iris"})
    await asyncio.to_thread(first.upload_chunk)
    await asyncio.to_thread(first.upload_chunk)
    upload_id = first.url.rsplit("/", 1)[1]
    head = await api("HEAD", f"uploads/{upload_id}", headers=TUS)
    assert head.status == 200 and head.headers["Upload-Offset"] == str(8 * MiB) and head.headers["Upload-Length"] == str(size)
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Upload-Expires"].endswith("GMT")
    assert "filename" in head.headers["Upload-Metadata"]

    # then the connection drops in the middle of a request that announced the rest of the file
    with open(path, "rb") as f:
        f.seek(8 * MiB)
        payload = f.read(3 * MiB + 123)
    await asyncio.to_thread(cut_patch, first.url, {**auth(), **TUS, "Upload-Offset": str(8 * MiB)}, size - 8 * MiB, payload)
    await wait_for_offset(api, upload_id, 8 * MiB + len(payload))
    assert (await api("GET", "datasets")).body["items"] == []  # nothing visible yet

    # a new client asks where to resume and sends the rest
    # (tuspy asks with HEAD in its constructor: a blocking call, so not on the server's loop)
    resumed = await asyncio.to_thread(Uploader, file_path=str(path), url=first.url, client=client, chunk_size=8 * MiB)
    assert resumed.offset == 8 * MiB + len(payload)
    try:
        await asyncio.to_thread(resumed.upload)
    except Exception as exc:
        raise AssertionError(getattr(exc, "response_content", None)) from exc
    assert resumed.request.response_headers["upload-offset"] == str(size)

    status = await api("GET", f"uploads/{upload_id}")
    assert status.body["state"] == "completed" and status.body["version"] == 1
    versions = await api("GET", f"datasets/{status.body['dataset_id']}/versions")
    [version] = versions.body["items"]
    assert version["sha256"] == sha and version["size_bytes"] == size and version["format"] == "csv"
    assert [c["name"] for c in version["schema"]["columns"]] == ["id", "sepal_length", "petal_width", "species"]
    assert version["files"][0]["path"] == "iris ü.csv"
    dataset = (await api("GET", f"datasets/{status.body['dataset_id']}")).body
    assert dataset["name"] == "iris" and dataset["latest_version"] == 1 and dataset["size_bytes"] == size
    # the bytes served back are the file's
    download = await api("GET", f"datasets/{dataset['id']}/versions/1/download")
    assert hashlib.sha256(download.body).hexdigest() == sha


async def test_resume_after_server_restart(tmp_path, database_url):
    path = tmp_path / "big.csv"
    sha = make_csv(path, 20 * MiB, seed=3)
    workdir = tmp_path / "live"
    with LiveServer(workdir, database_url) as server:
        client = TusClient(server.api("/uploads"), headers=server.auth("bob"))
        uploader = Uploader(file_path=str(path), client=client, chunk_size=6 * MiB, metadata={"filename": "big.csv", "name": "big"})
        uploader.upload_chunk()
        upload_path = uploader.url.split(server.base, 1)[1]
    # same database, same storage, new process (and port): the running hash is gone
    with LiveServer(workdir, database_url) as server:
        client = TusClient(server.api("/uploads"), headers=server.auth("bob"))
        resumed = Uploader(file_path=str(path), url=server.base + upload_path, client=client, chunk_size=6 * MiB)
        assert resumed.offset == 6 * MiB
        resumed.upload()
        with server.client("bob") as http:
            status = http.get(f"/uploads/{upload_path.rsplit('/', 1)[1]}").json()
            assert status["state"] == "completed"
            [version] = http.get(f"/datasets/{status['dataset_id']}/versions").json()["items"]
    assert version["sha256"] == sha and version["size_bytes"] == path.stat().st_size


@pytest.fixture
def s3_config(aistudio_config, s3_bucket):
    aistudio_config["storage_url"] = s3_bucket.url("aistudio")
    aistudio_config["s3_endpoint_url"] = s3_bucket.endpoint_url
    return s3_bucket


async def test_s3_upload_cut_off_and_resumed_stores_one_blob(s3_config, api, server_url, tmp_path):
    bucket = s3_config
    path = tmp_path / "s3.csv"
    sha = make_csv(path, 14 * MiB, seed=5)
    size = path.stat().st_size
    client = TusClient(f"{server_url}/uploads", headers=auth())
    first = Uploader(file_path=str(path), client=client, chunk_size=3 * MiB, metadata={"filename": "s3.csv", "name": "on-s3"})
    await asyncio.to_thread(first.upload_chunk)  # below S3's 5 MiB part minimum: a staged segment
    await asyncio.to_thread(first.upload_chunk)
    resumed = await asyncio.to_thread(Uploader, file_path=str(path), url=first.url, client=client, chunk_size=5 * MiB)
    assert resumed.offset == 6 * MiB
    await asyncio.to_thread(resumed.upload)

    upload_id = first.url.rsplit("/", 1)[1]
    status = (await api("GET", f"uploads/{upload_id}")).body
    version = (await api("GET", f"datasets/{status['dataset_id']}/versions/latest")).body
    assert version["sha256"] == sha and version["size_bytes"] == size
    # the bytes are at their content address and nothing staged is left behind
    assert bucket.object_names() == [f"aistudio/blobs/sha256/{sha[:2]}/{sha}"]
    assert bucket.pending_uploads() == []
    ranged = await api("GET", f"datasets/{status['dataset_id']}/versions/1/download", headers={"Range": "bytes=100-199"})
    assert ranged.status == 206 and ranged.body == path.read_bytes()[100:200]


@pytest.fixture
def named_storage_class(aistudio_config):
    # the backend is a configurable class; the default picks it from the URL's scheme
    aistudio_config["storage_class"] = "aistudio_jupyter.storage.local.LocalStorage"


async def test_same_bytes_twice_are_stored_once(named_storage_class, api, tmp_path):
    data = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(50_000))
    _, first = await upload_bytes(api, data, name="squares")
    upload_id, second = await upload_bytes(api, data, name="squares-again", filename="sq.csv")
    assert first.status == second.status == 204
    sha = hashlib.sha256(data).hexdigest()
    assert storage_files(tmp_path / "storage") == [f"blobs/sha256/{sha[:2]}/{sha}"]
    dataset = second.headers["AIStudio-Dataset"]
    assert second.headers["AIStudio-Version"] == "1" and second.headers["AIStudio-Version-Id"].startswith("dv_")
    assert (await api("GET", f"datasets/{dataset}/versions/1")).body["sha256"] == sha

    # a new version of the same dataset, by id; quota counts both versions
    upload_id = await create(api, len(data), dataset=dataset, name="ignored: dataset wins")
    third = await patch(api, upload_id, 0, data)
    assert third.status == 204 and third.headers["AIStudio-Version"] == "2"
    assert (await api("GET", f"datasets/{dataset}")).body["size_bytes"] == 2 * len(data)
    assert len(storage_files(tmp_path / "storage")) == 1


# -- refused requests ----------------------------------------------------------------------


@pytest.fixture
def small_tier(aistudio_config):
    aistudio_config["tiers"] = {"default": {"upload_bytes": 1 * MiB, "storage_bytes": 2 * MiB}}


async def test_limits_are_refused_early(small_tier, api, tmp_path):
    too_big = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": str(MiB + 1), "Upload-Metadata": metadata_header(name="big")})
    assert_tus_error(too_big, 413, "payload_too_large")
    assert too_big.body["error"]["details"]["limit"] == MiB

    # 1 MiB fits one upload, but three would pass the 2 MiB storage quota: in-flight ones count
    await create(api, MiB, name="one")
    await create(api, MiB // 2, name="two")
    over = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": str(MiB), "Upload-Metadata": metadata_header(name="three")})
    assert_tus_error(over, 507, "insufficient_storage")
    assert "quota" in over.body["error"]["message"].lower() and over.body["error"]["details"]["limit_bytes"] == 2 * MiB
    assert (await api("GET", "datasets")).body["items"] == []


ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(200)


def zip_of(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buf.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.mark.parametrize(
    "data, status, code",
    [
        (ELF, 415, "unsupported_media_type"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(100), 415, "unsupported_media_type"),
        (b"#!/bin/sh\nrm -rf /\n", 415, "unsupported_media_type"),
        (os.urandom(4096), 415, "unsupported_media_type"),
        (zip_of({"ok.png": PNG, "../evil.png": PNG}), 422, "invalid"),
        (zip_of({"/etc/evil.png": PNG}), 422, "invalid"),
        (zip_of({"dir\\evil.png": PNG}), 422, "invalid"),
        (zip_of({"a.png": PNG, "bomb.png": PNG + bytes(20 * MiB)}, zipfile.ZIP_DEFLATED), 422, "invalid"),
        (zip_of({"a.png": PNG, "tool": ELF}), 415, "unsupported_media_type"),
        (zip_of({"inner.zip": zip_of({"a.png": PNG})}), 415, "unsupported_media_type"),
        (b"PAR1 not really parquet PAR1", 422, "invalid"),
    ],
    ids=["elf", "pe", "shebang", "random", "dotdot", "absolute", "backslash", "bomb", "zip-executable", "nested-zip", "bad-parquet"],
)
async def test_bad_files_fail_and_leave_nothing(api, tmp_path, data, status, code):
    upload_id, reply = await upload_bytes(api, data, name="bad", filename="innocent.csv")
    assert_tus_error(reply, status, code)
    # the upload is over, nothing became visible and no byte is left anywhere
    assert_tus_error(await api("HEAD", f"uploads/{upload_id}", headers=TUS), 410)
    failed = (await api("GET", f"uploads/{upload_id}")).body
    assert failed["state"] == "failed" and failed["error"] and failed["version"] is None
    assert (await api("GET", "datasets")).body["items"] == []
    assert storage_files(tmp_path / "storage") == []


async def test_protocol_errors(api, tmp_path):
    data = b"x,y\n1,2\n3,4\n"
    upload_id = await create(api, len(data), filename="xy.csv")

    assert_tus_error(await patch(api, upload_id, 5, data[5:]), 409, "conflict")
    bad_sum = "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert_tus_error(await patch(api, upload_id, 0, data[:4], **{"Upload-Checksum": bad_sum}), 460, "checksum_mismatch")
    # the mismatched chunk was discarded
    assert (await api("HEAD", f"uploads/{upload_id}", headers=TUS)).headers["Upload-Offset"] == "0"
    good_sum = "sha256 " + base64.b64encode(hashlib.sha256(data[:4]).digest()).decode()
    ok = await patch(api, upload_id, 0, data[:4], **{"Upload-Checksum": good_sum})
    assert ok.status == 204 and ok.headers["Upload-Offset"] == "4" and ok.headers["Tus-Resumable"] == "1.0.0"

    assert_tus_error(await patch(api, upload_id, 4, data[4:], **{"Upload-Checksum": "md5 AAAA"}), 400, "bad_request")
    assert_tus_error(await patch(api, upload_id, 4, data[4:], **{"Content-Type": "application/json"}), 415)
    assert_tus_error(await patch(api, upload_id, 4, data[4:] + b"extra"), 413)
    no_version = await api("PATCH", f"uploads/{upload_id}", body=data[4:], headers={"Upload-Offset": "4", "Content-Type": "application/offset+octet-stream"})
    assert_tus_error(no_version, 412)
    assert no_version.headers["Tus-Version"] == "1.0.0"

    assert_tus_error(await api("HEAD", "uploads/up_doesnotexist", headers=TUS), 404)
    assert_tus_error(await patch(api, "up_doesnotexist", 0, b"x"), 404, "not_found")
    # another user's upload is as unknown as a missing one
    assert_tus_error(await api("HEAD", f"uploads/{upload_id}", user="bob", headers=TUS), 404)
    assert_tus_error(await patch(api, upload_id, 4, data[4:], user="bob"), 404, "not_found")
    assert_tus_error(await api("DELETE", f"uploads/{upload_id}", user="bob", headers=TUS), 404)

    for raw in ["name", "name !!!", "name a,name b", "filename " + base64.b64encode(b"\xff").decode()]:
        bad = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": raw})
        assert_tus_error(bad, 400 if raw != "name" else 422)
    for length in ["", "-1", "1e3", "0", "99999999999999999999"]:
        bad = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": length, "Upload-Metadata": metadata_header(name="n")})
        assert bad.status in (400, 413), (length, bad.body)
    missing = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": metadata_header(dataset="ds_nope")})
    assert_tus_error(missing, 404, "not_found")

    # termination
    assert (await api("DELETE", f"uploads/{upload_id}", headers=TUS)).status == 204
    assert_tus_error(await api("HEAD", f"uploads/{upload_id}", headers=TUS), 404)
    assert storage_files(tmp_path / "storage") == []


async def test_name_taken_conflicts_and_creation_with_upload(api):
    await api("POST", "datasets", json_body={"name": "taken"})
    taken = await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": metadata_header(name="taken")})
    assert_tus_error(taken, 409, "conflict")
    assert taken.body["error"]["details"]["id"].startswith("ds_")

    # creation-with-upload: the whole file in the POST
    data = b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'
    created = await api(
        "POST",
        "uploads",
        body=data,
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata_header(name="lines", filetype="text/html"), "Content-Type": "application/offset+octet-stream"},
    )
    assert created.status == 201, created.body
    assert created.headers["Upload-Offset"] == str(len(data)) and created.headers["Location"].startswith("/a%40b/aistudio/api/uploads/up_")
    version = (await api("GET", f"datasets/{created.headers['AIStudio-Dataset']}/versions/1")).body
    assert version["format"] == "jsonl" and version["row_count"] == 2
    assert version["files"][0]["content_type"] == "application/x-ndjson"  # never the client's text/html


async def test_expired_uploads_are_cleaned_up(api, app, tmp_path):
    upload_id = await create(api, 100, filename="slow.csv")
    assert (await patch(api, upload_id, 0, b"a,b\n1,2\n")).status == 204
    assert storage_files(tmp_path / "storage") != []
    app.services.uploads.expiry_seconds = 0.2
    # the acknowledgement that follows sets the new, short expiry
    assert (await patch(api, upload_id, 8, b"3,4\n")).status == 204
    deadline = time.monotonic() + 10
    while (await app.services.uploads.clean_up())["expired"] == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert_tus_error(await api("HEAD", f"uploads/{upload_id}", headers=TUS), 410)
    assert_tus_error(await patch(api, upload_id, 12, b"5,6\n"), 410, "gone")
    assert storage_files(tmp_path / "storage") == []
    expired = (await api("GET", f"uploads/{upload_id}")).body
    assert expired["state"] == "expired" and expired["offset"] == 12
    # swept once: the next pass has nothing left to do, and old records go in the end
    assert (await app.services.uploads.clean_up())["expired"] == 0
    app.services.uploads.retention_seconds = 0
    assert (await app.services.uploads.clean_up())["purged"] == 1
    assert (await api("GET", f"uploads/{upload_id}")).status == 404


async def test_fuzzed_headers_and_bodies_never_fail_the_server(api):
    rng = random.Random(1234)
    upload_id = await create(api, 1000, filename="f.csv")
    junk = ["", " ", "-1", "1.5", "9" * 40, "\u00e9", "sha256", "sha256 ====", "a b c", ",,,", "x" * 5000, "0x10", "+5"]
    header_names = ["Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Checksum", "Content-Type", "Upload-Defer-Length", "Tus-Resumable"]
    failures = []
    for i in range(60):
        headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        for name in rng.sample(header_names, rng.randint(1, 4)):
            headers[name] = rng.choice(junk)
        body = rng.randbytes(rng.choice([0, 1, 100, 5000]))
        method, path = rng.choice([("POST", "uploads"), ("PATCH", f"uploads/{upload_id}"), ("HEAD", f"uploads/{upload_id}"), ("DELETE", "uploads/up_x"), ("PATCH", "uploads/%00")])
        try:
            reply = await api(method, path, body=body if method in ("POST", "PATCH") else None, headers={k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()})
        except Exception as exc:  # a header the HTTP client itself refuses to send
            if "header" in str(exc).lower():
                continue
            raise
        if not 200 <= reply.status < 500:
            failures.append((method, headers, reply.status, reply.body))
    assert not failures, failures[:3]
    # and the server still serves the upload
    assert (await api("HEAD", f"uploads/{upload_id}", headers=TUS)).status in (200, 410)


async def test_tus_client_errors_surface_with_status(small_tier, server_url, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"a,b\n" * (MiB // 2))
    client = TusClient(f"{server_url}/uploads", headers=auth())
    with pytest.raises(TusCommunicationError) as refused:
        await asyncio.to_thread(lambda: Uploader(file_path=str(path), client=client, metadata={"name": "too-big"}).upload())
    assert refused.value.status_code == 413
    # and plain HTTP clients get the envelope
    reply = await asyncio.to_thread(requests.post, f"{server_url}/uploads", headers={**auth(), **TUS, "Upload-Length": str(2 * MiB)})
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "payload_too_large"
