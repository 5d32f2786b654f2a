"""Shape inference for a model spec, in pure Python (no torch): every layer's output shape,
parameter count (exactly what torch allocates), forward FLOPs and what autograd keeps for the
backward pass. The estimator, the trainer's pre-flight check and the ModelBuilder use it.

Memory model for training activations (per sample): autograd keeps a tensor alive while some
layer's backward needs it. Each layer states whether its backward reads its input (linear,
conv, norms, gelu, ...) or its output (relu, tanh, sigmoid), plus what it keeps inside
(dropout masks, pooling indices, a transformer layer's q/k/v and feed-forward activations).
A layer's output is counted once even when two layers keep it, and views (flatten) share
their input's storage. Attention is assumed fused (``scaled_dot_product_attention`` on a GPU),
which keeps no sequence² matrix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from .schema import ModelSpec

Shape = tuple[int, ...]


class SpecError(ValueError):
    """A spec whose layers do not fit together; ``index`` is the offending layer (-1: the spec)."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
        self.message = message


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """What one layer does to one sample."""

    index: int
    type: str
    input_shape: Shape
    output_shape: Shape
    #: trainable parameters (weights, biases, affine norms, embeddings)
    params: int
    #: how many parameter tensors (optimizers keep per-tensor state such as Adam's step)
    param_tensors: int
    #: forward floating-point operations for one sample (a multiply-add counts 2)
    flops: int
    #: activation elements (in the compute dtype) this layer keeps alive for backward, per sample:
    #: its own output when a backward reads it, plus its internal tensors
    saved_elements: int
    #: bytes kept for backward whatever the precision: dropout masks (bool), pooling indices (int64)
    saved_fixed_bytes: int

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "input_shape": list(self.input_shape), "output_shape": list(self.output_shape)}


@dataclasses.dataclass
class _Rule:
    """One layer's effect, before the pass that decides which outputs stay alive."""

    output: Shape
    params: int = 0
    param_tensors: int = 0
    flops: int = 0
    reads_input: bool = False
    reads_output: bool = False
    view: bool = False
    internal: int = 0
    fixed_bytes: int = 0


def _fmt(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _conv_len(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _linear(layer, shape: Shape, outputs: int | None, fail) -> _Rule:
    if len(shape) > 2:
        fail(f"expects a flat input (features) or (sequence, features), got {_fmt(shape)}; add a flatten layer")
    out = layer.out_features
    if out == "auto":
        if outputs is None:
            fail("out_features is 'auto' but the number of outputs is not known yet")
        out = outputs
    rows, width = _numel(shape[:-1]), shape[-1]
    bias = out if layer.bias else 0
    return _Rule(shape[:-1] + (out,), params=width * out + bias, param_tensors=2 if layer.bias else 1, flops=rows * (2 * width * out + (out if layer.bias else 0)), reads_input=True)


def _conv(dims: int):
    def rule(layer, shape: Shape, outputs, fail) -> _Rule:
        if len(shape) != dims + 1:
            fail(f"expects {'(channels, length)' if dims == 1 else '(channels, height, width)'}, got {_fmt(shape)}")
        spatial = tuple(_conv_len(s, layer.kernel_size, layer.stride, layer.padding) for s in shape[1:])
        if min(spatial) < 1:
            fail(f"kernel_size {layer.kernel_size} is larger than the padded input {_fmt(shape)}")
        cin, k = shape[0], layer.kernel_size**dims
        out = (layer.out_channels, *spatial)
        weights = cin * k * layer.out_channels
        bias = layer.out_channels if layer.bias else 0
        return _Rule(out, params=weights + bias, param_tensors=2 if layer.bias else 1, flops=_numel(spatial) * (2 * cin * k * layer.out_channels + bias), reads_input=True)

    return rule


def _pool(dims: int, indices: bool):
    def rule(layer, shape: Shape, outputs, fail) -> _Rule:
        if len(shape) != dims + 1:
            fail(f"expects {'(channels, length)' if dims == 1 else '(channels, height, width)'}, got {_fmt(shape)}")
        stride = layer.stride or layer.kernel_size
        spatial = tuple(_conv_len(s, layer.kernel_size, stride, layer.padding) for s in shape[1:])
        if min(spatial) < 1:
            fail(f"kernel_size {layer.kernel_size} is larger than the padded input {_fmt(shape)}")
        out = (shape[0], *spatial)
        n = _numel(out)
        # max pooling keeps the argmax of every output (int64) besides its input
        return _Rule(out, flops=n * layer.kernel_size**dims, reads_input=True, fixed_bytes=8 * n if indices else 0)

    return rule


def _flatten(layer, shape, outputs, fail) -> _Rule:
    return _Rule((_numel(shape),), view=True)


def _dropout(layer, shape, outputs, fail) -> _Rule:
    n = _numel(shape)
    return _Rule(shape, flops=n, fixed_bytes=n if layer.p > 0 else 0)


def _batchnorm(dims: int):
    def rule(layer, shape: Shape, outputs, fail) -> _Rule:
        if len(shape) not in ((1, 2) if dims == 1 else (3,)):
            fail(f"expects {'(features) or (channels, length)' if dims == 1 else '(channels, height, width)'}, got {_fmt(shape)}")
        c = shape[0]
        return _Rule(shape, params=2 * c, param_tensors=2, flops=5 * _numel(shape), reads_input=True)

    return rule


def _layernorm(layer, shape, outputs, fail) -> _Rule:
    d = shape[-1]
    rows = _numel(shape[:-1])
    # mean and reciprocal std per row, kept in float32
    return _Rule(shape, params=2 * d, param_tensors=2, flops=8 * _numel(shape), reads_input=True, fixed_bytes=8 * rows)


def _activation(reads: str, flops_per: int = 1):
    def rule(layer, shape, outputs, fail) -> _Rule:
        return _Rule(shape, flops=flops_per * _numel(shape), reads_input=reads == "input", reads_output=reads == "output")

    return rule


def _embedding(layer, shape, outputs, fail) -> _Rule:
    if len(shape) != 1:
        fail(f"expects a sequence of token ids (sequence), got {_fmt(shape)}")
    seq, d = shape[0], layer.embedding_dim
    params = layer.num_embeddings * d + (seq * d if layer.positional else 0)
    # backward needs the ids (int64), which are the model's input and counted there
    return _Rule((seq, d), params=params, param_tensors=2 if layer.positional else 1, flops=seq * d if layer.positional else 0)


def _transformer(layer, shape, outputs, fail) -> _Rule:
    if len(shape) != 2:
        fail(f"expects (sequence, features), got {_fmt(shape)}; start with an embedding layer")
    s, d = shape
    if d % layer.nhead:
        fail(f"the model width {d} is not divisible by nhead {layer.nhead}")
    f = layer.dim_feedforward
    params = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    matmuls = 2 * s * (3 * d * d + d * d + 2 * d * f)
    attention = 4 * s * s * d + 5 * s * s * layer.nhead
    # kept for backward: q/k/v (3sd), attention output and its contiguous copy (2sd), both
    # norms' inputs and the first norm's output (3sd, the block's input and output aside), the
    # feed-forward's activation and dropped-out activation (2sf)
    internal = 7 * s * d + 2 * s * f
    masks = (2 * s * d + s * f) if layer.dropout > 0 else 0
    stats = 2 * 8 * s + 4 * s * layer.nhead  # both norms' mean/rstd, attention logsumexp
    return _Rule((s, d), params=params, param_tensors=12, flops=matmuls + attention + 20 * s * d + 2 * s * f, reads_input=True, internal=internal, fixed_bytes=masks + stats)


def _mean_pool(layer, shape, outputs, fail) -> _Rule:
    if len(shape) != 2:
        fail(f"expects (sequence, features), got {_fmt(shape)}")
    return _Rule(shape[1:], flops=_numel(shape))


RULES: dict[str, Callable[..., _Rule]] = {
    "linear": _linear,
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "maxpool1d": _pool(1, indices=True),
    "maxpool2d": _pool(2, indices=True),
    "avgpool1d": _pool(1, indices=False),
    "avgpool2d": _pool(2, indices=False),
    "flatten": _flatten,
    "dropout": _dropout,
    "batchnorm1d": _batchnorm(1),
    "batchnorm2d": _batchnorm(2),
    "layernorm": _layernorm,
    "relu": _activation("output"),
    "gelu": _activation("input", 8),
    "tanh": _activation("output", 4),
    "sigmoid": _activation("output", 4),
    "silu": _activation("input", 5),
    "leaky_relu": _activation("input"),
    "embedding": _embedding,
    "transformer_encoder_layer": _transformer,
    "mean_pool": _mean_pool,
}


def _coerce(spec: ModelSpec | dict) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else ModelSpec.model_validate(spec)


def infer_shapes(spec: ModelSpec | dict, outputs: int | None = None) -> list[LayerInfo]:
    """Every layer's shapes, parameters, FLOPs and saved activations; ``SpecError`` names the
    first layer that does not fit its input. ``outputs`` resolves ``out_features: "auto"``."""
    spec = _coerce(spec)
    if outputs is not None and outputs < 1:
        raise SpecError(-1, f"outputs must be at least 1, got {outputs}")
    shape: Shape = tuple(spec.input_shape)
    rules: list[tuple[Shape, _Rule]] = []
    for index, layer in enumerate(spec.layers):

        def fail(message: str, index=index, layer=layer):
            raise SpecError(index, f"layer {index} ({layer.type}): {message}")

        if (layer.type == "embedding") != (spec.input_dtype == "long" and index == 0):
            if layer.type == "embedding":
                fail("takes integer token ids, so it must be the first layer (input_dtype 'long')")
            fail("the input is token ids (input_dtype 'long'); start with an embedding layer")
        rule = RULES[layer.type](layer, shape, outputs, fail)
        rules.append((shape, rule))
        shape = rule.output

    # which storages autograd keeps: storage 0 is the model's input (counted by the estimator
    # with the batch), storage i+1 the output of layer i unless that layer is a view
    storage_of = [0]
    for i, (_, rule) in enumerate(rules):
        storage_of.append(storage_of[i] if rule.view else i + 1)
    kept = set()
    for i, (_, rule) in enumerate(rules):
        if rule.reads_input:
            kept.add(storage_of[i])
        if rule.reads_output:
            kept.add(storage_of[i + 1])
    # the loss reads the last output (log-softmax keeps its own result of the same size)
    kept.add(storage_of[len(rules)])

    infos = []
    for i, ((in_shape, rule), layer) in enumerate(zip(rules, spec.layers)):
        own = _numel(rule.output) if (storage_of[i + 1] == i + 1 and i + 1 in kept) else 0
        infos.append(
            LayerInfo(
                index=i,
                type=layer.type,
                input_shape=in_shape,
                output_shape=rule.output,
                params=rule.params,
                param_tensors=rule.param_tensors,
                flops=rule.flops,
                saved_elements=own + rule.internal,
                saved_fixed_bytes=rule.fixed_bytes,
            )
        )
    return infos


def parameter_count(spec: ModelSpec | dict, outputs: int | None = None) -> int:
    """Trainable parameters, exactly as ``sum(p.numel() for p in build_module(spec).parameters())``."""
    return sum(info.params for info in infer_shapes(spec, outputs))


def output_shape(spec: ModelSpec | dict, outputs: int | None = None) -> Shape:
    """The shape of one sample's output."""
    return infer_shapes(spec, outputs)[-1].output_shape
