"""Serving: what a deployment adds to a forward pass, what dynamic batching buys, and MLflow.

Claims (issue 6), one run, one model (an MLP, 256 features → 4 × 1,024 hidden → 10 outputs,
tensor inputs, one row per request):

  (a) predict latency p50/p99 through a deployment against a bare in-process forward of the
      same module (a single closed-loop client; the bare forward is timed right after each
      request, so on a machine whose load moves both see the same);
  (b) throughput at 64 concurrent clients with dynamic batching (max_batch_size 64,
      max_wait_ms 5) against without (max_batch_size 1) — goal ≥ 5×;
  (c) the same 64-client load against ``mlflow models serve`` (a pyfunc wrapping the same
      module, ``--env-manager local``, one worker) as the anchor.

    .venv/bin/python benchmarks/serving.py                     # everything, defaults below
    .venv/bin/python benchmarks/serving.py --hidden 2048 --json serving.json

MLflow is optional: when ``import mlflow`` fails in this interpreter, ``--mlflow-python``
(default: ``$AISTUDIO_BENCH_MLFLOW_PYTHON``) names one where it works; without either the
anchor rows are skipped. Its pyfunc model is saved by this script run under that interpreter
(``--save-mlflow-model``), so it loads the very weights the deployment serves.

The server is tests/live.py's LiveServer (a real ``jupyter server`` process on SQLite); each
deployment has one replica process with ``--threads`` torch threads, the bare forward uses
as many. The load generator is a bare HTTP/1.1 keep-alive loop on asyncio streams in this
process (one connection per client); the table prints its CPU per request next to the
server's (the Jupyter process and its replicas), so a client that became the bottleneck
would show. Everything shares the machine's cores; the output prints their count and the
load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import percentile  # noqa: E402

MODEL_NAME = "bench-mlp"


def layer_spec(features: int, hidden: int, layers: int, classes: int) -> dict:
    body = [{"type": "linear", "out_features": hidden}, {"type": "relu"}] * layers
    return {"input_shape": [features], "layers": [*body, {"type": "linear", "out_features": classes}]}


# -- the client ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a POST costs a write and two reads, nothing more."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", "Content-Type": "application/json", **headers}.items())
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        self.writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            data = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                data += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            data = await self.reader.readexactly(int(fields.get("content-length", 0)))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


@dataclass
class Result:
    target: str
    clients: int
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    req_per_s: float
    server_cpu_ms: float
    client_cpu_ms: float
    #: single-client rows: a bare forward timed after each request, so both share the machine's load
    bare_p50_ms: float | None = None
    bare_p99_ms: float | None = None


def tree_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process and its children (a server and its replicas)."""
    if pid is None:
        return 0.0
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


async def drive(conns: list[Connection], path: str, body: bytes, total: int, between=None) -> tuple[list[float], int, float]:
    """``total`` POSTs spread over the connections, each client closed-loop: latencies, errors, wall.

    ``between()`` runs after every answer (the paired bare forward of the single-client rows)."""
    latencies: list[float] = []
    errors = 0
    left = total

    async def client(conn: Connection) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            started = time.perf_counter()
            status, data = await conn.post(path, body)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1
                if errors == 1:
                    print(f"  first error: {status} {data[:300]!r}")
            if between is not None:
                between()

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    return latencies, errors, time.perf_counter() - started


def measure(target: str, port: int, path: str, headers: dict[str, str], body: bytes, clients: int, requests: int, warmup: int, server_pid: int | None,
            forward=None) -> Result:
    """One row; with ``forward`` (single client), a bare forward is timed after each request too."""
    bare: list[float] = []
    forward_cpu = [0.0]

    def paired() -> None:
        started, cpu = time.perf_counter(), time.process_time()
        forward()
        bare.append((time.perf_counter() - started) * 1000)
        forward_cpu[0] += time.process_time() - cpu

    async def run() -> Result:
        conns = [Connection("127.0.0.1", port, headers) for _ in range(clients)]
        try:
            await drive(conns, path, body, max(clients, warmup))
            server_cpu, client_cpu = tree_cpu(server_pid), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            latencies, errors, wall = await drive(conns, path, body, requests, paired if forward else None)
            server_cpu, client_cpu = tree_cpu(server_pid) - server_cpu, sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - client_cpu
        finally:
            for c in conns:
                await c.close()
        ms = sorted(x * 1000 for x in latencies)
        n = len(ms)
        # the paired forwards ran in this process between requests: not the client's CPU
        row = Result(target, clients, n, errors, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), n / wall, 1000 * server_cpu / n,
                     1000 * max(0.0, client_cpu - forward_cpu[0]) / n)
        if bare:
            bare.sort()
            row.bare_p50_ms, row.bare_p99_ms = percentile(bare, 50), percentile(bare, 99)
        return row

    return asyncio.run(run())


# -- the bare forward --------------------------------------------------------------------------


def request_row(features: int):
    """The one row every request sends: 4 decimals, as a client would write it (~2 KB of JSON)."""
    import numpy as np

    return np.random.default_rng(1).normal(size=(1, features)).round(4)


def bare_forward(module, features: int, requests: int, warmup: int) -> tuple[Result, Result, float]:
    """Forward of one row in this process, alone and with the JSON a request carries; and one batch of 64."""
    import torch

    row = request_row(features)
    x = torch.from_numpy(row).float()
    body = json.dumps({"inputs": row.tolist()}).encode()
    batch = torch.randn(64, features)

    def timed(fn, n: int) -> list[float]:
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
        return sorted(out)

    with torch.no_grad():
        plain = timed(lambda: module(x), requests)
        with_json = timed(lambda: json.dumps({"predictions": module(torch.tensor(json.loads(body)["inputs"], dtype=torch.float32)).tolist()}), requests)
        batch_ms = percentile(timed(lambda: module(batch), max(20, requests // 20)), 50)

    def row(name: str, ms: list[float]) -> Result:
        return Result(name, 1, len(ms), 0, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), 1000 / (sum(ms) / len(ms)), 0.0, 0.0)

    return row("in-process forward", plain), row("forward + JSON", with_json), batch_ms


# -- MLflow ----------------------------------------------------------------------------------


def save_mlflow_model(out: Path, weights: Path, spec_path: Path) -> None:
    """Run under an interpreter with mlflow: a pyfunc model that rebuilds and runs the module."""
    import mlflow.pyfunc

    class Forward(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            import torch
            from safetensors.torch import load_file

            from aistudio_jupyter.modelspec import build_module

            torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "1")))
            spec = json.loads(Path(context.artifacts["spec"]).read_text())
            self.module = build_module(spec).eval()
            self.module.load_state_dict(load_file(context.artifacts["weights"]))

        def predict(self, context, model_input, params=None):
            import numpy as np
            import torch

            with torch.no_grad():
                return self.module(torch.from_numpy(np.asarray(model_input, dtype=np.float32))).numpy()

    mlflow.pyfunc.save_model(str(out), python_model=Forward(), artifacts={"weights": str(weights), "spec": str(spec_path)})


def mlflow_python(requested: str | None) -> str | None:
    if requested:
        return requested
    try:
        import mlflow  # noqa: F401

        return sys.executable
    except ImportError:
        return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLflowServer:
    """``mlflow models serve`` of the same module in its own process group."""

    def __init__(self, python: str, workdir: Path, weights: Path, spec_path: Path, threads: int):
        self.python, self.workdir, self.weights, self.spec_path, self.threads = python, workdir, weights, spec_path, threads
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> MLflowServer:
        model_dir = self.workdir / "mlflow-model"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "BENCH_TORCH_THREADS": str(self.threads),
               "MLFLOW_TRACKING_URI": (self.workdir / "mlruns").as_uri(),
               # mlflow starts ``uvicorn`` by name: the one beside its interpreter
               "PATH": os.pathsep.join([str(Path(self.python).parent), os.environ.get("PATH", "")])}
        saved = subprocess.run([self.python, __file__, "--save-mlflow-model", str(model_dir), "--weights", str(self.weights), "--spec", str(self.spec_path)],
                               env=env, cwd=self.workdir, capture_output=True, text=True)
        if saved.returncode != 0:
            raise RuntimeError(f"saving the mlflow model failed: {saved.stderr[-2000:]}")
        self.log = open(self.workdir / "mlflow-serve.log", "wb")
        self.proc = subprocess.Popen([self.python, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "--env-manager", "local", "-p", str(self.port), "-w", "1"],
                                     env=env, cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited: {(self.workdir / 'mlflow-serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ping", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("mlflow models serve did not answer /ping in 180 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# -- the run ---------------------------------------------------------------------------------


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def check(answer: bytes, key: str, expected) -> None:
    import numpy as np

    got = np.asarray(json.loads(answer)[key], dtype=np.float32)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"wrong predictions: {got[:1]} vs {expected[:1]}")


def run(args, workdir: Path) -> dict:
    import httpx
    import torch
    from safetensors.torch import save_file

    from aistudio_jupyter.modelspec import build_module
    from aistudio_jupyter.runtime.client import Client
    from tests.conftest import TOKENS
    from tests.live import LiveServer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = layer_spec(args.features, args.hidden, args.layers, args.classes)
    module = build_module(spec).eval()
    weights, spec_path = workdir / "model.safetensors", workdir / "spec.json"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    spec_path.write_text(json.dumps(spec))
    params = sum(p.numel() for p in module.parameters())

    row = request_row(args.features)
    with torch.no_grad():
        expected = module(torch.from_numpy(row).float()).numpy()
    body = json.dumps({"inputs": row.tolist()}).encode()
    x1 = torch.from_numpy(row).float()

    def forward() -> None:
        with torch.no_grad():
            module(x1)

    print(f"model: {args.features} → {args.layers} × {args.hidden} → {args.classes}, {params:,} parameters; torch threads {args.threads}; one row ({len(body):,} bytes of JSON) per request")
    plain, with_json, batch_ms = bare_forward(module, args.features, args.latency_requests, args.warmup)
    print(f"bare forward of 64 rows at once: {batch_ms:.2f} ms ({batch_ms / 64:.3f} ms a row)")
    results: list[Result] = [plain, with_json]
    loads = {"start": os.getloadavg()[0]}

    # the per-user rate limit (1,200 requests a minute by default) would be what is measured
    server = LiveServer(workdir / "live", f"sqlite:///{workdir / 'aistudio.db'}", aistudio={"tiers": {"default": {"requests_per_minute": 0}}})
    server.start(timeout=300)
    api = Client(url=server.api(), token=TOKENS["alice"], timeout=120)
    headers = {"Authorization": f"token {TOKENS['alice']}"}
    try:
        api.models.register(module, MODEL_NAME, model={"spec": spec})
        configs = [("deployment, batched", args.max_batch_size, args.max_wait_ms), ("deployment, unbatched", 1, 0)]
        for name, max_batch, max_wait in configs:
            dep = api.deployments.create(MODEL_NAME, name=f"bench-{max_batch}", cpus=args.threads, max_batch_size=max_batch, max_wait_ms=max_wait, timeout=300)
            path = f"/aistudio/api/deployments/{dep.id}/predict"
            answer = httpx.post(f"{server.base}{path}", content=body, headers={**headers, "Content-Type": "application/json"}, timeout=60).content
            check(answer, "predictions", expected)
            print(f"{name}: max_batch_size {max_batch}, max_wait_ms {max_wait} ({dep.id}, ready)")
            results.append(measure(f"{name} (1 client)", server.port, path, headers, body, 1, args.latency_requests, args.warmup, server.proc.pid, forward))
            results.append(measure(name, server.port, path, headers, body, args.concurrency, args.requests, args.warmup, server.proc.pid))
            dep.delete()
        loads["after deployments"] = os.getloadavg()[0]
    finally:
        api.close()
        server.stop()

    mlflow_py = mlflow_python(args.mlflow_python)
    if mlflow_py is None:
        print("mlflow is not importable here and --mlflow-python is not set: the anchor rows are skipped (pip install mlflow)")
    else:
        with MLflowServer(mlflow_py, workdir, weights, spec_path, args.threads) as anchor:
            answer = httpx.post(f"http://127.0.0.1:{anchor.port}/invocations", content=body, headers={"Content-Type": "application/json"}, timeout=60).content
            check(answer, "predictions", expected)
            version = subprocess.run([mlflow_py, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True).stdout.strip()
            print(f"mlflow {version} models serve: pyfunc, --env-manager local, 1 worker, port {anchor.port}")
            results.append(measure("mlflow serve (1 client)", anchor.port, "/invocations", {}, body, 1, args.latency_requests, args.warmup, anchor.proc.pid, forward))
            results.append(measure("mlflow serve", anchor.port, "/invocations", {}, body, args.concurrency, args.requests, args.warmup, anchor.proc.pid))
        loads["end"] = os.getloadavg()[0]
    return {"results": results, "loads": loads, "batch64_forward_ms": batch_ms, "parameters": params}


def report(args, out: dict) -> dict:
    results: list[Result] = out["results"]
    by = {r.target: r for r in results}
    print(f"\n## Serving: {args.features} → {args.layers} × {args.hidden} → {args.classes} MLP, one row per request, {args.concurrency} clients for throughput")
    print(f"machine: {machine()}; load average {', '.join(f'{k} {v:.2f}' for k, v in out['loads'].items())}")
    head = (f"{'target':<34} {'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'req/s':>8}"
            f" {'srv CPU ms/req':>14} {'cli CPU ms/req':>14} {'paired bare p50/p99 ms':>22}")
    print(head)
    print("-" * len(head))
    for r in results:
        paired = f"{r.bare_p50_ms:.2f} / {r.bare_p99_ms:.2f}" if r.bare_p50_ms is not None else ""
        print(f"{r.target:<34} {r.clients:>7} {r.requests:>8} {r.errors:>6} {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f} {r.req_per_s:>8.0f}"
              f" {r.server_cpu_ms:>14.2f} {r.client_cpu_ms:>14.2f} {paired:>22}")
    print("(srv CPU: the serving process tree — Jupyter server and replica, or mlflow's — per request; cli CPU: this load generator's;")
    print(" paired bare: the same forward in this process, timed right after each request of that row, so it saw the same load)")
    ratios: dict[str, float] = {}
    for name in ("deployment, unbatched", "deployment, batched", "mlflow serve"):
        one = by.get(f"{name} (1 client)")
        if one is not None and one.bare_p50_ms:
            ratios[f"latency p50, {name} / bare forward (paired)"] = one.p50_ms / one.bare_p50_ms
            ratios[f"latency p99, {name} / bare forward (paired)"] = one.p99_ms / one.bare_p99_ms
            ratios[f"latency p50 added ms, {name} - bare forward (paired)"] = one.p50_ms - one.bare_p50_ms
    if "deployment, batched" in by and "deployment, unbatched" in by:
        ratios["throughput, batched / unbatched (goal >= 5)"] = by["deployment, batched"].req_per_s / by["deployment, unbatched"].req_per_s
    if "mlflow serve" in by:
        anchor = by["mlflow serve"]
        for name in ("deployment, batched", "deployment, unbatched"):
            if name in by:
                ratios[f"throughput, {name} / mlflow serve"] = by[name].req_per_s / anchor.req_per_s
        one, other = by.get("deployment, unbatched (1 client)"), by.get("mlflow serve (1 client)")
        if one and other:
            ratios["latency p50, deployment (unbatched) / mlflow serve"] = one.p50_ms / other.p50_ms
    print()
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4, help="hidden layers")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the bare forward, each replica and mlflow's model")
    parser.add_argument("--concurrency", type=int, default=64, help="closed-loop clients for the throughput rows")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per throughput row")
    parser.add_argument("--latency-requests", type=int, default=500, help="measured requests per single-client row (and bare forwards)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--mlflow-python", default=os.environ.get("AISTUDIO_BENCH_MLFLOW_PYTHON"), help="an interpreter where mlflow imports (default: this one if it does)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--save-mlflow-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.save_mlflow_model:
        save_mlflow_model(args.save_mlflow_model, args.weights, args.spec)
        return 0
    with tempfile.TemporaryDirectory(prefix="aistudio-serving-bench-") as tmp:
        out = run(args, Path(tmp))
    ratios = report(args, out)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": {k: str(v) for k, v in vars(args).items() if v is not None}, "loads": out["loads"],
                                         "batch64_forward_ms": out["batch64_forward_ms"], "results": [asdict(r) for r in out["results"]], "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
