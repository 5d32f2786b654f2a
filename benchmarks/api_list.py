"""Benchmark: ``GET /datasets`` latency against Jupyter's own ``GET /api/contents``.

The claim (issue "Foundation"): with 10,000 datasets and 32 concurrent clients, listing a
page of datasets answers with p99 under 50 ms, on SQLite and on PostgreSQL, and is no slower
than jupyter_server's contents API listing a directory of 1,000 files — measured in the same
run, against the same server process, with the same client.

For each backend this starts a real ``jupyter server`` subprocess with AI Studio
(tests/live.py), seeds the migrated database with a bulk SQLAlchemy insert (the columns
DatasetService writes, spread over 30 days and 20 owners), seeds ``bench/`` with 1,000 small
files in the server's root_dir, then drives ``--concurrency`` closed-loop clients (each sends
its next request as soon as the last one answered) at five targets, one after the other:

  datasets      GET /aistudio/api/datasets?limit=50             newest first, first page
  datasets p2   GET /aistudio/api/datasets?limit=50&cursor=…    the second page (keyset)
  datasets q=   GET /aistudio/api/datasets?limit=50&q=sensor    name search (~5% of rows)
  contents      GET /api/contents/bench                         the anchor
  status        GET /api/status                                 for scale: Jupyter's cheapest
                                                                authenticated API call

The client is a bare HTTP/1.1 keep-alive loop on asyncio streams (one connection per client)
so that it costs tens of microseconds a request; the table reports its CPU per request next
to the server's (the Jupyter process only: PostgreSQL's work happens in its own processes).
The load generator shares the machine (and its cores) with the server and the database,
which the output says, with the machine's load average around each run.

    .venv/bin/python benchmarks/api_list.py [--rows 10000 --concurrency 32 --requests 3000
                          --anchor-requests 300 --backends sqlite,postgresql --json out.json]

The contents API needs ~0.3 s of CPU per listing of 1,000 files, so it gets fewer requests
(``--anchor-requests``) to keep a run within minutes; the table prints each row's count.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, text  # noqa: E402

from benchmarks.common import TempPostgres, percentile  # noqa: E402
from aistudio_jupyter.services.ids import _b32  # noqa: E402
from aistudio_jupyter.store.orm import Dataset  # noqa: E402
from aistudio_jupyter.store.session import Database  # noqa: E402
from tests.conftest import TOKENS  # noqa: E402
from tests.live import LiveServer  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("AISTUDIO_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
#: the caller: member of team "vision" (tests/conftest.py TEAMS), so all three visibility rules apply
USER = "bob"
OWNERS = [USER, "alice"] + [f"user{i:02d}" for i in range(18)]
WORDS = ["customers", "images", "sensor", "sales", "churn", "reviews", "traffic", "weather", "genomes", "clicks",
         "invoices", "audio", "faces", "prices", "claims", "tickets", "logs", "maps", "orders", "scans"]  # fmt: skip
SEARCH = "sensor"
CONTENTS_DIR = "bench"
ANCHOR = "contents"
FLOOR = "status"


# -- seeding ---------------------------------------------------------------------------------


def seed_datasets(url: str, rows: int, rng: random.Random) -> float:
    """Migrate, then bulk-insert ``rows`` datasets; return the seconds the insert took."""
    db = Database(url)
    db.upgrade()
    now = dt.datetime.now(dt.timezone.utc)
    values = []
    for i in range(rows):
        created = now - dt.timedelta(days=30) + dt.timedelta(seconds=30 * 86400 * i / rows)
        owner = OWNERS[0] if i % 10 == 0 else rng.choice(OWNERS[1:])
        visibility = rng.choices(["private", "team", "public"], [60, 25, 15])[0]
        team = ("vision" if owner in ("alice", USER) else rng.choice(["nlp", "audio"])) if visibility == "team" else None
        millis = int(created.timestamp() * 1000)
        values.append(
            {
                # the shape of services/ids.new_id, with the row's own creation time
                "id": f"ds_{_b32(millis, 9)}{_b32(rng.getrandbits(80), 16)}",
                "owner": owner,
                "visibility": visibility,
                "team": team,
                "created_at": created,
                "updated_at": created,
                "name": f"{rng.choice(WORDS)}-{i:05d}",
                "description": f"Benchmark dataset {i}: " + " ".join(rng.choices(WORDS, k=12)),
                "tags": rng.sample(["tabular", "images", "text", "audio", "raw", "clean"], 2),
                "latest_version": rng.randint(0, 5),
                "size_bytes": rng.randint(0, 10**9),
            }
        )
    started = time.perf_counter()
    with db.session(write=True) as session:
        session.execute(insert(Dataset), values)
    took = time.perf_counter() - started
    if db.dialect == "postgresql":
        # what autovacuum does a moment after a bulk load; without it the planner guesses
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE datasets"))
    db.close()
    return took


def seed_files(root: Path, count: int) -> None:
    folder = root / CONTENTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"file-{i:04d}.txt").write_text(f"line {i}\n")


# -- the client ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a GET costs a write and two reads, nothing more."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.head}\r\n".encode())
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await self.reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    target: str
    backend: str
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    req_per_s: float
    server_cpu_ms: float
    client_cpu_ms: float
    ratio_p99: float | None = None


async def drive(conns: list[Connection], path: str, total: int) -> tuple[list[float], float]:
    """``total`` GETs of ``path`` spread over the connections, each client closed-loop."""
    latencies: list[float] = []
    left = total

    async def client(conn: Connection) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            status, body = await conn.get(path)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    return latencies, time.perf_counter() - started


async def measure(server: LiveServer, backend: str, targets: dict[str, str], args) -> list[Result]:
    conns = [Connection("127.0.0.1", server.port, {"Authorization": f"token {TOKENS[USER]}", "Accept": "application/json"}) for _ in range(args.concurrency)]
    results = []
    try:
        for name, path in targets.items():
            requests = args.anchor_requests if name == ANCHOR else args.requests
            # every connection warm, and for the anchor no more than a tenth of its run
            await drive(conns, path, max(args.concurrency, min(args.warmup, requests // 10)))
            server_cpu, client_cpu = cpu_seconds(server.proc.pid), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            latencies, wall = await drive(conns, path, requests)
            server_cpu, client_cpu = cpu_seconds(server.proc.pid) - server_cpu, sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - client_cpu
            ms = sorted(x * 1000 for x in latencies)
            n = len(ms)
            results.append(
                Result(name, backend, n, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), ms[-1], n / wall, 1000 * server_cpu / n, 1000 * client_cpu / n)
            )
    finally:
        for c in conns:
            await c.close()
    anchor = next(r for r in results if r.target == ANCHOR)
    for r in results:
        r.ratio_p99 = r.p99_ms / anchor.p99_ms
    return results


def check_answers(server: LiveServer, files: int) -> dict[str, str]:
    """Fetch each target once, check it answers what it should, and return the paths to load."""
    import httpx

    with httpx.Client(base_url=server.base, headers=server.auth(USER), timeout=60) as http:
        first = http.get("/aistudio/api/datasets", params={"limit": 50}).raise_for_status().json()
        assert len(first["items"]) == 50 and first["next_cursor"], first
        created = [item["created_at"] for item in first["items"]]
        assert created == sorted(created, reverse=True), "not newest first"
        second = http.get("/aistudio/api/datasets", params={"limit": 50, "cursor": first["next_cursor"]}).raise_for_status().json()
        assert len(second["items"]) == 50 and second["items"][0]["created_at"] <= created[-1]
        found = http.get("/aistudio/api/datasets", params={"limit": 50, "q": SEARCH}).raise_for_status().json()
        assert found["items"] and all(SEARCH in item["name"] for item in found["items"]), found
        listing = http.get(f"/api/contents/{CONTENTS_DIR}").raise_for_status().json()
        assert len(listing["content"]) == files, len(listing["content"])
    return {
        "datasets": "/aistudio/api/datasets?limit=50",
        "datasets p2": f"/aistudio/api/datasets?limit=50&cursor={first['next_cursor']}",
        "datasets q=": f"/aistudio/api/datasets?limit=50&q={SEARCH}",
        ANCHOR: f"/api/contents/{CONTENTS_DIR}",
        FLOOR: "/api/status",
    }


def run_backend(backend: str, args, workdir: Path) -> list[Result]:
    rng = random.Random(args.seed)
    work = workdir / backend
    work.mkdir()

    def bench(url: str) -> list[Result]:
        took = seed_datasets(url, args.rows, rng)
        print(f"[{backend}] inserted {args.rows} datasets in {took:.2f}s (bulk SQLAlchemy insert)", file=sys.stderr)
        with LiveServer(work, url, aistudio={"db_retry_interval": 2.0}) as server:
            seed_files(work / "root", args.files)
            targets = check_answers(server, args.files)
            return asyncio.run(measure(server, backend, targets, args))

    if backend == "sqlite":
        return bench(f"sqlite:///{work / 'aistudio.db'}")
    with TempPostgres(args.postgres_url) as url:
        return bench(url)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def print_table(results: list[Result], args, loads: dict[str, tuple[float, float]]) -> None:
    print(f"\nGET latency, {args.rows} datasets / {args.files} files, {args.concurrency} closed-loop clients")
    print(f"machine: {machine()}")
    print("note: the load generator runs on the same machine as the server and the database, sharing its cores;")
    print("      srv CPU is the Jupyter process's user+system time per request (PostgreSQL's own processes excluded)")
    for backend, (before, after) in loads.items():
        print(f"1-minute load average around the {backend} run: {before:.2f} before, {after:.2f} after")
    print()
    head = f"{'target':<12} {'backend':<10} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8} {'srv CPU ms/req':>14} {'cli CPU ms/req':>14} {'p99 / contents':>14}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.target:<12} {r.backend:<10} {r.requests:>8} {r.p50_ms:>8.1f} {r.p90_ms:>8.1f} {r.p99_ms:>8.1f} {r.max_ms:>8.1f} {r.req_per_s:>8.0f}"
            f" {r.server_cpu_ms:>14.2f} {r.client_cpu_ms:>14.2f} {r.ratio_p99:>14.2f}"
        )
    print()
    for r in results:
        if r.target not in (ANCHOR, FLOOR):
            verdict = "holds" if r.p99_ms < 50 and r.ratio_p99 <= 1 else "MISSED"
            print(f"goal (p99 < 50 ms and <= contents p99) for {r.target} on {r.backend}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="datasets to seed")
    parser.add_argument("--files", type=int, default=1_000, help="files in the contents-API directory")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--requests", type=int, default=3_000, help="measured requests per target")
    parser.add_argument("--anchor-requests", type=int, default=300, help="measured requests of the contents API")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests per target first")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN_URL, help="admin URL; a temporary database is created beside it")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results: list[Result] = []
    loads: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="aistudio-bench-") as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend not in ("sqlite", "postgresql"):
                parser.error(f"unknown backend {backend!r}")
            before = os.getloadavg()[0]
            results += run_backend(backend, args, Path(tmp))
            loads[backend] = (before, os.getloadavg()[0])
    print_table(results, args, loads)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "load": loads, "args": {k: str(v) for k, v in vars(args).items()}, "results": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
