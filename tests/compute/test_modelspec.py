"""Model specs against real torch modules: counts, shapes, the emitted code, the errors."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from aistudio_jupyter.modelspec import ModelSpec, SpecError, build_module, infer_shapes, parameter_count, to_python

MLP = {"input_shape": [20], "layers": [{"type": "linear", "out_features": 64}, {"type": "relu"}, {"type": "dropout", "p": 0.2},
                                      {"type": "linear", "out_features": 32, "bias": False}, {"type": "gelu"}, {"type": "layernorm"},
                                      {"type": "linear", "out_features": "auto"}]}
CNN = {"input_shape": [3, 32, 32], "layers": [
    {"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "stride": 2}, {"type": "silu"}, {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
    {"type": "flatten"}, {"type": "linear", "out_features": 10}]}
CNN1D = {"input_shape": [4, 100], "layers": [
    {"type": "conv1d", "out_channels": 8, "kernel_size": 5, "bias": False}, {"type": "batchnorm1d"}, {"type": "leaky_relu", "negative_slope": 0.1},
    {"type": "maxpool1d", "kernel_size": 4}, {"type": "avgpool1d", "kernel_size": 2}, {"type": "tanh"}, {"type": "flatten"},
    {"type": "linear", "out_features": 1}, {"type": "sigmoid"}]}
TRANSFORMER = {"input_shape": [24], "layers": [
    {"type": "embedding", "num_embeddings": 500, "embedding_dim": 32, "positional": True},
    {"type": "transformer_encoder_layer", "nhead": 4, "dim_feedforward": 64},
    {"type": "transformer_encoder_layer", "nhead": 4, "dim_feedforward": 64, "activation": "gelu", "norm_first": True, "dropout": 0.0},
    {"type": "mean_pool"}, {"type": "linear", "out_features": 5}]}
SPECS = {"mlp": MLP, "cnn": CNN, "cnn1d": CNN1D, "transformer": TRANSFORMER}


def sample_batch(spec: dict, batch: int = 3) -> torch.Tensor:
    shape = (batch, *spec["input_shape"])
    if spec["layers"][0]["type"] == "embedding":
        return torch.randint(0, spec["layers"][0]["num_embeddings"], shape)
    return torch.randn(shape)


@pytest.mark.parametrize("name", SPECS)
def test_counts_and_shapes_match_torch(name):
    spec = SPECS[name]
    module = build_module(spec, outputs=7)
    assert parameter_count(spec, outputs=7) == sum(p.numel() for p in module.parameters())
    infos = infer_shapes(spec, outputs=7)
    assert sum(i.param_tensors for i in infos) == len(list(module.parameters()))
    x = sample_batch(spec)
    module.train()
    for info, layer in zip(infos, module):
        x = layer(x)
        assert tuple(x.shape[1:]) == info.output_shape, f"layer {info.index} ({info.type})"
        assert sum(p.numel() for p in layer.parameters()) == info.params, f"layer {info.index} ({info.type})"
    x.float().sum().backward()  # the built module trains


@pytest.mark.parametrize("name", SPECS)
def test_to_python_builds_the_identical_architecture(name):
    spec = SPECS[name]
    namespace: dict = {}
    exec(compile(to_python(spec, outputs=7, class_name="Net"), "<spec>", "exec"), namespace)
    emitted, built = namespace["Net"](), build_module(spec, outputs=7)
    assert {k: tuple(v.shape) for k, v in emitted.state_dict().items()} == {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert sum(p.numel() for p in emitted.parameters()) == parameter_count(spec, outputs=7)
    assert [type(m).__name__ for m in emitted] == [type(m).__name__ for m in built]
    # the weights of one load into the other and give the same answers
    emitted.load_state_dict(built.state_dict())
    emitted.eval(), built.eval()
    x = sample_batch(spec)
    torch.testing.assert_close(emitted(x), built(x))


def test_saved_activations_count_each_kept_tensor_once():
    infos = infer_shapes(MLP, outputs=3)
    by_type = [(i.type, i.saved_elements, i.saved_fixed_bytes) for i in infos]
    # linear → relu: relu keeps its output, which dropout does not read; the dropout output is
    # the second linear's input; gelu keeps its input, layernorm its input; the logits stay for the loss
    assert by_type == [("linear", 0, 0), ("relu", 64, 0), ("dropout", 64, 64), ("linear", 32, 0), ("gelu", 32, 0), ("layernorm", 32, 8), ("linear", 3, 0)]
    assert sum(i.flops for i in infos) > 2 * (20 * 64 + 64 * 32 + 32 * 3)


@pytest.mark.parametrize(
    "spec,index,needle",
    [
        ({"input_shape": [3, 8, 8], "layers": [{"type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, {"type": "relu"},
                                               {"type": "maxpool2d", "kernel_size": 1}, {"type": "linear", "out_features": 4}]},
         3, "layer 3 (linear): expects a flat input (features) or (sequence, features), got (16, 8, 8); add a flatten layer"),
        ({"input_shape": [10], "layers": [{"type": "linear", "out_features": 4}, {"type": "conv1d", "out_channels": 2, "kernel_size": 3}]}, 1, "(channels, length)"),
        ({"input_shape": [3, 4, 4], "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 5}]}, 0, "larger than the padded input"),
        ({"input_shape": [8], "layers": [{"type": "embedding", "num_embeddings": 10, "embedding_dim": 6}, {"type": "transformer_encoder_layer", "nhead": 4}]}, 1, "not divisible by nhead 4"),
        ({"input_shape": [8], "layers": [{"type": "linear", "out_features": 4}, {"type": "embedding", "num_embeddings": 10, "embedding_dim": 6}]}, 1, "must be the first layer"),
        ({"input_shape": [8], "input_dtype": "long", "layers": [{"type": "linear", "out_features": 4}]}, 0, "start with an embedding layer"),
        ({"input_shape": [8], "layers": [{"type": "mean_pool"}]}, 0, "expects (sequence, features), got (8,)"),
        ({"input_shape": [8], "layers": [{"type": "linear", "out_features": "auto"}]}, 0, "number of outputs is not known"),
    ],
)
def test_bad_specs_name_the_layer(spec, index, needle):
    with pytest.raises(SpecError) as err:
        infer_shapes(spec)
    assert err.value.index == index
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "spec",
    [
        {"input_shape": [], "layers": [{"type": "relu"}]},
        {"input_shape": [4], "layers": []},
        {"input_shape": [4], "layers": [{"type": "linear", "out_features": 0}]},
        {"input_shape": [4], "layers": [{"type": "linear", "out_features": 3, "extra": 1}]},
        {"input_shape": [4], "layers": [{"type": "softmax"}]},
        {"input_shape": [4], "layers": [{"type": "dropout", "p": 1.0}]},
        {"input_shape": [4], "layers": [{"type": "linear", "out_features": "auto"}, {"type": "linear", "out_features": 2}]},
        {"input_shape": [1, 8], "layers": [{"type": "maxpool1d", "kernel_size": 2, "padding": 2}]},
    ],
)
def test_schema_refuses_out_of_range_specs(spec):
    with pytest.raises(ValidationError):
        ModelSpec.model_validate(spec)


def saved_for_backward_bytes(module, x) -> int:
    """Bytes of the distinct non-parameter storages autograd saves during ``module(x)``."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params and storage.data_ptr() != x.untyped_storage().data_ptr():
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(seen.values())


# no dropout: on CPU torch keeps a float mask where CUDA keeps a bool one (the estimate's);
# no attention: the CPU computes it unfused and keeps the sequence² matrix a GPU does not
@pytest.mark.parametrize("name", ["cnn", "cnn1d", "mlp_no_dropout"])
def test_saved_activations_match_what_autograd_keeps(name):
    spec = SPECS.get(name) or {**MLP, "layers": [layer for layer in MLP["layers"] if layer["type"] != "dropout"]}
    module = build_module(spec, outputs=7).train()
    x = sample_batch(spec, 64)
    infos = infer_shapes(spec, outputs=7)
    # the estimate also keeps the logits for the loss, which the module saves only when its
    # last layer's backward reads them (sigmoid)
    logits = 0 if infos[-1].type == "sigmoid" else math.prod(infos[-1].output_shape)
    predicted = 64 * (sum(i.saved_elements * 4 + i.saved_fixed_bytes for i in infos) - logits * 4)
    assert predicted == pytest.approx(saved_for_backward_bytes(module, x), rel=0.001)
