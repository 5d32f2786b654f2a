"""The must-show through the Python client: ``ais.datasets.upload`` of a 256 MiB file with its
progress bar, interrupted half-way (as interrupting the kernel does), then called again: it
resumes from the server's offset and the version's sha256 is the file's. SQLite only, for the
reason given in tests/handlers/test_uploads_large.py."""

from __future__ import annotations

import json

import pytest

from tests.handlers.test_uploads_large import SIZE, write_big_csv
from tests.runtime import in_thread
from tests.runtime.test_upload_client import MiB, cache, connect, recorder, server_url  # noqa: F401 -- fixtures


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_client_256mib_interrupted_and_resumed_with_progress(connect, cache, recorder, tmp_path):
    path = tmp_path / "big.csv"
    sha = await in_thread(write_big_csv, path)

    def scenario():
        alice = connect()
        recorder.stop_after = SIZE // 2
        with pytest.raises(KeyboardInterrupt):
            alice.datasets.upload(path, name="big", chunk_size=16 * MiB, progress=recorder)
        [entry] = json.loads(cache.read_text())["uploads"].values()
        assert entry["size"] == SIZE

        recorder.stop_after = None
        version = alice.datasets.upload(path, name="big", chunk_size=16 * MiB, progress=recorder)
        assert version.sha256 == sha and version.size_bytes == SIZE and version.format == "csv"
        first, second = recorder.bars
        assert first.total == second.total == SIZE and first.closed and second.closed
        # the second bar starts where the server stood, and only the rest was sent
        assert SIZE // 2 <= first.n < SIZE and second.n == SIZE and sum(second.updates) == SIZE - first.n
        assert json.loads(cache.read_text())["uploads"] == {}

    await in_thread(scenario)
