"""Benchmark: uploading a large file through tus against JupyterLab's contents-API upload and the disk.

The claim (issue "Datasets", Must show): a 1 GiB file moves through ``/aistudio/api/uploads``
(tus) at least 3× as fast as JupyterLab's own chunked upload through the contents API, at
least 0.8× as fast as the machine can write the same bytes into the same storage directory,
and the server's memory grows by under 100 MiB whatever the file size.

One real ``jupyter server`` subprocess with AI Studio (tests/live.py, SQLite, local storage)
serves every method, in the same run, on the same file:

  tus (ais client)   ``Client(...).datasets.upload(path, name=…)``: POST + PATCHes of --chunk-mib,
                     each with its sha256 Upload-Checksum; timed until the DatasetVersion is back
  tus (tuspy)        tuspy's ``TusClient`` unmodified, same chunk size (skipped if not installed)
  contents API       what JupyterLab's browser does for a large file: ``PUT /api/contents/<path>``
                     with JSON ``{"type": "file", "format": "base64", "chunk": n, "content": …}``,
                     1 MiB of base64 per request, n = 1, 2, … and -1 for the last one
  disk               the machine's own limit: a buffered write of the same bytes plus fsync into
                     the server's storage directory, from this process (no server involved)

The file is random: rows of random hex digits in CSV form, because the server sniffs what it
receives and refuses bytes that are no dataset format (415); the source is read from the page
cache by every method alike. While each upload runs a thread samples the server process's RSS
every 50 ms; the table shows the peak over its value just before that upload.

    .venv/bin/python benchmarks/upload.py [--size-mib 1024] [--chunk-mib 8] [--skip-tuspy]

The client and the server share the machine's cores, so CPU the client spends (base64 for the
contents API, sha256 per chunk for tus) is CPU the server does not get; the output says so.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aistudio_jupyter.runtime.client import Client  # noqa: E402
from tests.conftest import TOKENS  # noqa: E402
from tests.live import LiveServer  # noqa: E402

MiB = 1024 * 1024
#: JupyterLab's upload chunk (packages/filebrowser/src/model.ts CHUNK_SIZE)
CONTENTS_CHUNK = 1 * MiB
GOALS = {"vs_contents": 3.0, "vs_disk": 0.8, "rss_mib": 100.0}


# -- the file ------------------------------------------------------------------------------


def make_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of CSV with random hex fields to ``path``; answer their sha256."""
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    row = 4 * 16 + 4  # four 16-digit fields, three commas, a newline
    rows_per_block = (8 * MiB) // row
    digest = hashlib.sha256()
    written = 0
    with open(path, "wb") as f:
        header = b"a,b,c,d\n"
        f.write(header)
        digest.update(header)
        written += len(header)
        while written < size:
            raw = np.frombuffer(os.urandom(rows_per_block * 32), dtype=np.uint8)
            digits = np.empty(raw.size * 2, dtype=np.uint8)
            digits[0::2], digits[1::2] = hexdigits[raw >> 4], hexdigits[raw & 15]
            digits = digits.reshape(rows_per_block, 64)
            block = np.empty((rows_per_block, row), dtype=np.uint8)
            for i in range(4):
                block[:, i * 17 : i * 17 + 16] = digits[:, i * 16 : (i + 1) * 16]
            block[:, 16::17] = ord(",")
            block[:, -1] = ord("\n")
            data = block.tobytes()[: size - written]
            f.write(data)
            digest.update(data)
            written += len(data)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


# -- measuring -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {pid}") from None


class RSSSampler:
    """Peak RSS of ``pid`` over a ``with`` block, sampled every ``interval`` s in a thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self._stop = threading.Event()

    def __enter__(self) -> RSSSampler:
        self.before = self.peak = rss_bytes(self.pid)
        self.cpu_before, self.client_cpu_before = cpu_seconds(self.pid), time.process_time()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))
        self.server_cpu = cpu_seconds(self.pid) - self.cpu_before
        # this process: the upload client (and the sampler thread, which costs next to nothing)
        self.client_cpu = time.process_time() - self.client_cpu_before

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / MiB


class Result:
    def __init__(self, method: str, size: int, seconds: float, rss: RSSSampler | None, check: str):
        self.method, self.size, self.seconds, self.rss, self.check = method, size, seconds, rss, check

    @property
    def mib_s(self) -> float:
        return self.size / MiB / self.seconds


# -- the methods ---------------------------------------------------------------------------


def disk(src: Path, storage: Path, chunk: int) -> Result:
    """The machine's own limit: copy the same bytes into the storage directory, buffered, then fsync."""
    dest = storage / "bench-disk-write.bin"
    try:
        start = time.perf_counter()
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            while data := fin.read(chunk):
                fout.write(data)
            fout.flush()
            os.fsync(fout.fileno())
        seconds = time.perf_counter() - start
        size = dest.stat().st_size
    finally:
        dest.unlink(missing_ok=True)
    return Result("disk (write + fsync)", size, seconds, None, f"{size} bytes written")


def tus_client(srv: LiveServer, src: Path, sha: str, chunk: int) -> Result:
    client = Client(srv.api(), TOKENS["alice"], timeout=300)
    with RSSSampler(srv.proc.pid) as rss:
        start = time.perf_counter()
        version = client.datasets.upload(src, name=f"bench-ais-{time.time_ns()}", chunk_size=chunk, progress=False)
        seconds = time.perf_counter() - start
    ok = version["sha256"] == sha and version["size_bytes"] == src.stat().st_size
    if not ok:
        raise SystemExit(f"tus (ais client): version sha256 {version['sha256']} size {version['size_bytes']}, file sha256 {sha}")
    return Result("tus (ais client)", src.stat().st_size, seconds, rss, "sha256 ok")


def tus_tuspy(srv: LiveServer, src: Path, sha: str, chunk: int) -> Result | None:
    try:
        from tusclient.client import TusClient
    except ImportError:
        return None
    tus = TusClient(srv.api("/uploads"), headers=srv.auth("alice"))
    uploader = tus.uploader(file_path=str(src), chunk_size=chunk, metadata={"name": f"bench-tuspy-{time.time_ns()}", "filename": src.name})
    with RSSSampler(srv.proc.pid) as rss:
        start = time.perf_counter()
        uploader.upload()
        seconds = time.perf_counter() - start
    upload_id = uploader.url.rstrip("/").rsplit("/", 1)[-1]
    with srv.client("alice") as http:
        state = http.get(f"/uploads/{upload_id}").raise_for_status().json()
        version = http.get(f"/datasets/{state['dataset_id']}/versions/{state['version']}").raise_for_status().json()
    if version["sha256"] != sha:
        raise SystemExit(f"tus (tuspy): version sha256 {version['sha256']}, file sha256 {sha}")
    return Result("tus (tuspy)", src.stat().st_size, seconds, rss, "sha256 ok")


def contents_api(srv: LiveServer, src: Path, root: Path) -> Result:
    """JupyterLab's large-file upload (filebrowser model.ts ``_uploadLarge``), request for request."""
    name = "bench-contents-upload.csv"
    size = src.stat().st_size
    url = f"{srv.base}/api/contents/{name}"
    try:
        with httpx.Client(headers=srv.auth(), timeout=300) as http, open(src, "rb") as f, RSSSampler(srv.proc.pid) as rss:
            start = time.perf_counter()
            offset = 0
            while offset < size:
                data = f.read(CONTENTS_CHUNK)
                # JupyterLab: the last chunk is -1 (so the server runs its post-save hooks), else start / CHUNK_SIZE + 1
                chunk = -1 if offset + CONTENTS_CHUNK >= size else offset // CONTENTS_CHUNK + 1
                body = {"type": "file", "format": "base64", "chunk": chunk, "content": base64.b64encode(data).decode("ascii"), "name": name, "path": name}
                http.put(url, json=body).raise_for_status()
                offset += len(data)
            seconds = time.perf_counter() - start
        stored = (root / name).stat().st_size
    finally:
        (root / name).unlink(missing_ok=True)
    if stored != size:
        raise SystemExit(f"contents API: stored {stored} bytes, file has {size}")
    return Result("contents API (JupyterLab)", size, seconds, rss, "size ok")


def warm_up(srv: LiveServer, workdir: Path) -> None:
    """One small upload each way first, so no measured method pays for the lazy migration and first imports."""
    small = workdir / "warm-up.csv"
    make_file(small, 2 * MiB)
    Client(srv.api(), TOKENS["alice"]).datasets.upload(small, name="bench-warm-up", progress=False)
    contents_api(srv, small, srv.workdir / "root")
    small.unlink()


# -- report --------------------------------------------------------------------------------


def report(results: list[Result], size_mib: int, chunk_mib: int) -> None:
    print()
    print(f"{'method':<27} {'MiB/s':>8} {'seconds':>8} {'server RSS growth (before → peak)':>36} {'server CPU s':>12} {'client CPU s':>12}  check")
    for r in results:
        if r.rss:
            rss = f"{r.rss.growth_mib:.1f} MiB ({r.rss.before / MiB:.0f} → {r.rss.peak / MiB:.0f})"
            cpu = f"{r.rss.server_cpu:>12.2f} {r.rss.client_cpu:>12.2f}"
        else:
            rss, cpu = "(no server)", f"{'—':>12} {'—':>12}"
        print(f"{r.method:<27} {r.mib_s:>8.1f} {r.seconds:>8.2f} {rss:>36} {cpu}  {r.check}")
    by = {r.method: r for r in results}
    contents, drive = by["contents API (JupyterLab)"], by["disk (write + fsync)"]
    print()
    for r in results:
        if not r.method.startswith("tus"):
            continue
        vs_contents, vs_disk = r.mib_s / contents.mib_s, r.mib_s / drive.mib_s
        mark = lambda ok: "met" if ok else "MISSED"  # noqa: E731
        print(f"{r.method}: {vs_contents:.2f}× contents API (goal ≥ {GOALS['vs_contents']}×, {mark(vs_contents >= GOALS['vs_contents'])}), "
              f"{vs_disk:.3f}× disk (goal ≥ {GOALS['vs_disk']}×, {mark(vs_disk >= GOALS['vs_disk'])}), "
              f"RSS +{r.rss.growth_mib:.1f} MiB (goal < {GOALS['rss_mib']:.0f} MiB, {mark(r.rss.growth_mib < GOALS['rss_mib'])})")
    print(f"contents API: RSS +{contents.rss.growth_mib:.1f} MiB")
    print()
    print(f"{size_mib} MiB file, tus chunks of {chunk_mib} MiB, contents-API chunks of 1 MiB (base64); "
          f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.")
    print("Client and server share this machine's cores: CPU the client spends (sha256 per tus chunk, base64 for the "
          "contents API) is CPU the server does not get.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file (MiB)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="tus PATCH size (MiB)")
    parser.add_argument("--skip-tuspy", action="store_true", help="leave tuspy out")
    args = parser.parse_args()
    if args.size_mib < 2:
        parser.error("--size-mib must be at least 2")
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="aistudio-bench-upload-"))
    # the ais client remembers unfinished uploads; keep that out of the user's cache
    os.environ["AISTUDIO_CACHE_DIR"] = str(workdir / "client-cache")
    try:
        src = workdir / "source.csv"
        print(f"writing {args.size_mib} MiB of random CSV …", flush=True)
        sha = make_file(src, size)
        with LiveServer(workdir / "live", f"sqlite:///{workdir / 'aistudio.db'}") as srv:
            storage, root = srv.workdir / "storage", srv.workdir / "root"
            storage.mkdir(parents=True, exist_ok=True)
            print(f"server pid {srv.proc.pid} at {srv.base}; storage {storage}", flush=True)
            warm_up(srv, workdir)
            results = []
            for label, run in (
                ("disk", lambda: disk(src, storage, chunk)),
                ("tus (ais client)", lambda: tus_client(srv, src, sha, chunk)),
                ("tus (tuspy)", lambda: None if args.skip_tuspy else tus_tuspy(srv, src, sha, chunk)),
                ("contents API", lambda: contents_api(srv, src, root)),
            ):
                print(f"{label} …", flush=True)
                result = run()
                if result is not None:
                    results.append(result)
                    print(f"  {result.mib_s:.1f} MiB/s in {result.seconds:.2f} s", flush=True)
        report(results, args.size_mib, args.chunk_mib)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
