"""Events: how long a published point takes to reach a WebSocket subscriber.

Claim (DESIGN §7, issue 4): at 1,000 points/s the p99 latency from publishing to a
subscriber of the `/events` WebSocket stays under 100 ms, on SQLite and on PostgreSQL, and
across two server processes on one PostgreSQL database (LISTEN/NOTIFY, then a re-read).

    .venv/bin/python benchmarks/events.py                          # every path, 10 s each
    .venv/bin/python benchmarks/events.py --paths sqlite --seconds 5 --batch 10

The publisher POSTs `/jobs/{id}/metrics` (one transaction each: the points, the event, its
NOTIFY) paced to `--rate` points/s in requests of `--batch` points from `--senders` threads,
stamping each point with the time just before its request is sent (so the latency includes
the request itself); a reader thread holds `ais.events.subscribe` (a real
WebSocket) and subtracts that stamp from the time the point arrives. Same host, same clock.
Paths: `sqlite` and `postgresql` publish and subscribe through one server; `cross-process`
publishes through server A and subscribes at server B, on one PostgreSQL database.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from benchmarks.common import database  # noqa: E402
from aistudio_jupyter.runtime.client import Client  # noqa: E402
from aistudio_jupyter.runtime.events import subscribe  # noqa: E402
from tests.conftest import TOKENS  # noqa: E402
from tests.live import LiveServer  # noqa: E402






@contextlib.contextmanager
def servers(workdir: Path, url: str, count: int):
    live = [LiveServer(workdir / f"live-{i}", url) for i in range(count)]
    try:
        with ThreadPoolExecutor(count) as pool:
            # a loaded machine may take a minute or more to boot a Jupyter server
            list(pool.map(lambda server: server.start(timeout=240), live))
        yield live
    finally:
        for server in live:
            server.stop()


def measure(publish_at: LiveServer, subscribe_at: LiveServer, args) -> dict:
    with publish_at.client("alice") as http, Client(subscribe_at.api(), TOKENS["alice"]) as api:
        created = http.post("/jobs/interactive", json={"name": "latency", "config": {}})
        created.raise_for_status()
        job = created.json()["id"]
        stream = subscribe(f"job:{job}", api=api)
        expected = int(args.seconds * args.rate) // args.batch * args.batch
        delays: list[float] = []
        coalesced = 0
        done = threading.Event()

        def receive() -> None:
            nonlocal coalesced
            while len(delays) < expected:
                ev = stream.next(timeout=30)
                now = time.time()
                if ev.type == "metrics":
                    coalesced += bool(ev.get("coalesced"))
                    delays.extend(now - p["value"] for p in ev.data["points"])
            done.set()

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()

        def send(i: int) -> None:
            stamp = time.time()
            # the stamp rides in `value`: what the subscriber receives is what was sent
            points = [{"key": "t", "step": i * args.batch + k, "value": stamp} for k in range(args.batch)]
            http.post(f"/jobs/{job}/metrics", json={"points": points}).raise_for_status()

        period = args.batch / args.rate
        late = 0
        with ThreadPoolExecutor(args.senders) as pool:
            started = time.perf_counter()
            sent = []
            for i in range(expected // args.batch):
                target = started + i * period
                while (now := time.perf_counter()) < target:
                    time.sleep(min(target - now, period / 4))
                late += now - target > period
                sent.append(pool.submit(send, i))
            for future in sent:
                future.result()
        sent_for = time.perf_counter() - started
        done.wait(60)
        stream.close()
        http.post(f"/jobs/{job}/finish", json={"state": "succeeded"})
    delays.sort()

    def q(f: float) -> float:
        return delays[min(len(delays) - 1, int(f * len(delays)))] * 1000

    return {
        "received": len(delays),
        "expected": expected,
        "rate": expected / sent_for,
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": delays[-1] * 1000,
        "coalesced": coalesced,
        "late": late,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default="sqlite,postgresql,cross-process", help="comma-separated: sqlite, postgresql, cross-process")
    parser.add_argument("--rate", type=float, default=1000.0, help="points/s published")
    parser.add_argument("--batch", type=int, default=10, help="points per request (the paced publisher sends rate/batch requests/s)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=4, help="threads sending the paced requests (one request may take longer than a period)")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    print(f"# benchmarks/events.py — {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{args.rate:,.0f} points/s in requests of {args.batch} for {args.seconds:.0f} s per path\n")
    print("| path | points received | achieved points/s | p50 ms | p90 ms | p99 ms | max ms | coalesced msgs | late sends |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="aistudio-events-bench-") as tmp:
        workdir = Path(tmp)
        for path in paths:
            backend = "sqlite" if path == "sqlite" else "postgresql"
            with database(backend, workdir) as url, servers(workdir / path, url, 2 if path == "cross-process" else 1) as live:
                r = measure(live[0], live[-1], args)
            print(
                f"| {path} | {r['received']:,} / {r['expected']:,} | {r['rate']:,.0f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['coalesced']} | {r['late']} |",
                flush=True,
            )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
