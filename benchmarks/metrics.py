"""Metrics: what logging every step costs a training loop, against MLflow and TensorBoard;
how many points per second the server ingests from 10 concurrent jobs; and how long a point
takes from ``run.log`` to a WebSocket subscriber.

Claims (issue 4): ``run.log`` every step adds at most 2% to a 2,000-step CPU MLP loop;
p99 latency from ``run.log`` to a subscriber under 100 ms at 1,000 points/s.

    .venv/bin/python benchmarks/metrics.py                    # everything, SQLite server
    .venv/bin/python benchmarks/metrics.py --rounds 7 --ingest-backends sqlite,postgresql

One run, one machine: the training loop, the Jupyter server (tests/live.py's LiveServer, a
real ``jupyter server`` subprocess), MLflow's SQLite store and TensorBoard's event writer all
share its cores; the output prints the core count and load average.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import aistudio_jupyter as ais  # noqa: E402
from benchmarks.common import database  # noqa: E402
from aistudio_jupyter.runtime.client import Client  # noqa: E402
from tests.conftest import TOKENS  # noqa: E402
from tests.live import LiveServer  # noqa: E402



# -- the training loop -------------------------------------------------------------------


class Loop:
    """A small MLP on synthetic data, fixed seed: the same work in every variant."""

    def __init__(self, steps: int, batch: int = 64):
        torch.manual_seed(0)
        self.steps = steps
        self.model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(32, batch, 64)
        self.y = torch.randint(0, 10, (32, batch))

    def run(self, log=None) -> tuple[float, float]:
        """(wall, process CPU) seconds for ``steps`` steps; ``log(step, loss)`` after each when given.

        Process CPU counts every thread of this process (a logger's sender thread too) and
        nothing of other processes, so it stays readable when other work shares the cores."""
        model, opt, x, y = self.model, self.opt, self.x, self.y
        loss_fn = torch.nn.functional.cross_entropy
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(self.steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[i % 32]), y[i % 32])
            loss.backward()
            opt.step()
            if log is not None:
                log(i, loss.item())
        return time.perf_counter() - started, time.process_time() - cpu


class Variant:
    """One way of logging: ``open()`` before a measured loop, ``log``, ``close()`` (drain) after."""

    name = "bare"

    def open(self) -> None:
        pass

    log = None

    def close(self) -> None:
        pass


class Ours(Variant):
    name = "ais run.log"

    def __init__(self, client: Client, flush_interval: float):
        self.client, self.flush_interval = client, flush_interval

    def open(self) -> None:
        self.run = ais.track(f"bench-{uuid.uuid4().hex[:6]}", config={"lr": 0.01}, client=self.client, flush_interval=self.flush_interval)
        run_log = self.run.log
        self.log = lambda i, v: run_log({"loss": v}, step=i)

    def close(self) -> None:
        self.run.finish()
        assert self.run.dropped == 0


class MLflow(Variant):
    def __init__(self, workdir: Path, synchronous: bool):
        import mlflow

        self.mlflow = mlflow
        self.synchronous = synchronous
        self.name = "mlflow log_metric" + ("" if synchronous else " (async)")
        mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
        mlflow.set_experiment("bench")

    def open(self) -> None:
        self.mlflow.start_run()
        log_metric, sync = self.mlflow.log_metric, self.synchronous
        self.log = lambda i, v: log_metric("loss", v, step=i, synchronous=sync)

    def close(self) -> None:
        if not self.synchronous:
            self.mlflow.flush_async_logging()
        self.mlflow.end_run()


class TensorBoard(Variant):
    name = "tensorboard add_scalar"

    def __init__(self, workdir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer_class = SummaryWriter
        self.workdir = workdir

    def open(self) -> None:
        self.writer = self.writer_class(str(self.workdir / f"tb-{uuid.uuid4().hex[:6]}"))
        add = self.writer.add_scalar
        self.log = lambda i, v: add("loss", v, i)

    def close(self) -> None:
        self.writer.close()


def overhead(args, client: Client, workdir: Path) -> None:
    torch.set_num_threads(args.threads)
    variants: list[Variant] = [Variant(), Ours(client, args.flush_interval), TensorBoard(workdir)]
    try:
        variants += [MLflow(workdir, synchronous=True), MLflow(workdir, synchronous=False)]
    except ImportError as exc:
        print(f"MLflow is not installed ({exc}); its rows are skipped. pip install mlflow")
    loop = Loop(args.steps)
    loop.run()  # warm-up: allocator, autograd graph caches
    for v in variants:  # each anchor's first run pays its imports and schema set-up
        v.open()
        Loop(50).run(v.log)
        v.close()
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    cpus: dict[str, list[float]] = {v.name: [] for v in variants}
    drains: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        # rotate the order each round so drift in machine load spreads over every variant
        for v in variants[r % len(variants):] + variants[: r % len(variants)]:
            v.open()
            loop_s, cpu_s = loop.run(v.log)
            started = time.perf_counter()
            v.close()
            times[v.name].append(loop_s)
            cpus[v.name].append(cpu_s)
            drains[v.name].append(time.perf_counter() - started)
    bare, bare_cpu = statistics.median(times["bare"]), statistics.median(cpus["bare"])
    print(f"\n## Training-loop overhead: {args.steps} steps, MLP 64-256-256-10, batch 64, torch threads {args.threads}, median of {args.rounds} rounds")
    print(f"{'variant':<28}{'wall s':>8}{'per step':>11}{'wall +%':>9}{'CPU s':>8}{'CPU +%':>9}{'drain s':>9}")
    for v in variants:
        t, c = statistics.median(times[v.name]), statistics.median(cpus[v.name])
        per_step_us = (t - bare) / args.steps * 1e6
        print(f"{v.name:<28}{t:>8.3f}{per_step_us:>9.1f}µs{(t / bare - 1) * 100:>8.2f}%{c:>8.3f}{(c / bare_cpu - 1) * 100:>8.2f}%{statistics.median(drains[v.name]):>9.3f}")
    print("(wall: the loop's time; CPU: this process's CPU time during the loop, every thread; +%: vs bare;")
    print(" per step: added wall time per logged step; drain: finish/flush after the loop, not counted in the loop)")
    spread = (max(times["bare"]) - min(times["bare"])) / bare * 100
    print(f"bare-loop spread across rounds: {spread:.1f}% (the noise floor of this machine now)")


# -- ingestion from 10 concurrent jobs -------------------------------------------------


def _ingest_worker(url: str, token: str, points: int, batch: int, ready, go, out) -> None:
    client = Client(url=url, token=token)
    run = ais.track(f"ingest-{os.getpid()}", client=client, batch_size=batch)
    ready.put(run.id)
    go.wait()
    started = time.perf_counter()
    log = run.log
    for i in range(points):
        log({"loss": 1.0 / (i + 1)}, step=i)
    logged = time.perf_counter() - started
    run.finish(timeout=600)
    out.put((run.id, logged, time.perf_counter() - started, run.dropped))


def ingestion(args, server: LiveServer, backend: str) -> None:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    token = TOKENS["alice"]
    procs = [ctx.Process(target=_ingest_worker, args=(server.api(), token, args.ingest_points, 1000, ready, go, out)) for _ in range(args.jobs)]
    for p in procs:
        p.start()
    ids = [ready.get(timeout=120) for _ in procs]
    started = time.perf_counter()
    go.set()
    results = [out.get(timeout=900) for _ in procs]
    wall = time.perf_counter() - started
    for p in procs:
        p.join(30)
    total = args.jobs * args.ingest_points
    with server.client("alice") as http:
        stored = sum(len(http.get(f"/jobs/{i}/metrics", params={"max_points": "10000", "since_step": str(max(0, args.ingest_points - 10_000))}).json()["series"]["loss"]) for i in ids)
    dropped = sum(r[3] for r in results)
    print(f"\n## Ingestion, {backend}: {args.jobs} jobs × {args.ingest_points:,} points, each logging in a tight loop (separate processes)")
    print(f"{total:,} points stored in {wall:.2f} s → {total / wall:,.0f} points/s (dropped {dropped}; read back from the last 10,000 steps of each job: {stored:,})")
    print(f"time for a job to log its points (run.log only): median {statistics.median(r[1] for r in results):.2f} s; until its last batch was stored: median {statistics.median(r[2] for r in results):.2f} s")


# -- latency to a WebSocket subscriber -------------------------------------------------


def latency(args, client: Client) -> None:
    try:
        from aistudio_jupyter.runtime.events import EventStream
    except ImportError:
        print("\n(no runtime/events.py: latency to a WebSocket subscriber skipped)")
        return
    run = ais.track("latency", client=client, flush_interval=args.flush_interval)
    stream = EventStream(client, [f"job:{run.id}"])
    delays: list[float] = []
    expected = int(args.latency_seconds * args.rate)
    done = threading.Event()

    def receive() -> None:
        while len(delays) < expected:
            event = stream.next(timeout=30)
            now = time.time()
            if event["type"] == "metrics":
                delays.extend(now - p["wall_time"] for p in event["data"]["points"])
        done.set()

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    period = 1.0 / args.rate
    start = time.perf_counter()
    for i in range(expected):
        # paced to the rate; wall_time (stamped by run.log) is when the point was logged
        while time.perf_counter() < start + i * period:
            time.sleep(period / 4)
        run.log({"loss": float(i)}, step=i)
    done.wait(60)
    stream.close()
    run.finish()
    delays.sort()
    q = lambda f: delays[min(len(delays) - 1, int(f * len(delays)))] * 1000  # noqa: E731
    print(f"\n## Latency run.log → WebSocket subscriber: {args.rate:,.0f} points/s for {args.latency_seconds:.0f} s ({len(delays):,} of {expected:,} points received)")
    print(f"p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms, max {delays[-1] * 1000:.1f} ms (the client flushes every {args.flush_interval * 1000:.0f} ms)")


# -- driver --------------------------------------------------------------------------------


@contextlib.contextmanager
def live(workdir: Path, url: str):
    """A LiveServer given time to start on a busy machine."""
    server = LiveServer(workdir, url)
    server.start(timeout=300)
    try:
        yield server
    finally:
        server.stop()





def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the loop")
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--ingest-points", type=int, default=100_000, help="points per job in the ingestion run")
    parser.add_argument("--ingest-backends", default="sqlite", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--rate", type=float, default=1000.0, help="points/s in the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--flush-interval", type=float, default=0.1, help="Run's flush_interval (seconds) in the overhead and latency runs")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: overhead, ingestion, latency")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"# benchmarks/metrics.py — {platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="aistudio-metrics-bench-") as tmp:
        workdir = Path(tmp)
        with database("sqlite", workdir) as url, live(workdir / "live", url) as server:
            client = Client(url=server.api(), token=TOKENS["alice"])
            if "overhead" not in skip:
                overhead(args, client, workdir)
            if "latency" not in skip:
                latency(args, client)
            if "ingestion" not in skip and "sqlite" in args.ingest_backends:
                ingestion(args, server, "sqlite")
            client.close()
        if "ingestion" not in skip and "postgresql" in args.ingest_backends:
            with database("postgresql", workdir) as url, live(workdir / "live-pg", url) as server:
                ingestion(args, server, "postgresql")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
