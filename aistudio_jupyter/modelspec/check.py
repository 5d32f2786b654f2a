"""A half-written spec, checked layer by layer: what the ModelBuilder shows while someone edits.

``infer_shapes`` wants a valid spec and stops at the first layer that does not fit. An editor
holds specs that are wrong in several places at once (a typed-over field here, an unknown layer
there), so ``check`` validates every layer on its own, names each problem with its layer index
and field, and still gives the shapes of the layers before the first broken one. It never
raises for bad input: every problem is a message.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .schema import LAYER_TYPES, Layer, ModelSpec
from .shapes import SpecError, infer_shapes

_LAYER = TypeAdapter(Layer)
_MODELS = {m.model_fields["type"].annotation.__args__[0]: m for m in Layer.__origin__.__args__}

#: what a freshly added layer starts with, for the fields that have no default
STARTER: dict[str, dict[str, Any]] = {
    "linear": {"out_features": 64},
    "conv1d": {"out_channels": 16, "kernel_size": 3},
    "conv2d": {"out_channels": 16, "kernel_size": 3},
    "maxpool1d": {"kernel_size": 2},
    "maxpool2d": {"kernel_size": 2},
    "avgpool1d": {"kernel_size": 2},
    "avgpool2d": {"kernel_size": 2},
    "embedding": {"num_embeddings": 1000, "embedding_dim": 64},
    "transformer_encoder_layer": {"nhead": 4, "dim_feedforward": 256},
}

_GROUPS = {
    "Dense": ("linear", "flatten"),
    "Convolution and pooling": ("conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"),
    "Normalisation and regularisation": ("batchnorm1d", "batchnorm2d", "layernorm", "dropout"),
    "Activations": ("relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu"),
    "Sequences": ("embedding", "transformer_encoder_layer", "mean_pool"),
}


@dataclasses.dataclass
class Check:
    """The outcome of checking a spec. ``spec`` is the normalised spec (as the trainer takes it)
    when there is no error, else None; ``shapes[i]`` is None for layers after the first broken one."""

    shapes: list[dict | None]
    errors: list[dict]
    param_count: int | None
    spec: dict | None


def _field_kind(prop: dict) -> dict:
    """A form field from a property of the layer's JSON schema."""
    options = prop.get("anyOf") or [prop]
    kinds = {o.get("type") for o in options}
    out: dict[str, Any] = {}
    for o in options:
        for key in ("minimum", "maximum", "exclusiveMaximum"):
            if key in o:
                out[{"minimum": "min", "maximum": "max", "exclusiveMaximum": "below"}[key]] = o[key]
    if "enum" in prop:
        out["kind"], out["choices"] = "choice", list(prop["enum"])
    elif kinds == {"integer", "string"}:
        out["kind"], out["special"] = "int", next(o["const"] for o in options if "const" in o)
    elif kinds == {"integer", "null"}:
        out["kind"], out["optional"] = "int", True
    elif "integer" in kinds:
        out["kind"] = "int"
    elif "number" in kinds:
        out["kind"] = "float"
    elif "boolean" in kinds:
        out["kind"] = "bool"
    else:  # pragma: no cover - every field of the schema is one of the above
        out["kind"] = "text"
    return out


def layer_catalog() -> dict:
    """Every layer type with its label, group, form fields and the values a new layer starts with."""
    groups = {t: g for g, types in _GROUPS.items() for t in types}
    catalog = {}
    for t in LAYER_TYPES:
        model = _MODELS[t]
        schema = model.model_json_schema()
        required = set(schema.get("required", ()))
        fields = []
        for name, prop in schema["properties"].items():
            if name == "type":
                continue
            field = {"name": name, "label": name.replace("_", " "), "help": prop.get("description", ""), **_field_kind(prop)}
            if "default" in prop:
                field["default"] = prop["default"]
            field["required"] = name in required
            fields.append(field)
        catalog[t] = {
            "label": model.__name__,
            "group": groups.get(t, "Other"),
            "help": (model.__doc__ or "").strip() if model.__doc__ and not model.__doc__.startswith(model.__name__ + "(") else "",
            "fields": fields,
            "starter": {"type": t, **STARTER.get(t, {})},
        }
    return catalog


def new_layer(layer_type: str, **params: Any) -> dict:
    """A layer of ``layer_type`` with starter values, overridden by ``params``."""
    return {"type": layer_type, **STARTER.get(layer_type, {}), **params}


def _message(error: dict) -> tuple[str | None, str]:
    """(field, friendly message) from one pydantic error of a single layer."""
    loc = [p for p in error["loc"] if isinstance(p, str)]
    field = loc[1] if len(loc) > 1 else None
    kind, msg = error["type"], error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        return field, f"unknown parameter {field!r}"
    if kind == "missing":
        return field, f"{field} is required"
    msg = msg[0].lower() + msg[1:]
    return field, f"{field}: {msg}" if field else msg


def _check_layer(index: int, layer: Any) -> list[dict]:
    if not isinstance(layer, dict):
        return [{"index": index, "field": None, "message": "a layer is an object with a 'type'"}]
    t = layer.get("type")
    if t not in _MODELS:
        message = "a layer needs a type" if t in (None, "") else f"unknown layer type {str(t)[:80]!r}"
        return [{"index": index, "field": "type", "message": message}]
    try:
        _LAYER.validate_python(layer)
    except ValidationError as exc:
        seen, out = set(), []
        for error in exc.errors(include_url=False, include_input=False):
            field, message = _message(error)
            if field in seen:  # a union field fails once per branch: the first says enough
                continue
            seen.add(field)
            out.append({"index": index, "field": field, "message": message})
        return out
    return []


def _check_input(input_shape: Any) -> str | None:
    if not isinstance(input_shape, (list, tuple)) or not 1 <= len(input_shape) <= 3:
        return "the input shape has 1 to 3 sizes: (features), (channels, length) or (channels, height, width)"
    for size in input_shape:
        if isinstance(size, bool) or not isinstance(size, int):
            return f"input sizes are whole numbers, got {str(size)[:40]!r}"
        if not 1 <= size <= 1_048_576:
            return f"input sizes are between 1 and 1048576, got {size}"
    return None


def _strip_prefix(message: str, index: int, layer_type: str) -> str:
    prefix = f"layer {index} ({layer_type}): "
    return message[len(prefix):] if message.startswith(prefix) else message


def check(input_shape: Any, layers: Any, outputs: Any = None) -> Check:
    """Shapes, parameters and every problem of a spec being edited; never raises for bad input.

    Errors are ``{"index", "field", "message"}`` with ``index`` -1 for the input shape, the
    outputs and the spec as a whole."""
    errors: list[dict] = []
    layers = list(layers) if isinstance(layers, (list, tuple)) else []
    if not layers:
        errors.append({"index": -1, "field": "layers", "message": "add at least one layer"})
    if len(layers) > 256:
        errors.append({"index": -1, "field": "layers", "message": f"a spec has at most 256 layers, this one has {len(layers)}"})
    problem = _check_input(input_shape)
    if problem:
        errors.append({"index": -1, "field": "input_shape", "message": problem})
    if outputs is not None and (isinstance(outputs, bool) or not isinstance(outputs, int) or not 1 <= outputs <= 1_048_576):
        errors.append({"index": -1, "field": "outputs", "message": f"outputs is a whole number between 1 and 1048576, got {str(outputs)[:40]!r}"})
        outputs = None
    for i, layer in enumerate(layers):
        errors.extend(_check_layer(i, layer))
    linears = [i for i, layer in enumerate(layers) if isinstance(layer, dict) and layer.get("type") == "linear"]
    for i in linears[:-1]:
        if layers[i].get("out_features") == "auto":
            errors.append({"index": i, "field": "out_features", "message": "out_features 'auto' is only allowed on the last linear layer"})

    broken = sorted({e["index"] for e in errors if e["index"] >= 0})
    # the layers before the first broken one still have shapes, unless the input itself is wrong
    valid = 0 if any(e["field"] == "input_shape" for e in errors) else min(broken[0] if broken else len(layers), 256)
    shapes: list[dict | None] = [None] * len(layers)
    param_count = None
    spec = None
    if valid:
        prefix = ModelSpec.model_validate({"input_shape": list(input_shape), "layers": layers[:valid]})
        try:
            infos = infer_shapes(prefix, outputs)
        except SpecError as exc:
            index = exc.index if exc.index >= 0 else -1
            layer_type = layers[index]["type"] if index >= 0 else ""
            errors.append({"index": index, "field": None, "message": _strip_prefix(exc.message, index, layer_type)})
            if index > 0:
                infos = infer_shapes(ModelSpec.model_validate({"input_shape": list(input_shape), "layers": layers[:index]}), outputs)
            else:
                infos = []
        for info in infos:
            shapes[info.index] = {"index": info.index, "type": info.type, "input_shape": list(info.input_shape), "output_shape": list(info.output_shape), "params": info.params}
        if not errors:
            param_count = sum(info.params for info in infos)
            spec = prefix.model_dump(mode="json")
    errors.sort(key=lambda e: e["index"])
    return Check(shapes=shapes, errors=errors, param_count=param_count, spec=spec)


def parse_spec(spec: Any) -> tuple[list | None, list]:
    """(input_shape, layers) from a spec dict, a ``ModelSpec``, a JSON string or a bare layer list."""
    if isinstance(spec, ModelSpec):
        spec = spec.model_dump(mode="json")
    if isinstance(spec, str):
        spec = json.loads(spec)
    if isinstance(spec, dict) and "spec" in spec and "layers" not in spec:
        spec = spec["spec"]  # {"spec": ...} as for ais.train(model=...)
    if isinstance(spec, list):
        return None, [dict(layer) if isinstance(layer, dict) else layer for layer in spec]
    if isinstance(spec, dict):
        layers = spec.get("layers") or []
        return spec.get("input_shape"), [dict(layer) if isinstance(layer, dict) else layer for layer in layers]
    raise TypeError("spec is a model spec ({'input_shape': [...], 'layers': [...]}), a list of layers or its JSON text")
