"""Real model versions in a second, a live server per module, and waiting on deployments."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import pandas as pd
import psutil

FEATURES = ["a", "b", "c", "d"]
LABELS = ["setosa", "versicolor", "virginica"]
LAYERS = {"input_shape": [4], "layers": [{"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}]}


def frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {name: rng.normal(i, 1 + i / 2, n).round(3) for i, name in enumerate(FEATURES)}
    data["species"] = rng.choice(LABELS, n)
    return pd.DataFrame(data)


def register_tabular(api, name: str, seed: int = 0, metrics: dict | None = None, lineage: dict | None = None):
    """A trainer-style classification version (features, standardisation, labels), registered
    with ``ais.models.register`` from a module built by the model spec, as a kernel would."""
    import torch

    from aistudio_jupyter.modelspec import build_module

    torch.manual_seed(seed)
    module = build_module(LAYERS, outputs=len(LABELS))
    sample = frame(200, seed=99)
    preprocessing = {
        "task": "classification",
        "inputs": {"features": FEATURES, "mean": sample[FEATURES].mean().tolist(), "std": sample[FEATURES].std().tolist()},
        "outputs": {"target": "species", "count": len(LABELS), "labels": LABELS},
    }
    return api.models.register(module, name, model={"spec": LAYERS}, preprocessing=preprocessing, metrics=metrics or {"acc": 0.5}, lineage=lineage)


def register_tensor(api, name: str, seed: int = 0):
    """A raw tensor model: ``input_schema`` of kind tensor, no preprocessing; and its module."""
    import torch

    from aistudio_jupyter.modelspec import build_module

    torch.manual_seed(seed)
    layers = {"input_shape": [4], "layers": [{"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": 2}]}
    module = build_module(layers)
    schema = {"input_schema": {"kind": "tensor", "shape": [None, 4], "dtype": "float32"}}
    return api.models.register(module, name, model={"spec": layers}, preprocessing=schema), module


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def deployment(http, dep_id: str) -> dict:
    r = http.get(f"/deployments/{dep_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_ready(http, dep_id: str, replicas: int = 1, version: int | None = None, timeout: float = 60) -> dict:
    def ready():
        d = deployment(http, dep_id)
        live = [r for r in d["replica_status"] if r["state"] != "stopped"]
        ok = d["state"] == "ready" and d["ready_replicas"] == replicas and len(live) == replicas
        if version is not None:
            ok = ok and all(r["model_version"] == version for r in live)
        return d if ok else None

    try:
        return wait_for(ready, timeout, f"{dep_id} ready with {replicas} replicas")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the deployment: {deployment(http, dep_id)}") from None


def replica_processes(root, deployment_id: str = "") -> list[psutil.Process]:
    """Live replica (and standby) processes of a server whose work dir is ``root``; of one
    deployment only with ``deployment_id`` (a replica runs in its deployment's directory)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmd, cwd = process.info.get("cmdline") or [], process.info.get("cwd") or ""
        if "aistudio_jupyter.serving.replica" in cmd and str(root) in cwd + " ".join(cmd) and deployment_id in cwd:
            found.append(process)
    return found


def kill_replicas(root) -> None:
    for process in replica_processes(root):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
