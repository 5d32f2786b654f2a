"""Model specs: a JSON list of layers that the trainer builds, the estimator sizes and the
ModelBuilder edits. Pure Python except ``build_module``, which imports torch when called."""

from .build import build_module, constructor_calls, to_python
from .introspect import from_module
from .schema import LAYER_TYPES, Layer, ModelSpec
from .shapes import LayerInfo, SpecError, infer_shapes, output_shape, parameter_count

__all__ = [
    "LAYER_TYPES",
    "Layer",
    "LayerInfo",
    "ModelSpec",
    "SpecError",
    "build_module",
    "constructor_calls",
    "from_module",
    "infer_shapes",
    "output_shape",
    "parameter_count",
    "to_python",
]
