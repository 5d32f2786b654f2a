"""``ais.datasets.upload`` and the dataset handle against a real server, on SQLite and PostgreSQL.

Files and DataFrames go up through our tus client and come back through ``to_pandas()`` and
``download()`` unchanged; an upload killed in another process, or cut off mid-request by a TCP
proxy, continues from the server's offset without sending acknowledged bytes again; refusals
reach the caller as ``APIError`` with the server's status and message.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from tqdm.std import tqdm

from aistudio_jupyter.runtime.client import APIError, Client
from tests.conftest import TOKENS
from tests.runtime import in_thread
from tests.handlers.test_uploads import ELF, TUS
from tests.handlers.test_versions import FORMATS
from tests.tcp_proxy import TcpProxy

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """The client's resume store, in the test's own directory."""
    monkeypatch.setenv("AISTUDIO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "uploads.json"


@pytest.fixture
def server_url(jp_serverapp, jp_fetch) -> str:
    # jp_fetch is what makes the test server listen
    return jp_serverapp.web_app.settings["aistudio"].kernel_api_url()


@pytest.fixture
def connect(server_url, cache):
    """``connect(user, url=…, **httpx options)`` → a Client over real HTTP, closed afterwards."""
    opened: list[Client] = []

    def make(user: str = "alice", url: str | None = None, **options) -> Client:
        opened.append(Client(url=url or server_url, token=TOKENS[user], **options))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


def flowers(n: int = 600, seed: int = 7) -> pd.DataFrame:
    """A small, realistic table: measurements, a label, a flag."""
    import random

    rng = random.Random(seed)
    species = ["setosa", "versicolor", "virginica"]
    return pd.DataFrame(
        {
            "id": list(range(n)),
            "sepal_length": [round(rng.uniform(4.3, 7.9), 2) for _ in range(n)],
            "petal_width": [round(rng.uniform(0.1, 2.5), 3) for _ in range(n)],
            "species": [species[i % 3] for i in range(n)],
            "measured": [rng.random() < 0.9 for _ in range(n)],
        }
    )


def big_csv(path: Path, size: int) -> str:
    """A CSV of at least ``size`` bytes; returns its sha256."""
    rows = ["x,y,label\n"] + [f"{i},{i * 0.37:.3f},{'abc'[i % 3]}\n" for i in range(size // 12 + 1)]
    data = "".join(rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Recorder(tqdm):
    """A tqdm bar that remembers what it was told, and can stop the upload after some bytes."""

    bars: list[Recorder] = []
    stop_after: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, file=io.StringIO(), **kwargs)
        self.updates: list[int] = []
        self.closed = False
        Recorder.bars.append(self)

    def update(self, n=1):
        self.updates.append(n)
        super().update(n)
        if Recorder.stop_after is not None and self.n >= Recorder.stop_after:
            raise KeyboardInterrupt  # what interrupting the kernel does in the middle of an upload

    def close(self):
        self.closed = True
        super().close()


@pytest.fixture
def recorder():
    Recorder.bars, Recorder.stop_after = [], None
    return Recorder


class Traffic:
    """httpx event hooks: every request and answer, in order, to check what was sent when."""

    def __init__(self):
        self.events: list[tuple] = []

    def hooks(self) -> dict:
        return {"request": [self.on_request], "response": [self.on_response]}

    def on_request(self, request):
        self.events.append(("request", request.method, request.url.path, int(request.headers.get("Upload-Offset", -1)), len(request.content)))

    def on_response(self, response):
        self.events.append(("response", response.request.method, response.status_code, response.headers.get("Upload-Offset")))

    def patches(self) -> list[tuple[int, int]]:
        return [(e[3], e[4]) for e in self.events if e[:2] == ("request", "PATCH")]

    def count(self, method: str) -> int:
        return sum(1 for e in self.events if e[:2] == ("request", method))

    def assert_each_patch_starts_at_the_servers_offset(self) -> None:
        """No PATCH re-sends bytes: each starts where the server's last answer said it stood."""
        known = None
        for event in self.events:
            if event[0] == "response" and event[2] in (200, 201, 204) and event[3] is not None:
                known = int(event[3])
            elif event[:2] == ("request", "PATCH"):
                assert event[3] == known, (event, self.events)


# -- round trips ---------------------------------------------------------------------------


async def test_csv_and_dataframe_round_trip(connect, cache, tmp_path, recorder, capsys):
    frame = flowers()
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)

    def scenario():
        alice = connect()
        version = alice.datasets.upload(path, chunk_size=4096, progress=recorder)
        assert (version.version, version.format, version.sha256, version.size_bytes) == (1, "csv", sha256_of(path), path.stat().st_size)
        assert [c.name for c in version.schema.columns] == list(frame.columns)
        # the bar knew the total and saw every byte, a chunk at a time
        [bar] = recorder.bars
        assert bar.total == path.stat().st_size and bar.n == bar.total and bar.closed
        assert len(bar.updates) == -(-bar.total // 4096)

        ds = alice.datasets.get("flowers")  # a path's dataset is named after the file
        assert ds.id == version.dataset_id and ds.latest_version == 1 and ds.owner == "alice"
        pd.testing.assert_frame_equal(ds.to_pandas(), frame)
        assert ds.to_arrow().num_rows == len(frame)

        # a DataFrame goes up as Parquet and comes back with its index and dtypes
        indexed = frame.set_index("id")
        sent = alice.datasets.upload(indexed, name="flowers-frame")
        assert sent.format == "parquet" and sent.row_count == len(frame)
        pd.testing.assert_frame_equal(alice.datasets.get("flowers-frame").to_pandas(), indexed)

        # the default bar: tqdm, here on stderr, with the file's name and its total
        small = tmp_path / "tiny.csv"
        small.write_text("a,b\n1,2\n")
        alice.datasets.upload(small)
        # finished uploads are forgotten; the store is the user's alone
        assert json.loads(cache.read_text())["uploads"] == {}
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    await in_thread(scenario)
    err = capsys.readouterr().err
    assert "tiny.csv: 100%" in err and "8.00/8.00" in err


async def test_dataset_handle_versions_download_and_formats(connect, cache, tmp_path):
    contents = [b"n,sq\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(k * 100)) for k in (1, 2, 3)]

    def scenario():
        alice = connect()
        paths = []
        for i, data in enumerate(contents):
            paths.append(tmp_path / f"squares-{i}.csv")
            paths[-1].write_bytes(data)
        alice.datasets.upload(paths[0], name="squares", progress=False)
        ds = alice.datasets.get("squares")
        for p in paths[1:]:
            added = ds.upload(p, progress=False)
            assert added.dataset_id == ds.id
        assert ds.latest_version == 3  # the handle refreshed itself

        versions = ds.versions()
        assert [v.version for v in versions] == [1, 2, 3]
        assert [v.sha256 for v in versions] == [hashlib.sha256(c).hexdigest() for c in contents]
        assert ds.version().version == 3 and ds.version(2).sha256 == versions[1].sha256

        # identical bytes, into a named file or a directory
        first = ds.download(tmp_path / "v1.csv", version=1)
        assert first == tmp_path / "v1.csv" and first.read_bytes() == contents[0]
        folder = tmp_path / "downloads"
        folder.mkdir()
        latest = ds.download(folder)
        assert latest == folder / "squares-v3.csv" and latest.read_bytes() == contents[2]
        assert sorted(p.name for p in folder.iterdir()) == ["squares-v3.csv"]  # no partial file left
        assert len(ds.to_pandas(version=2)) == 200

        with pytest.raises(APIError) as missing:
            ds.version(9)
        assert missing.value.status == 404
        with pytest.raises(ValueError):
            ds.version(0)

        # every tabular format the server detects reads back as a table
        for fmt, data, schema, rows in FORMATS:
            path = tmp_path / f"sample.{fmt}"
            path.write_bytes(data)
            version = alice.datasets.upload(path, name=f"sample-{fmt}", progress=False)
            assert version.format == fmt
            handle = alice.datasets.get(version.dataset_id)
            if fmt == "zip":
                with pytest.raises(TypeError, match="not a table"):
                    handle.to_arrow()
                continue
            table = handle.to_arrow()
            assert table.num_rows == rows and table.column_names == [c["name"] for c in schema["columns"]], fmt

    await in_thread(scenario)


# -- interruptions -------------------------------------------------------------------------

CRASHING_CHILD = """
import os, signal, sys
from tqdm.std import tqdm
import aistudio_jupyter as ais

class Crash(tqdm):
    def update(self, n=1):
        super().update(n)
        if self.n >= int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no finally: a crash

ais.datasets.upload(sys.argv[1], name="crashed", chunk_size=1024 * 1024, progress=Crash)
"""


async def test_upload_killed_in_another_process_resumes_here(connect, cache, server_url, tmp_path):
    path = tmp_path / "crashed.csv"
    sha = big_csv(path, 5 * MiB + 321)
    env = {**os.environ, "AISTUDIO_URL": server_url, "AISTUDIO_TOKEN": TOKENS["alice"]}
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_CHILD, str(path), str(2 * MiB), env=env, cwd=REPO, stderr=asyncio.subprocess.PIPE)
    _, stderr = await child.communicate()
    assert child.returncode == -9, stderr.decode()[-2000:]
    [entry] = json.loads(cache.read_text())["uploads"].values()
    assert entry["path"] == str(path) and entry["size"] == path.stat().st_size

    traffic = Traffic()

    def scenario():
        alice = connect(event_hooks=traffic.hooks())
        version = alice.datasets.upload(path, name="crashed", chunk_size=MiB, progress=False)
        assert version.sha256 == sha and version.size_bytes == path.stat().st_size
        assert alice.datasets.get("crashed").latest_version == 1

    await in_thread(scenario)
    # same upload, from the server's offset: no new upload, no byte sent twice
    assert traffic.count("POST") == 0 and traffic.count("HEAD") == 1
    patches = traffic.patches()
    assert patches[0][0] == 2 * MiB and sum(n for _, n in patches) == path.stat().st_size - 2 * MiB
    traffic.assert_each_patch_starts_at_the_servers_offset()
    assert json.loads(cache.read_text())["uploads"] == {}


class CuttingProxy(TcpProxy):
    """Cuts every connection once the client has sent ``cut_at`` bytes, then listens again."""

    def __init__(self, target_port: int, cut_at: int):
        super().__init__(target_port)
        self.cut_at, self.sent, self.cuts = cut_at, 0, 0
        self._count_lock = threading.Lock()

    def _should_hold(self, conn, data: bytes) -> bool:
        with self._count_lock:
            self.sent += len(data)
            cut = self.cuts == 0 and self.sent >= self.cut_at
            if cut:
                self.cuts += 1
        if cut:
            self.down()  # the request dies half-sent
            self.up()
        return cut


async def test_connection_cut_mid_request_continues_from_the_servers_offset(connect, cache, jp_serverapp, tmp_path):
    path = tmp_path / "cut.csv"
    sha = big_csv(path, 4 * MiB)
    traffic = Traffic()

    with CuttingProxy(jp_serverapp.port, cut_at=int(2.5 * MiB)) as proxy:
        url = jp_serverapp.web_app.settings["aistudio"].kernel_api_url().replace(f":{jp_serverapp.port}/", f":{proxy.port}/")

        def scenario():
            alice = connect(url=url, event_hooks=traffic.hooks())
            return alice.datasets.upload(path, name="cut", chunk_size=MiB, progress=False)

        version = await in_thread(scenario)
        assert proxy.cuts == 1
    assert version.sha256 == sha
    # the third chunk was cut off: its checksum no longer covered what arrived, so the server
    # dropped it; the client asked where to go on and sent it whole, nothing else twice
    offsets = [offset for offset, _ in traffic.patches()]
    assert traffic.count("HEAD") >= 1 and traffic.count("POST") == 1
    assert sorted(set(offsets)) == list(range(0, path.stat().st_size, MiB))
    assert offsets.count(2 * MiB) >= 2 and all(offsets.count(o) == 1 for o in offsets if o != 2 * MiB)
    traffic.assert_each_patch_starts_at_the_servers_offset()


async def test_interrupted_uploads_start_over_when_deleted_and_finish_when_complete(connect, cache, tmp_path, recorder):
    path = tmp_path / "again.csv"
    sha = big_csv(path, 3 * MiB)
    traffic = Traffic()

    def scenario():
        alice = connect(event_hooks=traffic.hooks())
        recorder.stop_after = MiB
        with pytest.raises(KeyboardInterrupt):
            alice.datasets.upload(path, name="again", chunk_size=MiB, progress=recorder)
        [entry] = json.loads(cache.read_text())["uploads"].values()
        # tus termination elsewhere (or expiry): the remembered upload is gone
        assert alice.http.delete(f"/uploads/{entry['upload_id']}", headers=TUS).status_code == 204

        # and this time the interruption comes after the last chunk is in, before the answer is read
        recorder.stop_after = path.stat().st_size
        with pytest.raises(KeyboardInterrupt):
            alice.datasets.upload(path, name="again", chunk_size=MiB, progress=recorder)
        assert recorder.bars[-1].updates[0] == MiB  # the new upload started from zero
        sent = len(traffic.patches())

        recorder.stop_after = None
        version = alice.datasets.upload(path, name="again", chunk_size=MiB, progress=recorder)
        assert version.sha256 == sha and version.version == 1  # found, not uploaded twice
        assert len(traffic.patches()) == sent and alice.datasets.get("again").latest_version == 1
        assert json.loads(cache.read_text())["uploads"] == {}

    await in_thread(scenario)
    assert traffic.count("POST") == 2
    assert [offset for offset, _ in traffic.patches()] == [0, *range(0, path.stat().st_size, MiB)]


# -- refusals ------------------------------------------------------------------------------


@pytest.fixture
def small_tier(aistudio_config):
    aistudio_config["tiers"] = {"default": {"upload_bytes": MiB, "storage_bytes": 2 * MiB}}


async def test_refusals_are_api_errors_with_the_servers_message(small_tier, connect, cache, tmp_path):
    def scenario():
        alice = connect()
        tool = tmp_path / "tool.csv"  # the name says CSV; the bytes say executable
        tool.write_bytes(ELF)
        with pytest.raises(APIError) as executable:
            alice.datasets.upload(tool, progress=False)
        assert (executable.value.status, executable.value.code) == (415, "unsupported_media_type")
        assert "ELF" in executable.value.message
        assert json.loads(cache.read_text())["uploads"] == {}  # a failed upload is not resumed

        big = tmp_path / "big.csv"
        big_csv(big, MiB)
        with pytest.raises(APIError) as too_big:
            alice.datasets.upload(big, progress=False)
        assert too_big.value.status == 413 and str(MiB) in too_big.value.message

        part = tmp_path / "part.csv"
        big_csv(part, 600 * 1024)
        alice.datasets.upload(part, name="one", progress=False)
        alice.datasets.upload(part, name="two", progress=False)
        with pytest.raises(APIError) as full:
            alice.datasets.upload(part, name="three", progress=False)
        assert full.value.status == 507 and "quota" in full.value.message.lower()

        with pytest.raises(APIError) as taken:
            alice.datasets.upload(part, name="one", progress=False)
        assert taken.value.status == 409 and "pass its id as 'dataset'" in taken.value.message
        with pytest.raises(APIError) as hidden:
            connect("carol").datasets.upload(part, dataset=alice.datasets.get("one").id, progress=False)
        assert hidden.value.status == 404

        with pytest.raises(ValueError, match="not both"):
            alice.datasets.upload(part, name="x", dataset="one")
        with pytest.raises(ValueError, match="Name the new dataset"):
            alice.datasets.upload(flowers(3))
        with pytest.raises(TypeError, match="file path, a pandas DataFrame"):
            alice.datasets.upload(b"a,b\n1,2\n")
        with pytest.raises(FileNotFoundError):
            alice.datasets.upload(tmp_path / "missing.csv")
        assert sorted(d.name for d in alice.datasets.list()) == ["one", "two"]

    await in_thread(scenario)
