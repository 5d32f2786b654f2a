"""The must-show at full size: an unmodified tus client (tuspy) uploads a 256 MiB file, is cut off
mid-way, resumes, and the version's sha256 is the file's. The file is written in chunks and
streamed from disk: neither the test nor the client holds it in memory.

Runs on SQLite only: the bytes path (tus handler → storage) does not touch the database, whose
part (a few rows per PATCH) is the same at 24 MiB, which test_uploads.py runs on both backends;
a second 256 MiB round on PostgreSQL would double the suite's longest test for no new behaviour.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from tusclient.client import TusClient
from tusclient.uploader import Uploader

from .test_uploads import TUS, Sha256Uploader, auth, cut_patch, server_url, wait_for_offset  # noqa: F401 -- server_url is a fixture

MiB = 1024 * 1024
SIZE = 256 * MiB
LINE = 64  # 63 hex digits and a newline


def write_big_csv(path: Path, size: int = SIZE, chunk: int = 8 * MiB) -> str:
    """A one-column CSV of random hex lines, exactly ``size`` bytes, written a chunk at a time; its sha256."""
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        header = b"h" * (LINE - 1) + b"\n"  # a header line of the same width keeps the arithmetic whole
        f.write(header)
        hasher.update(header)
        left = size - LINE
        while left:
            lines = min(chunk, left) // LINE
            digits = np.frombuffer(os.urandom(lines * (LINE - 1) // 2 + 1).hex().encode()[: lines * (LINE - 1)], dtype=np.uint8)
            block = np.empty((lines, LINE), dtype=np.uint8)
            block[:, : LINE - 1] = digits.reshape(lines, LINE - 1)
            block[:, LINE - 1] = ord("\n")
            data = block.tobytes()
            f.write(data)
            hasher.update(data)
            left -= len(data)
    return hasher.hexdigest()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # once: see the module's docstring
async def test_tuspy_256mib_cut_off_and_resumed(api, server_url, tmp_path):
    path = tmp_path / "big.csv"
    sha = await asyncio.to_thread(write_big_csv, path)
    assert path.stat().st_size == SIZE
    client = TusClient(f"{server_url}/uploads", headers=auth())

    first = Sha256Uploader(file_path=str(path), client=client, chunk_size=32 * MiB, upload_checksum=True, metadata={"filename": "big.csv", "name": "big"})
    for _ in range(3):
        await asyncio.to_thread(first.upload_chunk)
    upload_id = first.url.rsplit("/", 1)[1]
    # mid-way, the connection drops in a request that announced the rest of the file
    with open(path, "rb") as f:
        f.seek(96 * MiB)
        payload = f.read(5 * MiB + 17)
    await asyncio.to_thread(cut_patch, first.url, {**auth(), **TUS, "Upload-Offset": str(96 * MiB)}, SIZE - 96 * MiB, payload)
    await wait_for_offset(api, upload_id, 96 * MiB + len(payload))
    assert (await api("GET", "datasets")).body["items"] == []

    resumed = await asyncio.to_thread(Uploader, file_path=str(path), url=first.url, client=client, chunk_size=32 * MiB)
    assert resumed.offset == 96 * MiB + len(payload)
    await asyncio.to_thread(resumed.upload)

    status = (await api("GET", f"uploads/{upload_id}")).body
    assert status["state"] == "completed"
    version = (await api("GET", f"datasets/{status['dataset_id']}/versions/latest")).body
    assert version["sha256"] == sha and version["size_bytes"] == SIZE and version["format"] == "csv"
