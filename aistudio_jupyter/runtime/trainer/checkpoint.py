"""Checkpoints and weights as safetensors: tensors plus a JSON string in the header's metadata.

One file per checkpoint (the server stores it with ``PUT /jobs/{id}/checkpoint`` and checks it
parses as safetensors), so a checkpoint can never run code when loaded, here or on the server.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import torch
from safetensors.torch import load, save

if TYPE_CHECKING:
    from ..client import Client

META_KEY = "aistudio"
CHECKPOINT_FORMAT = "aistudio.checkpoint/1"
WEIGHTS_FORMAT = "aistudio.safetensors/1"


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or strided storage (tied weights, views): save copies
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def pack(tensors: dict[str, torch.Tensor], meta: dict[str, Any], fmt: str = CHECKPOINT_FORMAT) -> bytes:
    """``tensors`` and ``meta`` (JSON-able) as the bytes of one safetensors file."""
    return save(_plain(tensors), metadata={"format": fmt, META_KEY: json.dumps(meta)})


def unpack(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The inverse of ``pack``."""
    tensors = load(data)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header.get("__metadata__", {}).get(META_KEY, "{}"))
    return tensors, meta


def weights_bytes(module: torch.nn.Module) -> bytes:
    """A module's ``state_dict`` as the safetensors file a model version stores."""
    return save(_plain(module.state_dict()), metadata={"format": WEIGHTS_FORMAT})


def upload(client: Client, job_id: str, data: bytes) -> dict:
    """Store ``data`` as the job's latest checkpoint (the job's own token only)."""
    return client.request("PUT", f"/jobs/{job_id}/checkpoint", content=data, headers={"Content-Type": "application/octet-stream"})


def fetch(client: Client, job_id: str) -> bytes | None:
    """The job's latest checkpoint, or None when it has none."""
    try:
        response = client.http.get(f"/jobs/{job_id}/checkpoint")
    except httpx.TransportError as exc:  # as Client.request says it, so callers retry the same way
        raise ConnectionError(f"Cannot reach AI Studio at {client.url}: {exc}") from exc
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise client.error(response)
    return response.content

