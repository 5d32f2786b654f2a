"""The ModelBuilder through its widget state, without a browser: shapes, errors and the parameter
count as traits, exports that build the same network, a compute estimate from a real server and
a real train job started from the builder (queued on an in-process server, then canceled)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import aistudio_jupyter as ais
from aistudio_jupyter.modelspec import LAYER_TYPES, build_module, parameter_count
from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.widgets.builder import ModelBuilder, builder
from tests.handlers.test_uploads import upload_bytes
from tests.live import free_port
from tests.runtime import clients, in_thread

CNN = {"input_shape": [3, 16, 16], "layers": [
    {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "batchnorm2d"}, {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2}, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "gelu"},
    {"type": "avgpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "dropout", "p": 0.2}, {"type": "leaky_relu", "negative_slope": 0.2},
    {"type": "linear", "out_features": 10}]}
SEQ = {"input_shape": [12], "layers": [
    {"type": "embedding", "num_embeddings": 100, "embedding_dim": 16, "positional": True},
    {"type": "transformer_encoder_layer", "nhead": 4, "dim_feedforward": 32}, {"type": "layernorm"},
    {"type": "mean_pool"}, {"type": "linear", "out_features": "auto"}]}
CONV1D = {"input_shape": [2, 40], "layers": [
    {"type": "conv1d", "out_channels": 6, "kernel_size": 5, "stride": 2}, {"type": "batchnorm1d"}, {"type": "silu"},
    {"type": "maxpool1d", "kernel_size": 2}, {"type": "avgpool1d", "kernel_size": 2, "stride": 1}, {"type": "tanh"},
    {"type": "flatten"}, {"type": "linear", "out_features": 3}, {"type": "sigmoid"}]}


@pytest.fixture
def offline() -> Client:
    """A client whose server is not there: the builder must still edit, infer and export."""
    c = Client(url=f"http://127.0.0.1:{free_port()}/aistudio/api", token="none", timeout=2)
    yield c
    c.close()


def torch_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- shapes, errors and the parameter count as traits -------------------------------------------


@pytest.mark.parametrize("spec", [CNN, SEQ, CONV1D], ids=["cnn", "transformer", "conv1d"])
def test_traits_give_shapes_and_a_parameter_count_equal_to_torch(spec, offline):
    b = ModelBuilder(spec, client=offline)
    b.outputs = 5
    module = b.build()
    assert b.errors == [] and b.param_count == torch_params(module)
    # every layer's shape is what the torch module produces
    x = torch.randint(0, 100, (2, *spec["input_shape"])) if spec is SEQ else torch.randn(2, *spec["input_shape"])
    for layer, shape in zip(module, b.shapes):
        assert list(x.shape[1:]) == shape["input_shape"]
        x = layer(x)
        assert list(x.shape[1:]) == shape["output_shape"] and shape["params"] == torch_params(layer)
    assert [s["index"] for s in b.shapes] == list(range(len(spec["layers"])))


def test_edits_through_traits_recompute_everything(offline):
    b = ModelBuilder([{"type": "linear", "out_features": 8}], input_shape=[4], client=offline)
    assert (b.param_count, b.shapes[0]["output_shape"]) == (40, [8])
    b.input_shape = [10]
    assert b.param_count == 88 and json.loads(b.spec_json)["input_shape"] == [10]
    b.add("relu")
    b.add("linear", out_features=3)
    assert [layer["type"] for layer in b.layers] == ["linear", "relu", "linear"] and b.param_count == 88 + 27
    b.move(2, -1)  # linear(3) before relu
    assert [layer["type"] for layer in b.layers] == ["linear", "linear", "relu"]
    b.set_param(0, "bias", False)
    assert b.param_count == 80 + 27
    b.remove(2)
    assert [layer["type"] for layer in b.layers] == ["linear", "linear"] and "class Model(nn.Sequential)" in b.python_code
    # the layers as the UI sends them: a new list through the trait
    b.layers = b.layers + [{"type": "layernorm"}]
    assert b.param_count == 80 + 27 + 6 and b.shapes[-1]["output_shape"] == [3]


@pytest.mark.parametrize(
    "layers, index, field, needle",
    [
        ([{"type": "linear", "out_features": 8}, {"type": "warp_drive"}], 1, "type", "unknown layer type 'warp_drive'"),
        ([{"type": "linear", "out_features": -3}], 0, "out_features", "greater than or equal to 1"),
        ([{"type": "relu"}, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}], 1, None, "expects (channels, height, width), got (6,)"),
        ([{"type": "linear", "out_features": "lots"}], 0, "out_features", "valid integer"),
        ([{"type": "linear"}], 0, "out_features", "out_features is required"),
        ([{"type": "dropout", "p": 1.5}], 0, "p", "less than 1"),
        ([{"type": "linear", "out_features": 4, "colour": "red"}], 0, "colour", "unknown parameter 'colour'"),
        ([{"type": "linear", "out_features": "auto"}, {"type": "linear", "out_features": 2}], 0, "out_features", "only allowed on the last linear layer"),
        ([{"type": "relu"}, {"type": "embedding", "num_embeddings": 9, "embedding_dim": 4}], 1, None, "must be the first layer"),
        ([{"type": "linear", "out_features": 8}, {"type": "transformer_encoder_layer", "nhead": 3}], 1, None, "start with an embedding layer"),
        ([{"type": "maxpool1d", "kernel_size": 2, "padding": 2}], 0, None, "padding must be at most half of kernel_size"),
        (["relu"], 0, None, "a layer is an object"),
    ],
)
def test_invalid_layers_are_errors_on_their_index_not_exceptions(layers, index, field, needle, offline):
    b = ModelBuilder({"input_shape": [6], "layers": [{"type": "linear", "out_features": 6}]}, client=offline)
    b.layers = layers
    errors = [e for e in b.errors if e["index"] == index]
    assert errors and errors[0]["field"] == field and needle in errors[0]["message"], b.errors
    assert all(isinstance(e["message"], str) for e in b.errors)
    assert b.param_count is None and b.spec_json == "" and b.python_code == "" and b.spec is None
    # layers before the broken one still show their shapes; the broken one and those after do not
    assert all(s is not None for s in b.shapes[:index]) and all(s is None for s in b.shapes[index:])
    with pytest.raises(ValueError, match=f"layer {index}"):
        b.build()


def test_input_shape_and_outputs_errors_are_spec_errors(offline):
    b = ModelBuilder([{"type": "linear", "out_features": "auto"}], input_shape=[4], client=offline)
    assert b.outputs == 2 and b.param_count == 10
    for shape, needle in (([-1], "between 1 and 1048576"), (["x"], "whole numbers"), ([], "1 to 3 sizes"), ([1, 2, 3, 4], "1 to 3 sizes")):
        b.input_shape = shape
        assert [(e["index"], e["field"]) for e in b.errors] == [(-1, "input_shape")] and needle in b.errors[0]["message"]
        assert b.shapes == [None] and b.param_count is None
    b.input_shape = [4]
    b.outputs = 0
    assert {(e["index"], e["field"]) for e in b.errors} == {(-1, "outputs"), (0, None)}
    b.outputs = None  # unknown outputs: 'auto' cannot be resolved
    assert [(e["index"], e["field"]) for e in b.errors] == [(0, None)] and "not known yet" in b.errors[0]["message"]
    b.outputs = 7
    assert b.errors == [] and b.param_count == 35
    b.layers = []
    assert [(e["index"], e["field"]) for e in b.errors] == [(-1, "layers")]


def test_every_layer_type_is_in_the_catalog_and_addable(offline):
    b = ModelBuilder([{"type": "linear", "out_features": 4}], input_shape=[4], client=offline)
    assert list(b.catalog) == list(LAYER_TYPES)
    assert {"leaky_relu", "embedding", "transformer_encoder_layer", "conv1d", "conv2d", "maxpool1d", "avgpool2d", "layernorm"} <= set(b.catalog)
    for t, info in b.catalog.items():
        assert info["label"] and info["group"] and info["starter"]["type"] == t
        b.layers = [info["starter"]]
        # a freshly added layer has every required field: any error is about shapes, not fields
        assert all(e["field"] is None for e in b.errors), (t, b.errors)
    fields = {f["name"]: f for f in b.catalog["linear"]["fields"]}
    assert fields["out_features"] == {**fields["out_features"], "kind": "int", "special": "auto", "min": 1, "required": True}
    pool = {f["name"]: f for f in b.catalog["maxpool2d"]["fields"]}
    assert pool["stride"]["optional"] and pool["stride"]["default"] is None
    assert {f["name"]: f for f in b.catalog["transformer_encoder_layer"]["fields"]}["activation"]["choices"] == ["relu", "gelu"]


# -- exports -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [CNN, SEQ, CONV1D], ids=["cnn", "transformer", "conv1d"])
def test_exported_spec_and_code_build_the_same_network(spec, offline):
    b = builder(spec, client=offline)
    b.outputs = 4
    exported = json.loads(json.dumps(b.spec))  # what the copy button copies
    assert exported == json.loads(b.spec_json) and exported["layers"][0]["type"] == spec["layers"][0]["type"]
    assert torch_params(build_module(exported, outputs=4)) == b.param_count == parameter_count(exported, outputs=4)
    namespace: dict = {}
    exec(compile(b.python_code, "<builder>", "exec"), namespace)
    emitted = namespace["Model"]()
    assert torch_params(emitted) == b.param_count
    assert {k: tuple(v.shape) for k, v in emitted.state_dict().items()} == {k: tuple(v.shape) for k, v in b.build().state_dict().items()}
    assert "class Net(" in b.to_python("Net")
    # a builder opened on the exported spec (or its JSON) is the same model
    again = ais.builder(spec=b.spec_json, client=offline)
    assert isinstance(again, ModelBuilder)
    again.outputs = 4
    assert again.spec == exported and again.param_count == b.param_count


def test_without_a_server_the_builder_still_works_and_says_why_data_is_missing(offline):
    b = builder(client=offline)
    assert b.error and b.error["code"] == "unreachable" and b.datasets == []
    assert b.errors == [] and b.param_count == 16 * 64 + 64 + 64 * 2 + 2
    assert b.estimate() is None and b.error["code"] == "unreachable"
    with pytest.raises(ValueError, match="dataset"):
        b.train()
    # the Train button's message: an inline error, never an exception in the kernel
    b._on_frontend_msg(b, {"op": "train", "epochs": 1}, [])
    assert "dataset" in b.error["message"] and b.job_id == ""


def test_displays_with_the_output_the_monitor_goes_to(offline):
    b = builder(client=offline)
    bundle = b._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    view = data["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert view == b.container.model_id and list(b.container.children) == [b, b.output]
    assert "builder.js" in b._esm and "function aisApi" in b._esm
    for hook in ("ais-builder-add", "ais-builder-params", "ais-builder-train"):
        assert f"'data-testid': '{hook}'" in b._esm


# -- against a real server -------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path, sqlite_template):
    """The builder stores nothing of its own: SQLite is enough (the services are tested on both)."""
    path = tmp_path / "aistudio.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def connect(jp_serverapp, jp_fetch):
    """``connect(user)`` → a blocking Client over real HTTP to the in-process server."""
    url = jp_serverapp.web_app.settings["aistudio"].kernel_api_url()
    with clients(url) as make:
        yield make


async def test_estimate_comes_from_the_server(connect, api):
    def scenario():
        b = builder(CNN, client=connect())
        b.batch_size, b.gpu, b.precision = 64, "t4", "fp16_mixed"
        result = b.estimate()
        assert b.error is None and result is not None and b.estimate_result == dict(result)
        assert result.parameters == b.param_count and result.gpu == "t4" and result.precision == "fp16_mixed"
        assert result.memory.fits and result.memory.total_bytes > result.memory.weights > 0
        assert [layer["output_shape"] for layer in result.layers] == [s["output_shape"] for s in b.shapes]
        b.batch_size = 0  # the server refuses it: an inline error with the server's reason
        assert b.estimate() is None and b.error["status"] == 422 and "batch_size" in b.error["message"]
        b.layers = [{"type": "conv2d"}]  # a broken spec asks the server nothing
        assert b.estimate_request() is None and b.estimate() is None
        return b.estimate_request

    await in_thread(scenario)
    # what the browser sends for a valid spec is accepted as it is
    b = await in_thread(lambda: builder(CNN, client=connect()))
    reply = await api("POST", "compute/estimate", json_body=b.estimate_request())
    assert reply.status == 200 and reply.body["parameters"] == b.param_count


async def test_train_starts_a_job_of_the_built_spec_and_opens_its_monitor(connect, api):
    rows = ["a,b,c,label,note"] + [f"{i % 7},{i % 3}.5,{i % 5},{'xy'[i % 2]},n{i}" for i in range(40)]
    _, reply = await upload_bytes(api, ("\n".join(rows) + "\n").encode(), name="toy", filename="toy.csv")
    assert reply.status == 204, reply.body
    dataset_id = reply.headers["AIStudio-Dataset"]

    def scenario():
        alice = connect()
        b = builder([{"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}], client=alice)
        assert {"id": dataset_id, "name": "toy"} in b.datasets and b.input_shape == [16]
        b.dataset = dataset_id  # as the picker sets it
        assert [c["name"] for c in b.columns] == ["a", "b", "c", "label", "note"] and b.dataset_rows == 40
        b.target = "b"  # a float target is a regression: one output, the other numeric columns in
        assert (b.outputs, b.input_shape) == (1, [2])
        b.target, b.outputs = "label", 2
        assert b.input_shape == [3]  # the numeric feature columns the trainer will read
        b.epochs, b.learning_rate = 1, 0.01
        b._on_frontend_msg(b, {"op": "train", "epochs": 1, "batch_size": 8, "learning_rate": 0.01}, [])
        assert b.error is None and b.job_id.startswith("job_"), b.error
        job = alice.request("GET", f"/jobs/{b.job_id}")
        spec = job["spec"]
        assert job["kind"] == "train" and spec["features"] == ["a", "b", "c"] and spec["target"] == "label"
        assert spec["model"]["spec"]["layers"] == b.spec["layers"] and spec["model"]["spec"]["input_shape"] == [3]
        assert spec["hyperparameters"]["epochs"] == 1 and spec["hyperparameters"]["batch_size"] == 8
        assert spec["task"] == "classification" and alice.request("GET", f"/models/{spec['model_id']}")["name"] == "toy-label"
        # the monitor of the new job sits in the Output under the builder
        assert b.monitor is not None and b.monitor.job_id == b.job_id
        shown = b.output.outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        assert shown == b.monitor.model_id

        # the Python method does the same for scripts and returns the TrainJob
        second = b.train(dataset="toy", target="label", epochs=2)
        assert second["id"] == b.job_id != job["id"] and second.refresh()["spec"]["hyperparameters"]["epochs"] == 2
        for job_id in (job["id"], second["id"]):
            assert alice.request("POST", f"/jobs/{job_id}/cancel")["state"] in ("canceled", "canceling")

        # a refused job (a column that is not there) is an inline error, not an exception
        b.target = "nope"
        b._on_frontend_msg(b, {"op": "train"}, [])
        assert b.error["status"] == 422 and "nope" in b.error["message"] and b.job_id == second["id"]
        # the widget's Retry (and Python's refresh) reload the dataset list
        alice.datasets.update(dataset_id, name="toy2")
        b._on_frontend_msg(b, {"op": "refresh"}, [])
        assert {"id": dataset_id, "name": "toy2"} in b.datasets and b.error is None
        # opened on a dataset (by name) and target, it fits the input to the features
        fitted = builder(dataset="toy2", target="label", client=alice)
        assert (fitted.dataset, fitted.input_shape, fitted.error) == (dataset_id, [3], None)
        # bob sees none of alice's datasets
        assert all(d["id"] != dataset_id for d in builder(client=connect("bob")).datasets)

    await in_thread(scenario)
