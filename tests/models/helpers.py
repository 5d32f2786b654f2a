"""Registering versions over HTTP for the registry tests."""

from __future__ import annotations

import io
import json
import uuid

import torch
from safetensors.torch import save as save_safetensors

LAYERS = {"input_shape": [3], "layers": [{"type": "linear", "out_features": 2}]}


def multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, data in parts:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def weights(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return save_safetensors({k: v.contiguous() for k, v in torch.nn.Linear(3, 2).state_dict().items()}, metadata={"format": "aistudio.safetensors/1"})


async def new_model(api, name: str | None = None, user: str = "alice", **fields) -> dict:
    reply = await api("POST", "models", user=user, json_body={"name": name or f"m-{uuid.uuid4().hex[:8]}", **fields})
    assert reply.status == 201, reply.body
    return reply.body


async def register(api, model_id: str, *, seed: int = 0, user: str = "alice", metrics: dict | None = None, lineage: dict | None = None, spec: dict | None = None, data: bytes | None = None) -> dict:
    meta = {"spec": spec or {"format": "aistudio.safetensors/1", "model": {"spec": LAYERS}}, "metrics": metrics or {}, "lineage": lineage or {}}
    body, headers = multipart([("meta", json.dumps(meta).encode()), ("weights", data if data is not None else weights(seed))])
    reply = await api("POST", f"models/{model_id}/versions", user=user, body=body, headers=headers)
    assert reply.status == 201, reply.body
    return reply.body


async def deploy(api, model_id: str, version: int | None, user: str = "alice", **fields) -> dict:
    body = {"name": f"d-{uuid.uuid4().hex[:8]}", "model_id": model_id, **fields}
    if version is not None:
        body["model_version"] = version
    reply = await api("POST", "deployments", user=user, json_body=body)
    assert reply.status == 201, reply.body
    return reply.body
