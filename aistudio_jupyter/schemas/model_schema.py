"""The input schema of a model version: what a predict request must send, read from its spec.

Two kinds, both plain JSON so a deployment can check a payload without torch:

- ``{"kind": "records", "features": [{"name": "petal", "dtype": "float64"}, ...]}``: rows of
  named values (a DataFrame). ``dtype`` is a numpy dtype name: ``float64``/``float32``,
  ``int64``/``int32``/…, ``bool``, or ``string`` / ``datetime`` for what is not a number.
  Trainer versions (``spec.inputs.features``) take numbers only, so their features say
  ``float64`` (an integer or a boolean value is a number too).
- ``{"kind": "tensor", "shape": [None, 4], "dtype": "float32"}``: one array per request row,
  ``None`` standing for the batch axis (and for any axis the example could not fix).

Where it comes from, first match wins: the trainer's feature list (it is what inference
transforms); the schema ``ais.models.register`` recorded from its ``input_example``; a layer
spec's ``input_shape``; otherwise there is none and any payload goes through unchecked.
"""

from __future__ import annotations

from typing import Any


def input_schema(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The input schema of a version with this ``spec``, or None when it says nothing."""
    if not isinstance(spec, dict):
        return None
    recorded = spec.get("input_schema") if isinstance(spec.get("input_schema"), dict) else None
    inputs = spec.get("inputs")
    features = inputs.get("features") if isinstance(inputs, dict) else None
    if isinstance(features, list) and features and all(isinstance(f, str) for f in features):
        # the recorded example may carry the target and other columns too: only features count
        known = {f.get("name"): f.get("dtype") for f in (recorded or {}).get("features", []) if isinstance(f, dict)} if recorded and recorded.get("kind") == "records" else {}
        return {"kind": "records", "features": [{"name": f, "dtype": _numeric(known.get(f))} for f in features]}
    if recorded is not None and recorded.get("kind") in ("records", "tensor"):
        return recorded
    model = spec.get("model")
    layers = model.get("spec") if isinstance(model, dict) else None
    if isinstance(layers, dict) and isinstance(layers.get("input_shape"), list):
        long = layers.get("input_dtype") == "long" or (layers.get("input_dtype") is None and _first_type(layers) == "embedding")
        return {"kind": "tensor", "shape": [None, *layers["input_shape"]], "dtype": "int64" if long else "float32"}
    return None


def _numeric(dtype: Any) -> str:
    return dtype if isinstance(dtype, str) and (dtype.startswith(("float", "int", "uint")) or dtype == "bool") else "float64"


def _first_type(layers: dict) -> Any:
    first = (layers.get("layers") or [None])[0]
    return first.get("type") if isinstance(first, dict) else None
