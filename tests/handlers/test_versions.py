"""Dataset versions: formats told from content with their schemas, keyset-paginated lists,
downloads with Range and Content-Disposition, and small files through multipart/form-data."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import zipfile
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import requests

from .test_uploads import ELF, PNG, TUS, auth, create, metadata_header, patch, storage_files

MiB = 1024 * 1024


def table() -> pa.Table:
    return pa.table({"id": pa.array(range(1000), pa.int64()), "score": pa.array([i / 7 for i in range(1000)]), "label": pa.array([f"c{i % 3}" for i in range(1000)])})


def parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pq.write_table(table(), buf)
    return buf.getvalue()


def arrow_bytes() -> bytes:
    buf = io.BytesIO()
    feather.write_feather(table(), buf)  # Feather v2 = the Arrow IPC file format
    return buf.getvalue()


def images_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(5):
            zf.writestr(f"train/cat/{i}.png", PNG + bytes([i]) * 100)
        zf.writestr("train/dog/0.jpg", b"\xff\xd8\xff\xe0" + bytes(100))
        zf.writestr("labels.csv", "file,label\ntrain/cat/0.png,cat\n")
        zf.writestr("__MACOSX/train/._0.png", b"\x00\x05\x16\x07" + bytes(40))
    return buf.getvalue()


FORMATS = [
    ("csv", b"a,b,c\n1,x,2.5\n2,y,3.5\n", {"columns": [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}, {"name": "c", "type": "double"}]}, 2),
    ("tsv", b"a\tb\n1\thello, world\n2\tbye\n", {"columns": [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}]}, 2),
    ("json", json.dumps([{"a": 1, "b": "x"}, {"a": 2, "b": None}]).encode(), {"kind": "records", "columns": [{"name": "a", "type": "int64"}, {"name": "b", "type": "string"}]}, 2),
    ("jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', {"columns": [{"name": "a", "type": "int64"}]}, 3),
    ("parquet", parquet_bytes(), {"columns": [{"name": "id", "type": "int64"}, {"name": "score", "type": "double"}, {"name": "label", "type": "string"}]}, 1000),
    ("arrow", arrow_bytes(), {"ipc": "file", "columns": [{"name": "id", "type": "int64"}, {"name": "score", "type": "double"}, {"name": "label", "type": "string"}]}, 1000),
    ("zip", images_zip(), {"kind": "images", "images": 6, "image_types": {"png": 5, "jpeg": 1}}, 6),
]


async def test_formats_are_told_from_content_with_their_schema(api):
    for fmt, data, schema, rows in FORMATS:
        # every file claims to be a CSV: the name is metadata, never the format
        upload_id = await create(api, len(data), name=f"set-{fmt}", filename="data.csv", content_type="text/csv")
        reply = await patch(api, upload_id, 0, data)
        assert reply.status == 204, (fmt, reply.body)
        version = (await api("GET", f"datasets/{reply.headers['AIStudio-Dataset']}/versions/latest")).body
        assert version["format"] == fmt, (fmt, version)
        assert {k: version["schema"][k] for k in schema} == schema, (fmt, version["schema"])
        assert version["row_count"] == rows, fmt
        assert version["sha256"] == hashlib.sha256(data).hexdigest()


async def test_versions_list_get_and_download(api, jp_fetch):
    ds = (await api("POST", "datasets", json_body={"name": "growing"})).body
    contents = [b"n\n" + b"%d\n" % i * (i + 1) for i in range(7)]
    for data in contents:
        upload_id = await create(api, len(data), dataset=ds["id"], filename="naïve name \"quoted\".csv")
        assert (await patch(api, upload_id, 0, data)).status == 204

    seen, cursor = [], None
    while True:
        page = await api("GET", f"datasets/{ds['id']}/versions", params={"limit": "3", **({"cursor": cursor} if cursor else {})})
        assert page.status == 200
        seen += [v["version"] for v in page.body["items"]]
        cursor = page.body["next_cursor"]
        if not cursor:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    oldest_first = await api("GET", f"datasets/{ds['id']}/versions", params={"sort": "version", "limit": "2"})
    assert [v["version"] for v in oldest_first.body["items"]] == [1, 2]
    assert (await api("GET", f"datasets/{ds['id']}")).body["latest_version"] == 7

    third = (await api("GET", f"datasets/{ds['id']}/versions/3")).body
    assert third["sha256"] == hashlib.sha256(contents[2]).hexdigest()
    assert (await api("GET", f"datasets/{ds['id']}/versions/latest")).body["version"] == 7

    url = f"datasets/{ds['id']}/versions/7/download"

    async def fetch(headers=None):  # the bytes as served, not parsed as JSON
        response = await jp_fetch("aistudio", "api", *url.split("/"), headers={**auth(), **(headers or {})}, raise_error=False)
        return response.code, response.body, response.headers

    status, body, headers = await fetch()
    assert status == 200 and body == contents[6]
    assert headers["Content-Type"] == "text/csv" and headers["Accept-Ranges"] == "bytes"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="na_ve name _quoted_.csv"')
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == 'naïve name "quoted".csv'

    status, body, headers = await fetch({"Range": "bytes=2-5"})
    assert status == 206 and body == contents[6][2:6] and headers["Content-Range"] == f"bytes 2-5/{len(contents[6])}"
    status, body, _ = await fetch({"Range": "bytes=-3"})
    assert status == 206 and body == contents[6][-3:]
    full = await api("GET", url)
    outside = await api("GET", url, headers={"Range": f"bytes={len(contents[6])}-"})
    assert outside.status == 416 and outside.error["code"] == "range_not_satisfiable"
    assert outside.headers["Content-Range"] == f"bytes */{len(contents[6])}"
    cached = await api("GET", url, headers={"If-None-Match": full.headers["ETag"]})
    assert cached.status == 304 and not cached.body

    # other users see nothing; bad version numbers are clear errors
    assert (await api("GET", f"datasets/{ds['id']}/versions", user="carol")).status == 404
    assert (await api("GET", url, user="carol")).status == 404
    assert (await api("GET", f"datasets/{ds['id']}/versions/99")).status == 404
    bad = await api("GET", f"datasets/{ds['id']}/versions/abc")
    assert bad.status == 422 and bad.error["code"] == "invalid"
    assert (await api("GET", f"datasets/{ds['id']}/versions", params={"bogus": "1"})).status == 422


def raw_request(port: int, request_line: str, headers: dict[str, str]) -> bytes:
    """Send only a request's head and read the answer: what a client sees before its body."""
    head = "\r\n".join([f"{request_line} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]) + "\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary--x") -> tuple[bytes, str]:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def test_small_files_through_multipart(api, jp_http_port, jp_base_url, tmp_path):
    ds = (await api("POST", "datasets", json_body={"name": "small"})).body
    url = f"datasets/{ds['id']}/files"
    # bigger than tornado's read chunks, with lines that look like a boundary but are not one
    data = b"k,v\n" + b"".join(b"%d,\r\n--b0undary--y\n" % i for i in range(20_000))
    body, ctype = multipart([("file", "pairs.csv", data)])
    reply = await api("POST", url, body=body, headers={"Content-Type": ctype})
    assert reply.status == 201, reply.body
    assert reply.body["version"] == 1 and reply.body["sha256"] == hashlib.sha256(data).hexdigest() and reply.body["files"][0]["path"] == "pairs.csv"

    # a real client: requests builds its own multipart body
    parquet = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2, 3]}), parquet)
    api_url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}aistudio/api/{url}"
    sent = await asyncio.to_thread(requests.post, api_url, headers=auth(), files={"file": ("x.parquet", parquet.getvalue())})
    assert sent.status_code == 201, sent.text
    assert sent.json()["version"] == 2 and sent.json()["format"] == "parquet" and sent.json()["schema"]["columns"] == [{"name": "x", "type": "int64"}]

    refused = [
        (multipart([("file", "tool", ELF)]), 415),
        (multipart([("other", "a.csv", b"a\n1\n")]), 422),
        (multipart([("file", "a.csv", b"a\n1\n"), ("file", "b.csv", b"b\n2\n")]), 422),
        ((b"--b0undary--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na\n1\n", ctype), 400),
        ((b"a,b\n1,2\n", "text/csv"), 415),
        ((b"", "multipart/form-data"), 400),
    ]
    for (raw, content_type), status in refused:
        bad = await api("POST", url, body=raw, headers={"Content-Type": content_type})
        assert bad.status == status, (raw[:80], bad.body)
        assert bad.error["message"] and "Traceback" not in json.dumps(bad.body)
    # refused from its Content-Length, before a byte of the body is read
    too_big = await asyncio.to_thread(raw_request, jp_http_port, f"POST {jp_base_url}aistudio/api/{url}", {"Content-Type": ctype, "Content-Length": str(65 * MiB), **auth()})
    assert too_big.startswith(b"HTTP/1.1 413") and b'"payload_too_large"' in too_big
    # nothing partial: two versions, and only their two blobs on disk
    assert [v["version"] for v in (await api("GET", f"datasets/{ds['id']}/versions")).body["items"]] == [2, 1]
    assert len(storage_files(tmp_path / "storage")) == 2
    # another user cannot write into the dataset
    assert (await api("POST", url, user="carol", body=body, headers={"Content-Type": ctype})).status == 404


@pytest.fixture
def tiny_quota(aistudio_config):
    aistudio_config["tiers"] = {"default": {"storage_bytes": 100}}


async def test_quota_is_checked_again_on_completion(tiny_quota, api, tmp_path):
    data = b"a\n" + b"1\n" * 30
    first = await create(api, len(data), name="q1")
    assert (await patch(api, first, 0, data)).status == 204
    # fits on its own but not beside what is stored now
    assert (await api("POST", "uploads", body=b"", headers={**TUS, "Upload-Length": "70", "Upload-Metadata": metadata_header(name="q2")})).status == 507
    ds = (await api("GET", "datasets")).body["items"][0]
    body, ctype = multipart([("file", "more.csv", data * 2)])
    over = await api("POST", f"datasets/{ds['id']}/files", body=body, headers={"Content-Type": ctype})
    assert over.status == 507 and over.error["code"] == "insufficient_storage"
    assert (await api("GET", f"datasets/{ds['id']}")).body["latest_version"] == 1
    assert len(storage_files(tmp_path / "storage")) == 1


async def test_openapi_documents_the_upload_routes(api):
    doc = (await api("GET", "openapi.json")).body
    assert set(doc["paths"]["/uploads/{id}"]) == {"get", "head", "patch", "delete"}
    assert {"412", "460", "423", "410"} <= set(doc["paths"]["/uploads/{id}"]["patch"]["responses"])
    assert "schema" in doc["components"]["schemas"]["VersionOut"]["properties"]
