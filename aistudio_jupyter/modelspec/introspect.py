"""A spec read back from a torch module: the inverse of ``build_module`` for the modules it builds.

``ais.models.register`` uses it so a plain ``nn.Sequential`` of supported layers loads back
without the user writing a spec or an entry point. Every layer is matched against the exact
constructor ``build_module`` would call, and the result is checked by building the spec and
comparing ``state_dict`` keys and shapes, so a spec is returned only when it rebuilds the same
module; anything else is a ``TypeError`` that says what to pass instead.
"""

from __future__ import annotations

from typing import Any

from .build import build_module
from .shapes import SpecError

HINT = "pass model={'entry_point': 'pkg.module:factory', 'kwargs': {...}} naming an importable factory(input_dim=None, outputs=None, **kwargs) that returns the module"


def _pair(value: Any) -> int | None:
    """An int, or a tuple of equal ints, as one int (the specs have square kernels only)."""
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and value and all(v == value[0] for v in value) and isinstance(value[0], int):
        return value[0]
    return None


def _layer(index: int, m) -> dict[str, Any]:
    from torch import nn
    from torch.nn import functional as F

    from . import modules

    def unsupported(why: str = "") -> TypeError:
        return TypeError(f"Layer {index} ({type(m).__name__}) cannot be described as a model spec{': ' + why if why else ''}; {HINT}.")

    t = type(m)
    if t is nn.Linear:
        return {"type": "linear", "out_features": m.out_features, "bias": m.bias is not None}
    if t in (nn.Conv1d, nn.Conv2d):
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        if None in (k, s, p) or _pair(m.dilation) != 1 or m.groups != 1 or m.padding_mode != "zeros":
            raise unsupported("only square kernels without dilation, groups or padding modes")
        return {"type": t.__name__.lower(), "out_channels": m.out_channels, "kernel_size": k, "stride": s, "padding": p, "bias": m.bias is not None}
    if t in (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d):
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        plain = not m.ceil_mode and (_pair(m.dilation) == 1 if t in (nn.MaxPool1d, nn.MaxPool2d) else m.count_include_pad and getattr(m, "divisor_override", None) is None)
        if None in (k, s, p) or not plain or getattr(m, "return_indices", False):
            raise unsupported("only square, default pooling")
        name = ("max" if t in (nn.MaxPool1d, nn.MaxPool2d) else "avg") + "pool" + t.__name__[-2:].lower()
        return {"type": name, "kernel_size": k, "stride": s, "padding": p}
    if t is nn.Flatten:
        if (m.start_dim, m.end_dim) != (1, -1):
            raise unsupported("only Flatten() with the default dims")
        return {"type": "flatten"}
    if t is nn.Dropout:
        return {"type": "dropout", "p": m.p}
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if (m.eps, m.momentum, m.affine, m.track_running_stats) != (1e-5, 0.1, True, True):
            raise unsupported("only default BatchNorm settings")
        return {"type": t.__name__.lower()}
    if t is nn.LayerNorm:
        if len(m.normalized_shape) != 1 or not m.elementwise_affine or m.bias is None:
            raise unsupported("only LayerNorm over the last axis, with affine weights")
        return {"type": "layernorm", "eps": m.eps}
    if t is nn.GELU and m.approximate != "none":
        raise unsupported("only the exact GELU")
    simple = {nn.ReLU: "relu", nn.GELU: "gelu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu", modules.MeanPool: "mean_pool"}
    if t in simple:
        return {"type": simple[t]}
    if t is nn.LeakyReLU:
        return {"type": "leaky_relu", "negative_slope": m.negative_slope}
    if t is nn.Embedding:
        if m.padding_idx is not None or m.max_norm is not None or m.sparse or m.scale_grad_by_freq:
            raise unsupported("only plain embeddings")
        return {"type": "embedding", "num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim}
    if t is modules.TokenEmbedding:
        return {"type": "embedding", "num_embeddings": m.tokens.num_embeddings, "embedding_dim": m.tokens.embedding_dim, "positional": True}
    if t is nn.TransformerEncoderLayer:
        activation = {F.relu: "relu", F.gelu: "gelu"}.get(m.activation)
        if activation is None and isinstance(m.activation, (nn.ReLU, nn.GELU)):
            activation = "relu" if isinstance(m.activation, nn.ReLU) else "gelu"
        if activation is None or not m.self_attn.batch_first:
            raise unsupported("only batch_first layers with relu or gelu")
        return {
            "type": "transformer_encoder_layer",
            "nhead": m.self_attn.num_heads,
            "dim_feedforward": m.linear1.out_features,
            "dropout": m.dropout.p,
            "activation": activation,
            "norm_first": m.norm_first,
        }
    raise unsupported()


def _input_shape(first) -> list[int] | None:
    """One sample's shape when the first layer fixes it (a linear or norm layer's width, a positional embedding's length)."""
    from torch import nn

    from . import modules

    if isinstance(first, nn.Linear):
        return [first.in_features]
    if isinstance(first, (nn.LayerNorm,)) and len(first.normalized_shape) == 1:
        return [first.normalized_shape[0]]
    if type(first) is nn.BatchNorm1d:
        return [first.num_features]
    if isinstance(first, modules.TokenEmbedding):
        return [first.positions.shape[0]]
    return None


def from_module(module, input_shape: list[int] | tuple[int, ...] | None = None) -> dict[str, Any]:
    """The spec (``{"input_shape", "layers"}``) that ``build_module`` rebuilds ``module`` from,
    with identical ``state_dict`` keys and shapes.

    ``input_shape`` is one sample's shape without the batch axis; it may be left out when the
    first layer fixes it (a ``Linear``). Raises ``TypeError`` for a module that is not an
    ``nn.Sequential`` of the layers a spec describes.
    """
    from torch import nn

    if type(module) is not nn.Sequential:
        raise TypeError(f"Only an nn.Sequential of supported layers can be described as a model spec, not {type(module).__name__}; {HINT}.")
    children = list(module.children())
    if not children:
        raise TypeError(f"An empty nn.Sequential has no model spec; {HINT}.")
    if list(module._modules) != [str(i) for i in range(len(children))]:
        raise TypeError(f"Named layers (an OrderedDict) change the state_dict keys a spec rebuilds; use nn.Sequential(*layers) or {HINT}.")
    layers = [_layer(i, m) for i, m in enumerate(children)]
    shape = list(input_shape) if input_shape is not None else _input_shape(children[0])
    if not shape:
        raise TypeError(f"The input shape of {type(children[0]).__name__} cannot be read from the module: pass input_example= (a batch) or {HINT}.")
    spec = {"input_shape": [int(d) for d in shape], "layers": layers}
    try:
        rebuilt = build_module(spec)
    except (SpecError, ValueError) as exc:
        raise TypeError(f"The layers do not fit a model spec for input shape {spec['input_shape']}: {exc}; {HINT}.") from None
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != got:
        raise TypeError(f"The spec read from the module rebuilds different weights ({sorted(set(want) ^ set(got))[:5] or 'shapes differ'}); {HINT}.")
    return spec
