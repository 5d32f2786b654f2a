"""``ais.deployments`` against a real server whose replicas are real worker processes.

Two registered versions of a small regression MLP (float outputs, so two versions'
predictions differ and a rolling update shows), deployed, queried with a DataFrame and with
records, stopped, started, updated; a tensor model queried with numpy. One server process
for the module, on SQLite: the client's behaviour does not depend on the database, and every
replica start costs seconds.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from aistudio_jupyter.modelspec import build_module
from aistudio_jupyter.runtime.client import APIError, Client
from aistudio_jupyter.runtime.deployments import Deployment
from tests.live import LiveServer
from tests.runtime import clients

FEATURES = ["a", "b", "c", "d"]
LAYERS = {"input_shape": [4], "layers": [{"type": "linear", "out_features": 16}, {"type": "relu"}, {"type": "linear", "out_features": 1}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, sqlite_template):
    """A server process: replicas run only where the deployment supervisor does."""
    work = tmp_path_factory.mktemp("deployments-client")
    shutil.copy(sqlite_template, work / "aistudio.db")
    with LiveServer(work / "live", f"sqlite:///{work / 'aistudio.db'}") as srv:
        yield srv


@pytest.fixture
def connect(server):
    """``connect(user)`` → a Client for ``user``."""
    url = server.api()
    with clients(url) as make:
        yield make


def frame(rows: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal(size=(rows, 4)).round(3), columns=FEATURES).assign(y=rng.normal(size=rows))


def register_regressor(api: Client, name: str, seed: int):
    """A version as the trainer would register it: layer spec, standardised inputs, target units."""
    torch.manual_seed(seed)
    module = build_module(LAYERS, outputs=1)
    preprocessing = {
        "task": "regression",
        "inputs": {"features": FEATURES, "mean": [0.1, -0.2, 0.0, 0.3], "std": [1.0, 2.0, 0.5, 1.5]},
        "outputs": {"target": "y", "count": 1, "mean": 10.0, "std": 3.0},
    }
    return api.models.register(module, name, model={"spec": LAYERS}, preprocessing=preprocessing, metrics={"val/loss": 1.0 / seed}, input_example=frame(3)[FEATURES])


def test_deploy_predict_stop_start_update(connect):
    alice, bob = connect("alice"), connect("bob")
    register_regressor(alice, "reg", seed=1)
    register_regressor(alice, "reg", seed=2)
    rows = frame()
    v1, v2 = alice.models.load("reg", 1).predict(rows), alice.models.load("reg", 2).predict(rows)
    assert v1 != pytest.approx(v2)

    dep = alice.deployments.create("reg", version=1, max_batch_size=8, max_wait_ms=2)
    assert isinstance(dep, Deployment) and (dep.name, dep.state, dep.model_version, dep.ready_replicas) == ("reg", "ready", 1, 1)
    assert dep.predict(rows) == pytest.approx(v1, rel=1e-5)
    assert dep.predict(rows[FEATURES].to_dict("records")) == pytest.approx(v1, rel=1e-5)
    assert dep.status == "ready" and alice.deployments.get("reg").id == dep.id
    # outside a kernel no widget comm exists: the repr falls back to text, never raises
    assert repr(dep).startswith(f"<{dep.id} 'reg'") and "text/plain" in dep._repr_mimebundle_()

    # the client sends what the server checks: a missing column is a 422 naming it
    with pytest.raises(APIError) as missing:
        dep.predict(rows.drop(columns=["c"]))
    assert missing.value.status == 422 and "records[0].c" in missing.value.message
    # another user neither sees nor calls it
    with pytest.raises(APIError) as hidden:
        bob.deployments.get(dep.id)
    assert hidden.value.status == 404
    with pytest.raises(APIError) as foreign:
        Deployment(bob.deployments, dict(dep)).predict(rows)
    assert foreign.value.status == 404

    dep.stop()
    assert dep.status == "stopped"
    with pytest.raises(APIError) as stopped:
        dep.predict(rows)
    assert stopped.value.status == 409
    dep.start()
    assert dep.predict(rows) == pytest.approx(v1, rel=1e-5)

    dep.update(version=2)
    answer = dep.predict(rows, full=True)
    assert answer.model_version == 2 and answer.deployment_id == dep.id
    assert answer.predictions == pytest.approx(v2, rel=1e-5)
    assert all(r.model_version == 2 for r in dep.refresh().replica_status)

    # the history of its status events, replayed from the first until the stream goes quiet
    states = []
    with dep.events(since=0) as stream:
        try:
            while True:
                event = stream.next(timeout=2)
                if event.type == "status":
                    states.append(event.data["state"])
        except TimeoutError:
            pass
    stopped_at = states.index("stopped", states.index("ready"))
    assert "ready" in states[stopped_at:] and states[-1] == "ready", states
    assert isinstance(dep.logs(tail=50), str)

    dep.delete()
    with pytest.raises(APIError) as gone:
        alice.deployments.get(dep.id)
    assert gone.value.status == 404


def test_tensor_model_and_create_errors(connect):
    alice = connect("alice")
    torch.manual_seed(0)
    spec = {"input_shape": [6], "layers": [{"type": "linear", "out_features": 3}]}
    module = build_module(spec)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    # the example records the input schema predict requests are checked against
    version = alice.models.register(module, "lin", model={"spec": spec}, input_example=x[:2])

    for bad, field in (({"replicas": 0}, "replicas"), ({"max_batch_size": 0}, "max_batch_size"), ({"version": 7}, "model_version")):
        with pytest.raises(APIError) as invalid:
            alice.deployments.create("lin", wait=False, **bad)
        # the field is named in the message or in the envelope's details
        assert invalid.value.status == 422 and field in invalid.value.message + repr(invalid.value.details), invalid.value
    with pytest.raises(APIError) as unknown:
        alice.deployments.create("no-such-model")
    assert unknown.value.status == 404
    assert alice.deployments.list(q="lin") == []

    # a version record pins its version; without waiting, the first predict waits for (and
    # retries the 503s of) a replica still loading
    dep = alice.deployments.create(version, name="lin-endpoint", wait=False)
    assert (dep.name, dep.model_version, dep.state) == ("lin-endpoint", 1, "pending")
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    out = dep.predict(x)
    # a replica answers as soon as it is ready; the deployment's own state follows at the next look
    assert dep.wait("ready", timeout=60).state == "ready"
    assert isinstance(out, np.ndarray) and out.shape == (5, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dep.predict(torch.from_numpy(x)), expected, rtol=1e-5, atol=1e-6)
    nested = dep.predict(x.tolist())
    assert isinstance(nested, list)
    np.testing.assert_allclose(np.asarray(nested), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(APIError) as shape:
        dep.predict(x[:, :5])
    assert shape.value.status == 422 and "inputs[0]" in shape.value.message
    dep.delete()
