"""``ais.models`` from a kernel's point of view: ``Model`` records, stages, compare as a
DataFrame, lineage, load, delete, and registering a plain ``nn.Sequential`` with the input
schema read from its example, against the in-process server over real HTTP."""

from __future__ import annotations

import pickle
import uuid

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aistudio_jupyter.modelspec import build_module, from_module
from aistudio_jupyter.runtime.client import APIError
from aistudio_jupyter.runtime.models import Model
from tests.runtime import clients, in_thread


@pytest.fixture
def connect(jp_serverapp, jp_fetch):
    url = jp_serverapp.web_app.settings["aistudio"].kernel_api_url()
    with clients(url) as make:
        yield make


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))


async def test_model_records_stage_compare_load_and_delete(connect):
    def scenario():
        alice = connect()
        name = f"clf-{uuid.uuid4().hex[:6]}"
        x = torch.randn(6, 4)
        first, second = mlp(1), mlp(2)
        v1 = alice.models.register(first, name, metrics={"acc": 0.8, "loss": 0.4}, input_example=x, lineage={"hyperparameters": {"lr": 0.1}})
        v2 = alice.models.register(second, name, metrics={"acc": 0.9}, input_example=x.numpy(), lineage={"hyperparameters": {"lr": 0.01}})
        assert (v1.version, v2.version) == (1, 2)
        # the layer spec was read from the module; the schema from the example batch
        assert v1.spec["model"]["spec"]["input_shape"] == [4] and [layer["type"] for layer in v1.spec["model"]["spec"]["layers"]] == ["linear", "relu", "dropout", "linear"]
        assert v1.input_schema == {"kind": "tensor", "shape": [None, 4], "dtype": "float32"} and v1.spec["input_schema"] == v1.input_schema
        assert np.allclose(v1.spec["input_example"], x[:5].tolist())

        m = alice.models.get(name)
        assert isinstance(m, Model) and m.name == name and m.latest_version == 2
        assert all(isinstance(r, Model) for r in alice.models.list(q=name)) and isinstance(alice.models.create(name=f"{name}-x"), Model)
        assert [v.version for v in m.versions()] == [1, 2]
        assert m.set_stage(1, "production").stage == "production"
        assert m.set_stage(2, "production", archive_existing=True).stage == "production"
        assert m.version("production").version == 2 and [v.version for v in m.versions(stage="archived")] == [1]
        assert alice.models.version(name, "production").version == 2 and m.version().version == 2

        table = m.compare()
        assert list(table.columns) == [1, 2] and table.columns.name == "version"
        assert table.loc[("metric", "acc")].tolist() == [0.8, 0.9]
        assert table.loc[("hyperparameter", "lr")].tolist() == [0.1, 0.01] and "hyperparameters.lr" in table.attrs["differs"]
        assert pd.isna(table.loc[("metric", "loss"), 2]) and table.attrs["stages"] == {1: "archived", 2: "production"}
        assert list(alice.models.compare(name, versions=[2]).columns) == [2]

        loaded = m.load("production")
        with torch.no_grad():
            expected = second.eval()(x).tolist()
        assert np.allclose(loaded.predict(x), expected, atol=1e-6) and np.allclose(loaded.predict(x.numpy().tolist()), expected, atol=1e-6)

        lineage = m.lineage(2)
        assert lineage.model_version.version == 2 and lineage.dataset is None and lineage.job is None and lineage.deployments == []
        dep = alice.request("POST", "/deployments", json={"name": f"d-{name}", "model_id": m.id, "model_version": 1})
        assert [d["id"] for d in m.lineage(1).deployments] == [dep["id"]]
        with pytest.raises(APIError) as refused:
            m.delete_version(1)
        assert refused.value.status == 409 and refused.value.details["deployments"][0]["id"] == dep["id"]
        alice.request("DELETE", f"/deployments/{dep['id']}")
        m.delete_version(1)
        assert [v.version for v in m.versions()] == [2]

        # a record survives pickling (without its connection) and renders without a widget comm
        again = pickle.loads(pickle.dumps(m))
        assert isinstance(again, Model) and again == m
        bundle = m._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else bundle  # IPython takes (data, metadata) too
        assert "text/plain" in data
        # another user sees nothing of it
        with pytest.raises(APIError) as hidden:
            connect("carol").models.compare(m.id)
        assert hidden.value.status == 404

    await in_thread(scenario)


async def test_register_describes_sequentials_and_refuses_the_rest(connect):
    def scenario():
        alice = connect()
        frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "flag": [True, False], "label": ["x", "y"]})
        seq = nn.Sequential(nn.Linear(4, 2))
        v = alice.models.register(seq, f"frame-{uuid.uuid4().hex[:6]}", input_example=frame)
        assert v.input_schema == {"kind": "records", "features": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}, {"name": "flag", "dtype": "bool"}, {"name": "label", "dtype": "string"}]}
        assert v.spec["input_example"] == [{"a": 1.0, "b": 3, "flag": True, "label": "x"}, {"a": 2.0, "b": 4, "flag": False, "label": "y"}]
        # a conv stack takes its sample shape from the example batch
        conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        cv = alice.models.register(conv, f"conv-{uuid.uuid4().hex[:6]}", input_example=torch.zeros(2, 1, 6, 6))
        assert cv.spec["model"]["spec"]["input_shape"] == [1, 6, 6] and cv.input_schema["shape"] == [None, 1, 6, 6]

        class Custom(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 1)

            def forward(self, x):
                return self.fc(x)

        for module in (Custom(), nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=1)), nn.Sequential(nn.Conv1d(1, 2, 3))):
            with pytest.raises(TypeError, match="entry_point"):
                alice.models.register(module, f"bad-{uuid.uuid4().hex[:6]}")

    await in_thread(scenario)


def test_from_module_rebuilds_the_same_state_dict():
    from aistudio_jupyter.modelspec.modules import MeanPool, TokenEmbedding

    cases = [
        (mlp(0), None),
        (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.GELU(), nn.MaxPool2d(2), nn.Flatten(), nn.LayerNorm(64), nn.Linear(64, 10)), [1, 8, 8]),
        (nn.Sequential(TokenEmbedding(50, 16, 12), nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, activation="gelu"), MeanPool(), nn.Tanh(), nn.Linear(16, 2)), None),
        (nn.Sequential(nn.Embedding(50, 8), nn.Conv1d(12, 4, 3), nn.AvgPool1d(2), nn.Flatten(), nn.SiLU(), nn.LeakyReLU(0.2), nn.Linear(12, 1)), [12]),
    ]
    for module, shape in cases:
        spec = from_module(module, shape)
        rebuilt = build_module(spec)
        rebuilt.load_state_dict(module.state_dict())  # strict: identical keys and shapes
        sample = torch.randint(0, 50, (2, 12)) if spec["layers"][0]["type"] == "embedding" else torch.randn(2, *spec["input_shape"])
        with torch.no_grad():
            assert torch.allclose(rebuilt.eval()(sample), module.eval()(sample), atol=1e-5)
    named = nn.Sequential()
    named.add_module("fc", nn.Linear(3, 2))
    with pytest.raises(TypeError, match="entry_point"):
        from_module(named)
    with pytest.raises(TypeError, match="different weights"):  # a width that contradicts the input shape
        from_module(nn.Sequential(nn.Linear(3, 2)), [5])
