"""A model spec as a torch module, and as the Python source that builds the same module.

Both come from one list of constructor calls (``constructor_calls``), so the code a user copies
out of the ModelBuilder builds exactly the architecture the trainer trains: same classes, same
arguments, same ``state_dict`` keys. torch is imported only when a module is built.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from .schema import ModelSpec
from .shapes import _coerce, _fmt, infer_shapes

#: classes from ``modules.py``; every other call names an attribute of ``torch.nn``
CUSTOM = ("MeanPool", "TokenEmbedding")


@dataclasses.dataclass(frozen=True)
class Call:
    """One layer's constructor: ``nn.<name>(*args, **kwargs)`` (or a class from modules.py)."""

    name: str
    args: tuple = ()
    kwargs: tuple[tuple[str, object], ...] = ()
    comment: str = ""

    def source(self) -> str:
        prefix = "" if self.name in CUSTOM else "nn."
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{prefix}{self.name}({', '.join(parts)})"


def _non_default(**pairs) -> tuple[tuple[str, object], ...]:
    """Keyword arguments whose value differs from the torch default given next to it."""
    return tuple((k, value) for k, (value, default) in pairs.items() if value != default)


def constructor_calls(spec: ModelSpec | dict, outputs: int | None = None) -> list[Call]:
    """The constructor call of every layer, in order (shapes checked first)."""
    spec = _coerce(spec)
    infos = infer_shapes(spec, outputs)
    calls = []
    for layer, info in zip(spec.layers, infos):
        shape = info.input_shape
        t = layer.type
        if t == "linear":
            call = Call("Linear", (shape[-1], info.output_shape[-1]), _non_default(bias=(layer.bias, True)))
        elif t in ("conv1d", "conv2d"):
            kw = _non_default(stride=(layer.stride, 1), padding=(layer.padding, 0), bias=(layer.bias, True))
            call = Call("Conv" + t[-2:], (shape[0], layer.out_channels), (("kernel_size", layer.kernel_size), *kw))
        elif t in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
            name = ("MaxPool" if t.startswith("max") else "AvgPool") + t[-2:]
            kw = _non_default(stride=(layer.stride or layer.kernel_size, layer.kernel_size), padding=(layer.padding, 0))
            call = Call(name, (), (("kernel_size", layer.kernel_size), *kw))
        elif t == "flatten":
            call = Call("Flatten")
        elif t == "dropout":
            call = Call("Dropout", (), (("p", layer.p),))
        elif t in ("batchnorm1d", "batchnorm2d"):
            call = Call("BatchNorm" + t[-2:], (shape[0],))
        elif t == "layernorm":
            call = Call("LayerNorm", (shape[-1],), _non_default(eps=(layer.eps, 1e-5)))
        elif t == "leaky_relu":
            call = Call("LeakyReLU", (), _non_default(negative_slope=(layer.negative_slope, 0.01)))
        elif t in ("relu", "gelu", "tanh", "sigmoid", "silu"):
            call = Call({"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "sigmoid": "Sigmoid", "silu": "SiLU"}[t])
        elif t == "embedding":
            if layer.positional:
                call = Call("TokenEmbedding", (layer.num_embeddings, layer.embedding_dim, shape[0]))
            else:
                call = Call("Embedding", (layer.num_embeddings, layer.embedding_dim))
        elif t == "transformer_encoder_layer":
            kw = (
                ("d_model", shape[-1]),
                ("nhead", layer.nhead),
                ("dim_feedforward", layer.dim_feedforward),
                ("dropout", layer.dropout),
                *_non_default(activation=(layer.activation, "relu")),
                ("batch_first", True),
                *_non_default(norm_first=(layer.norm_first, False)),
            )
            call = Call("TransformerEncoderLayer", (), kw)
        elif t == "mean_pool":
            call = Call("MeanPool")
        else:  # pragma: no cover - the schema admits no other type
            raise AssertionError(t)
        calls.append(dataclasses.replace(call, comment=f"-> {_fmt(info.output_shape)}"))
    return calls


def build_module(spec: ModelSpec | dict, outputs: int | None = None):
    """The spec as a ``torch.nn.Sequential`` (a sample of ``input_shape`` in, logits out)."""
    from torch import nn

    from . import modules

    layers = []
    for call in constructor_calls(spec, outputs):
        cls = getattr(modules, call.name) if call.name in CUSTOM else getattr(nn, call.name)
        layers.append(cls(*call.args, **dict(call.kwargs)))
    return nn.Sequential(*layers)


def _custom_sources(names: set[str]) -> list[str]:
    """Source of the classes of modules.py that the code uses, read without importing torch."""
    path = Path(__file__).with_name("modules.py")
    text = path.read_text()
    return [ast.get_source_segment(text, node) for node in ast.parse(text).body if isinstance(node, ast.ClassDef) and node.name in names]


def to_python(spec: ModelSpec | dict, outputs: int | None = None, class_name: str = "Model") -> str:
    """Readable PyTorch source defining ``class_name``, which builds the same architecture as
    ``build_module`` (same state_dict keys and shapes)."""
    spec = _coerce(spec)
    if not class_name.isidentifier():
        raise ValueError(f"class_name must be a Python identifier, got {class_name!r}")
    calls = constructor_calls(spec, outputs)
    out = ["import torch", "from torch import nn", "", ""]
    for source in _custom_sources({c.name for c in calls if c.name in CUSTOM}):
        out += [source, "", ""]
    dtype = "token ids (int64)" if spec.input_dtype == "long" else "float32"
    out += [
        f"class {class_name}(nn.Sequential):",
        f'    """Input: (batch, {", ".join(map(str, spec.input_shape))}) {dtype}."""',
        "",
        "    def __init__(self):",
        "        super().__init__(",
    ]
    out += [f"            {call.source()},  # {call.comment}" for call in calls]
    out += ["        )", ""]
    return "\n".join(out)
