"""``ais.models``: the registry from Python — versions, stages, compare, lineage, registering
a module, loading one back.

A version's artifact is a safetensors file of the module's ``state_dict``; its ``spec`` says
how to rebuild the module (a layer-list model spec or an entry point) and how inputs and
outputs are transformed (feature columns and their standardisation, class labels). Loading
never unpickles anything: the module is built from the spec and the tensors copied in.

``ais.models.get``/``list``/``create`` answer ``Model`` records, which carry the same methods
for one model (``m.versions()``, ``m.set_stage(2, "production")``, ``m.compare()``, ...).
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
    """A registered version rebuilt in this process: ``module`` and ``predict(inputs)``."""

    def __init__(self, module: torch.nn.Module, spec: dict[str, Any], version: Record):
        self.module, self.spec, self.version = module.eval(), spec, version

    def predict(self, inputs: Any) -> list[Any]:
        """One prediction per row.

        A trainer version (its spec has ``inputs.features``) takes a DataFrame and answers class
        labels (classification) or values in the target's units (regression). Any other version
        takes a batch (a tensor, an array, nested lists, or a DataFrame of numbers) and answers
        the module's outputs as lists.
        """
        import numpy as np
        import torch

        params = next(self.module.parameters(), None)
        device = params.device if params is not None else torch.device("cpu")
        if "inputs" not in self.spec:
            with torch.no_grad():
                out = self.module(_batch(inputs, self.spec).to(device))
            return out.float().cpu().tolist() if out.is_floating_point() else out.cpu().tolist()

        from .trainer.data import feature_matrix, standardise

        features, outputs = self.spec["inputs"], self.spec.get("outputs", {})
        x = standardise(feature_matrix(inputs, features["features"]), features["mean"], features["std"])
        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float().cpu()
        if "labels" in outputs:
            return [outputs["labels"][i] for i in out.argmax(dim=1).tolist()]
        if "mean" in outputs:
            return (out[:, 0] * outputs["std"] + outputs["mean"]).tolist()
        return out.tolist()

    def __repr__(self) -> str:
        return f"<ais.LoadedModel {self.version.get('model_id')} v{self.version.get('version')}>"


class Model(Record):
    """A model record that can also list, compare, stage, load and delete its versions."""

    def __init__(self, models: Models | None, data: dict):
        super().__init__(data)
        # an attribute, not a key: the record stays exactly what the API returned
        object.__setattr__(self, "_models", models)

    def _collection(self) -> Models:
        if self._models is None:  # unpickled: bind to the default client
            from .client import client

            object.__setattr__(self, "_models", client().models)
        return self._models

    @property
    def _client(self) -> Client:
        return self._collection()._client

    def __reduce__(self):
        # the connection does not travel; the record does
        return (_restore, (dict(self),))

    def refresh(self) -> Model:
        """Read the record again from the server."""
        fresh = self._client.request("GET", f"/models/{self['id']}")
        self.clear()
        self.update(fresh)
        return self

    def versions(self, stage: str | None = None) -> list[Record]:
        """Every version (or those in ``stage``), oldest first."""
        return self._collection().versions(self, stage=stage)

    def version(self, version: int | str | None = None) -> Record:
        """A version by number, ``"latest"`` (or None), ``"production"`` or ``"staging"``."""
        return self._collection().version(self, version)

    def set_stage(self, version: int | str, stage: str, archive_existing: bool = False) -> Record:
        """Move a version to ``none``, ``staging``, ``production`` or ``archived``."""
        return self._collection().set_stage(self, version, stage, archive_existing=archive_existing)

    def compare(self, versions: list[int] | None = None) -> pandas.DataFrame:
        """Metrics, hyperparameters and lineage of versions side by side (a DataFrame)."""
        return self._collection().compare(self, versions)

    def lineage(self, version: int | str | None = None) -> Record:
        """Dataset version → job → this version → deployments."""
        return self._collection().lineage(self, version)

    def load(self, version: int | str | None = None, device: str = "cpu") -> LoadedModel:
        """Rebuild a version (default: the latest) in this process."""
        return self._collection().load(self, version, device=device)

    def download(self, path: str | os.PathLike, version: int | str | None = None) -> Path:
        return self._collection().download(self, path, version)

    def delete_version(self, version: int | str) -> None:
        """Delete a version no deployment uses (APIError 409 names the deployments otherwise)."""
        self._collection().delete_version(self, version)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        # the card is a widget: without a comm (a plain terminal, nbconvert) the text repr stands
        try:
            from ..widgets.cards import ModelCard

            return ModelCard(self, client=self._client)._repr_mimebundle_(**kwargs)
        except Exception:
            return {"text/plain": repr(self)}


def _restore(data: dict) -> Model:
    return Model(None, data)


class Models(Resources):
    """``ais.models``: the collection (answering ``Model`` records), plus versions, stages,
    ``compare``, ``lineage``, ``register``, ``download``, ``load`` and ``delete_version``."""

    def __init__(self, client: Client):
        super().__init__(client, "models")

    def _record(self, data: dict) -> Model:
        return Model(self, data)

    def _model_id(self, model: str | dict) -> str:
        if isinstance(model, dict):
            return _id_of(model)
        return model if self._id.match(model) else self.get(model)["id"]

    def versions(self, model: str | dict, stage: str | None = None) -> list[Record]:
        """Every version of a model (by id, name or record), oldest first; only ``stage``'s if given."""
        out: list[Record] = []
        params: dict[str, Any] = {"sort": "version", "limit": 500}
        if stage is not None:
            params["stage"] = stage
        model_id = self._model_id(model)
        while True:
            page = self._client.request("GET", f"/models/{model_id}/versions", params=params)
            out.extend(Record(v) for v in page["items"])
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    def version(self, model: str | dict, version: int | str | None = None) -> Record:
        """Version ``version`` of a model (a number, ``"production"``, ``"staging"``), or its latest."""
        return Record(self._client.request("GET", f"/models/{self._model_id(model)}/versions/{_ref(version)}"))

    def set_stage(self, model: str | dict, version: int | str, stage: str, archive_existing: bool = False) -> Record:
        """Move a version to another stage; ``archive_existing`` archives the versions already in
        ``stage`` (staging or production) in the same transaction."""
        body = {"stage": stage, "archive_existing": bool(archive_existing)}
        return Record(self._client.request("PATCH", f"/models/{self._model_id(model)}/versions/{_ref(version)}", json=body))

    def compare(self, model: str | dict, versions: list[int] | None = None) -> pandas.DataFrame:
        """Versions side by side: one column per version, one row per metric, hyperparameter and
        lineage field (index levels ``kind`` and ``key``); default: the newest 20 versions."""
        import pandas as pd

        params = {"versions": ",".join(str(int(v)) for v in versions)} if versions else None
        data = self._client.request("GET", f"/models/{self._model_id(model)}/compare", params=params)
        columns = [c["version"] for c in data["versions"]]
        rows, index = [], []
        for kind, section in (("metric", "metrics"), ("hyperparameter", "hyperparameters"), ("lineage", "lineage")):
            for key, values in data[section].items():
                index.append((kind, key))
                rows.append(values)
        frame = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["kind", "key"]) if index else None, columns=pd.Index(columns, name="version"))
        frame.attrs["differs"] = data["differs"]
        frame.attrs["stages"] = {c["version"]: c["stage"] for c in data["versions"]}
        return frame

    def lineage(self, model: str | dict, version: int | str | None = None) -> Record:
        """``{dataset, job, model_version, deployments}``; what you cannot read shows as ``{id, hidden}``."""
        return Record(self._client.request("GET", f"/models/{self._model_id(model)}/versions/{_ref(version)}/lineage"))

    def delete_version(self, model: str | dict, version: int | str) -> None:
        """Delete a version no deployment uses (APIError 409 names the deployments otherwise)."""
        self._client.request("DELETE", f"/models/{self._model_id(model)}/versions/{_ref(version)}")

    def download(self, model: str | dict, path: str | os.PathLike, version: int | str | None = None) -> Path:
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

    def load(self, model: str | dict, version: int | str | None = None, device: str = "cpu") -> LoadedModel:
        """Rebuild a version's module from its spec and load its weights (safetensors only)."""
        from safetensors.torch import load_file

        v = self.version(model, version)
        spec = v["spec"]
        if spec.get("format") != WEIGHTS_FORMAT:
            raise TypeError(f"Version {v['version']} was not registered by AI Studio's trainer or register(); download() its weights instead.")
        with tempfile.TemporaryDirectory(prefix="aistudio-") as tmp:
            path = self.download(v["model_id"], tmp, v["version"])
            if "model" not in spec:
                raise TypeError(f"Version {v['version']} has no model spec or entry point to rebuild it from; download() its weights instead.")
            module = build(spec["model"], len(spec.get("inputs", {}).get("features", [])) or None, spec.get("outputs", {}).get("count"))
            module.load_state_dict(load_file(str(path), device=device))
        return LoadedModel(module.to(device), spec, v)

    def register(self, module: torch.nn.Module, name: str, *, model: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                 input_example: Any = None, preprocessing: dict[str, Any] | None = None, lineage: dict[str, Any] | None = None) -> Record:
        """Register ``module``'s weights as the next version of the model ``name`` (created when new).

        ``model`` says how to rebuild it (``{"spec": …}`` or ``{"entry_point": "pkg.mod:fn",
        "kwargs": …}``) so ``load`` can; left out, a plain ``nn.Sequential`` of the layers a model
        spec knows is described automatically (anything else raises TypeError saying what to
        pass). ``input_example`` (a DataFrame, a tensor, an array or nested lists) is kept with
        the version, and its input schema (column names and dtypes, or the shape and dtype of a
        batch) is what deployments check predict requests against. ``preprocessing`` is the
        trainer's task/inputs/outputs.
        """
        from ..modelspec import from_module
        from .trainer.checkpoint import weights_bytes

        if model is None:
            model = {"spec": from_module(module, _sample_shape(input_example, preprocessing))}
        schema = _input_schema(input_example) if input_example is not None else None

        try:
            model_id = self.get(name)["id"]
        except APIError as exc:
            if exc.status != 404:
                raise
            model_id = self.create(name=name)["id"]
        weights = weights_bytes(module)
        spec: dict[str, Any] = {"format": WEIGHTS_FORMAT, "framework": "torch", **(preprocessing or {}), "model": model}
        if schema is not None:
            spec["input_schema"] = schema
        lineage = dict(lineage or {})
        lineage.setdefault("code_hash", hashlib.sha256(repr(module).encode()).hexdigest())
        meta = {"spec": spec, "metrics": _finite(metrics or {}), "lineage": lineage}
        if input_example is not None:
            meta["input_example"] = _records(input_example)
        return post_version(self._client, model_id, meta, weights)


def _ref(version: int | str | None) -> str:
    if version is None:
        return "latest"
    if isinstance(version, str) and not version.isdigit():
        return version  # latest, production, staging: the server says what it knows
    return str(int(version))


def _is_frame(example: Any) -> bool:
    return hasattr(example, "to_dict") and hasattr(example, "head") and hasattr(example, "columns")


def _records(example: Any) -> Any:
    """A DataFrame's first rows as JSON records (NaN → null); a tensor's or array's first rows
    as nested lists; anything else as it is."""
    if _is_frame(example):
        frame = example.head(5)
        return json.loads(frame.to_json(orient="records"))
    if hasattr(example, "tolist") and hasattr(example, "shape"):
        return example[:5].tolist() if len(example.shape) else example.tolist()
    return example


def _tensor_dtype(example: Any) -> str:
    import numpy as np

    if hasattr(example, "dtype") and not isinstance(example, np.ndarray) and str(example.dtype).startswith("torch."):
        return str(example.dtype).removeprefix("torch.")
    array = np.asarray(example)
    if array.dtype.kind == "f":
        # nested Python lists of floats come out as float64; modules take float32
        return "float32" if not isinstance(example, np.ndarray) else str(array.dtype)
    if array.dtype.kind in "iu" and not isinstance(example, np.ndarray):
        return "int64"
    return str(array.dtype)


def _frame_dtype(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    if kind in "fiub":
        return "bool" if kind == "b" else str(dtype)
    if kind == "M":
        return "datetime"
    return "string"


def _input_schema(example: Any) -> dict[str, Any]:
    """What predict requests must look like, read from an input example."""
    import numpy as np

    if _is_frame(example):
        return {"kind": "records", "features": [{"name": str(c), "dtype": _frame_dtype(t)} for c, t in example.dtypes.items()]}
    shape = list(example.shape) if hasattr(example, "shape") else list(np.asarray(example).shape)
    if not shape:
        raise TypeError("input_example must be a batch (a DataFrame, or a tensor/array/list with a batch axis), not a scalar.")
    return {"kind": "tensor", "shape": [None, *(int(d) for d in shape[1:])], "dtype": _tensor_dtype(example)}


def _sample_shape(example: Any, preprocessing: dict[str, Any] | None) -> list[int] | None:
    """One sample's shape for a layer spec: the trainer's feature count, or an example batch's rows."""
    features = ((preprocessing or {}).get("inputs") or {}).get("features")
    if features:
        return [len(features)]
    if example is None:
        return None
    if _is_frame(example):
        return [len(example.columns)]
    import numpy as np

    shape = list(example.shape) if hasattr(example, "shape") else list(np.asarray(example).shape)
    return shape[1:] or None


def _batch(inputs: Any, spec: dict[str, Any]) -> torch.Tensor:
    """A predict batch as the tensor the module takes (dtype from the version's input schema)."""
    import numpy as np
    import torch

    from ..schemas.model_schema import input_schema

    schema = input_schema(spec) or {}
    dtype = getattr(torch, schema.get("dtype") or "float32", torch.float32) if schema.get("kind") == "tensor" else torch.float32
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype)
    if _is_frame(inputs):
        inputs = inputs.to_numpy()
    return torch.as_tensor(np.asarray(inputs), dtype=dtype)
