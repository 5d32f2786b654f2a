"""One deployment replica: ``python -m aistudio_jupyter.serving.replica --dir D --index N --version V``.

It rebuilds the model version from the local copy of its spec and safetensors weights that the
supervisor placed (and checked) in ``D/vV/``, exactly as ``ais.models.load`` does (``build`` and
``LoadedModel`` from ``runtime.models``), on the GPU ``CUDA_VISIBLE_DEVICES`` gives it if any,
then serves ``GET /health`` and ``POST /predict`` on a Unix socket. It never talks to the
database or to storage and holds no credentials. Nothing is unpickled.

A replica whose supervisor stops checking its health (the server died and did not come back)
exits after ``--orphan-timeout`` seconds, so no replica outlives its server for ever.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .paths import DeploymentPaths


class Predictor:
    """A loaded model version; every payload goes through ``LoadedModel.predict``, as in a kernel."""

    def __init__(self, spec: dict[str, Any], weights: Path, version: int):
        import torch
        from safetensors.torch import load_file

        from ..runtime.models import LoadedModel, build
        from ..schemas.model_schema import input_schema

        self.spec = spec
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        features = spec.get("inputs", {}).get("features", [])
        module = build(spec["model"], len(features) or None, spec.get("outputs", {}).get("count"))
        module.load_state_dict(load_file(str(weights), device=self.device))
        self.model = LoadedModel(module.to(self.device), spec, {"version": version})
        schema = input_schema(spec) or {}
        self.columns = [f["name"] for f in schema.get("features", [])] if schema.get("kind") == "records" else []

    def predict(self, body: dict[str, Any]) -> list[Any]:
        if body.get("records") is not None:
            if not self.columns:
                raise ValueError("This model takes no records; send inputs (one tensor per row) instead.")
            return self.model.predict(self._frame(body["records"]))
        return self.model.predict(body["inputs"])

    def _frame(self, rows: list[dict[str, Any]]):
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=self.columns)
        for name in frame.columns:
            # a column that is null in every record is missing (imputed), not text
            if frame[name].dtype == object and frame[name].isna().all():
                frame[name] = frame[name].astype("float64")
        return frame


def serve(args: argparse.Namespace) -> None:
    from tornado import httpserver, ioloop, netutil, web

    paths = DeploymentPaths(Path(args.dir))
    spec = json.loads(paths.spec(args.version).read_text())
    started = time.monotonic()
    predictor = Predictor(spec, paths.weights(args.version), args.version)
    print(f"replica {args.index}: model version {args.version} loaded on {predictor.device} in {time.monotonic() - started:.2f}s", flush=True)
    state = {"last_health": time.monotonic(), "served": 0}

    class Health(web.RequestHandler):
        def get(self) -> None:
            state["last_health"] = time.monotonic()
            self.finish({"status": "ready", "index": args.index, "version": args.version, "pid": os.getpid(), "device": predictor.device, "served": state["served"]})

    class Predict(web.RequestHandler):
        def post(self) -> None:
            try:
                body = json.loads(self.request.body)
                predictions = predictor.predict(body)
            except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
                # the payload did not fit the model (a shape, a dtype): the caller's, not ours
                self.set_status(400)
                self.finish({"error": f"{type(exc).__name__}: {exc}"[:500]})
                return
            state["served"] += 1
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"predictions": predictions}))

    app = web.Application([("/health", Health), ("/predict", Predict)])
    socket_path = paths.socket(args.index, args.version)
    socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = netutil.bind_unix_socket(str(socket_path), mode=0o600)
    server = httpserver.HTTPServer(app, max_body_size=256 * 1024 * 1024)
    server.add_sockets([sock])
    loop = ioloop.IOLoop.current()

    def shutdown() -> None:
        # stop accepting; whatever was accepted has been answered (predict runs inline)
        server.stop()
        socket_path.unlink(missing_ok=True)
        loop.stop()

    def check_orphaned() -> None:
        if time.monotonic() - state["last_health"] > args.orphan_timeout:
            print(f"replica {args.index}: no health check for {args.orphan_timeout:g}s; its server is gone, exiting", flush=True)
            shutdown()

    signal.signal(signal.SIGTERM, lambda *_: loop.add_callback_from_signal(shutdown))
    signal.signal(signal.SIGINT, lambda *_: loop.add_callback_from_signal(shutdown))
    ioloop.PeriodicCallback(check_orphaned, 1000).start()
    print(f"replica {args.index}: serving on {socket_path}", flush=True)
    loop.start()


def standby() -> list[str]:
    """Import what a replica needs, then wait for an assignment on stdin: one JSON line with
    ``argv``, ``env`` and ``log``. Importing torch is most of a replica's start-up; a standby
    process has paid it before it is needed. EOF (the server is gone) ends it."""
    import pandas  # noqa: F401
    import torch  # noqa: F401
    from safetensors.torch import load_file  # noqa: F401
    from tornado import httpserver, netutil, web  # noqa: F401

    from ..runtime import models  # noqa: F401
    from ..runtime.trainer import data  # noqa: F401

    line = sys.stdin.readline()
    if not line.strip():
        sys.exit(0)
    job = json.loads(line)
    fd = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    return [str(a) for a in job["argv"]]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--standby"]:
        argv = standby()
    parser = argparse.ArgumentParser(prog="aistudio_jupyter.serving.replica")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--orphan-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    threads = os.environ.get("AISTUDIO_REPLICA_THREADS")
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    serve(args)
    sys.exit(0)


if __name__ == "__main__":
    main()
