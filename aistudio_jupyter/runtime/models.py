"""``ais.models``: the registry from Python — versions, registering a module, loading one back.

A version's artifact is a safetensors file of the module's ``state_dict``; its ``spec`` says
how to rebuild the module (a layer-list model spec or an entry point) and how inputs and
outputs are transformed (feature columns and their standardisation, class labels). Loading
never unpickles anything: the module is built from the spec and the tensors copied in.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .client import APIError, Record, Resources, _id_of
from .datasets import _fetch

if TYPE_CHECKING:
    import pandas
    import torch

    from .client import Client

WEIGHTS_FORMAT = "aistudio.safetensors/1"


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def post_version(client: Client, model_id: str, meta: dict[str, Any], weights: bytes) -> Record:
    """``POST /models/{id}/versions``: ``meta`` JSON and the safetensors ``weights`` as two parts."""
    files = {
        "meta": ("meta.json", json.dumps(meta, allow_nan=False).encode(), "application/json"),
        "weights": ("model.safetensors", weights, "application/octet-stream"),
    }
    return Record(client.request("POST", f"/models/{model_id}/versions", files=files))


def build(source: dict[str, Any], input_dim: int | None, outputs: int | None) -> torch.nn.Module:
    """A fresh module from a version's (or a train spec's) ``model``: a spec or an entry point."""
    if source.get("spec") is not None:
        from ..modelspec import build_module

        return build_module(source["spec"], outputs=outputs)
    module_name, _, function = source["entry_point"].partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    return factory(input_dim=input_dim, outputs=outputs, **source.get("kwargs", {}))


class LoadedModel:
    """A registered version rebuilt in this process: ``module`` and ``predict(frame)``."""

    def __init__(self, module: torch.nn.Module, spec: dict[str, Any], version: Record):
        self.module, self.spec, self.version = module.eval(), spec, version

    def predict(self, frame: pandas.DataFrame) -> list[Any]:
        """Class labels (classification) or values in the target's units (regression), one per row."""
        import numpy as np
        import torch

        from .trainer.data import feature_matrix, standardise

        inputs, outputs = self.spec["inputs"], self.spec["outputs"]
        x = standardise(feature_matrix(frame, inputs["features"]), inputs["mean"], inputs["std"])
        device = next(self.module.parameters()).device
        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float().cpu()
        if "labels" in outputs:
            return [outputs["labels"][i] for i in out.argmax(dim=1).tolist()]
        return (out[:, 0] * outputs["std"] + outputs["mean"]).tolist()

    def __repr__(self) -> str:
        return f"<ais.LoadedModel {self.version.get('model_id')} v{self.version.get('version')}>"


class Models(Resources):
    """``ais.models``: the collection, plus versions, ``register``, ``download`` and ``load``."""

    def __init__(self, client: Client):
        super().__init__(client, "models")

    def _model_id(self, model: str | dict) -> str:
        if isinstance(model, dict):
            return _id_of(model)
        return model if self._id.match(model) else self.get(model)["id"]

    def versions(self, model: str | dict) -> list[Record]:
        """Every version of a model (by id, name or record), oldest first."""
        out: list[Record] = []
        params: dict[str, Any] = {"sort": "version", "limit": 500}
        model_id = self._model_id(model)
        while True:
            page = self._client.request("GET", f"/models/{model_id}/versions", params=params)
            out.extend(Record(v) for v in page["items"])
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    def version(self, model: str | dict, version: int | None = None) -> Record:
        """Version ``version`` of a model, or its latest."""
        ref = "latest" if version is None else str(int(version))
        return Record(self._client.request("GET", f"/models/{self._model_id(model)}/versions/{ref}"))

    def download(self, model: str | dict, path: str | os.PathLike, version: int | None = None) -> Path:
        """Stream a version's weights (safetensors) to ``path``, checked against its sha256."""
        v = self.version(model, version)
        dest = Path(path).expanduser()
        if dest.is_dir():
            dest = dest / f"{v['model_id']}-v{v['version']}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                size = v["spec"].get("artifact", {}).get("size_bytes")
                digest = _fetch(self._client, f"/models/{v['model_id']}/versions/{v['version']}/artifact", f, size if size is not None else 1)
            if digest != v["artifact_sha256"]:
                raise RuntimeError(f"The weights of {v['model_id']} v{v['version']} are corrupt: sha256 {digest}.")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def load(self, model: str | dict, version: int | None = None, device: str = "cpu") -> LoadedModel:
        """Rebuild a version's module from its spec and load its weights (safetensors only)."""
        from safetensors.torch import load_file

        v = self.version(model, version)
        spec = v["spec"]
        if spec.get("format") != WEIGHTS_FORMAT:
            raise TypeError(f"Version {v['version']} was not registered by AI Studio's trainer or register(); download() its weights instead.")
        with tempfile.TemporaryDirectory(prefix="aistudio-") as tmp:
            path = self.download(v["model_id"], tmp, v["version"])
            module = build(spec["model"], len(spec.get("inputs", {}).get("features", [])) or None, spec.get("outputs", {}).get("count"))
            module.load_state_dict(load_file(str(path), device=device))
        return LoadedModel(module.to(device), spec, v)

    def register(self, module: torch.nn.Module, name: str, *, model: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                 input_example: Any = None, preprocessing: dict[str, Any] | None = None, lineage: dict[str, Any] | None = None) -> Record:
        """Register ``module``'s weights as the next version of the model ``name`` (created when new).

        ``model`` says how to rebuild it (``{"spec": …}`` or ``{"entry_point": "pkg.mod:fn",
        "kwargs": …}``) so ``load`` can; ``preprocessing`` is the trainer's task/inputs/outputs.
        """
        from .trainer.checkpoint import weights_bytes

        try:
            model_id = self.get(name)["id"]
        except APIError as exc:
            if exc.status != 404:
                raise
            model_id = self.create(name=name)["id"]
        weights = weights_bytes(module)
        spec: dict[str, Any] = {"format": WEIGHTS_FORMAT, "framework": "torch", **(preprocessing or {})}
        if model is not None:
            spec["model"] = model
        lineage = dict(lineage or {})
        lineage.setdefault("code_hash", hashlib.sha256(repr(module).encode()).hexdigest())
        meta = {"spec": spec, "metrics": _finite(metrics or {}), "lineage": lineage}
        if input_example is not None:
            meta["input_example"] = _records(input_example)
        return post_version(self._client, model_id, meta, weights)


def _records(example: Any) -> Any:
    """A DataFrame's first rows as JSON records (NaN → null); anything else as it is."""
    if hasattr(example, "to_dict") and hasattr(example, "head"):
        frame = example.head(5)
        return json.loads(frame.to_json(orient="records"))
    return example
