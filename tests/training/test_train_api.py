"""``POST /models/train``, model-version registration and checkpoints through the HTTP API,
on SQLite and PostgreSQL. The server launches the jobs these tests queue; those whose process
must not write (checkpoints, versions) name a model entry point that does not exist, so they
fail before training. The end-to-end run is ``test_train_e2e.py``."""

from __future__ import annotations

import io
import json
import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..handlers.test_uploads import storage_files, upload_bytes

#: a job whose process fails at once, leaving its checkpoint and model to the test
INERT = {"entry_point": "aistudio_tests_no_such_module:build"}
MLP = {"layers": [{"type": "linear", "out_features": 8}, {"type": "relu"}, {"type": "linear", "out_features": "auto"}]}


@pytest.fixture
def services(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"].services


def csv_bytes(n: int = 30) -> bytes:
    rng = np.random.default_rng(0)
    rows = ["sepal,petal,width,species"] + [f"{a:.3f},{b:.3f},{c:.3f},{'ab'[int(a > 0)]}" for a, b, c in rng.normal(size=(n, 3))]
    return ("\n".join(rows) + "\n").encode()


async def dataset(api) -> str:
    _, reply = await upload_bytes(api, csv_bytes(), name=f"iris-{uuid.uuid4().hex[:6]}", filename="iris.csv")
    assert reply.status == 204, reply.body
    head = await api("GET", "datasets", params={"sort": "-created_at", "limit": "1"})
    return head.body["items"][0]["id"]


def train_body(dataset_id: str, **changes) -> dict:
    body = {"dataset": dataset_id, "target": "species", "task": "classification", "model": {"spec": MLP}, "model_name": "iris-mlp", "hyperparameters": {"epochs": 2}}
    body.update(changes)
    return body


def multipart(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, data in parts:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def weights() -> bytes:
    torch.manual_seed(0)
    return save_safetensors({k: v.contiguous() for k, v in torch.nn.Linear(3, 2).state_dict().items()}, metadata={"format": "aistudio.safetensors/1"})


def meta(**changes) -> bytes:
    return json.dumps({"spec": {"format": "aistudio.safetensors/1", "model": {"spec": {"input_shape": [3], "layers": [{"type": "linear", "out_features": 2}]}}}, "metrics": {"val/accuracy": 0.9}, **changes}).encode()


def job_token(services, owner: str, job_id: str) -> dict:
    token, _ = services.tokens.mint(owner, f"job {job_id}", "job", ("job",), job_id=job_id)
    return {"Authorization": f"Bearer {token}"}


async def test_train_queues_a_job_with_the_resolved_spec(api):
    ds = await dataset(api)
    reply = await api("POST", "models/train", json_body=train_body(ds, hyperparameters={"epochs": 1}))
    assert reply.status == 201, reply.body
    job = reply.body
    assert job["kind"] == "train" and job["name"] == "train iris-mlp"
    spec = job["spec"]
    assert spec["dataset_version"] == 1 and spec["dataset_version_id"].startswith("dv_")
    assert spec["features"] == ["sepal", "petal", "width"]
    assert spec["model"]["spec"]["input_shape"] == [3]  # completed from the feature count
    model = await api("GET", f"models/{spec['model_id']}")
    assert model.body["name"] == "iris-mlp" and model.body["task"] == "classification"
    # the same name reuses the model
    again = await api("POST", "models/train", json_body=train_body(ds, features=["petal"], model={"entry_point": "my_models:mlp", "kwargs": {"hidden": 4}}))
    assert again.status == 201 and again.body["spec"]["model_id"] == spec["model_id"]
    assert again.body["spec"]["model"] == {"spec": None, "entry_point": "my_models:mlp", "kwargs": {"hidden": 4}}


async def test_train_refuses_bad_input(api):
    ds = await dataset(api)
    for body, field, needle in [
        (train_body(ds, target="colour"), "target", "colour"),
        (train_body(ds, features=["sepal", "stem"]), "features", "stem"),
        (train_body(ds, dataset_version=7), None, None),
    ]:
        reply = await api("POST", "models/train", json_body=body)
        if field is None:
            assert reply.status == 404, reply.body
            continue
        assert reply.status == 422, reply.body
        assert reply.error["details"]["field"] == field and needle in reply.error["message"] and reply.error["details"]["column"] == needle
    # shapes: a 2-d convolution cannot take a row of 3 features; the error names the layer
    bad_spec = {"layers": [{"type": "linear", "out_features": 8}, {"type": "conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "linear", "out_features": "auto"}]}
    reply = await api("POST", "models/train", json_body=train_body(ds, model={"spec": bad_spec}))
    assert reply.status == 422 and reply.error["details"]["layer"] == 1, reply.body
    reply = await api("POST", "models/train", json_body=train_body(ds, model={"spec": {"layers": [{"type": "linear", "out_features": "auto"}, {"type": "warp"}]}}))
    assert reply.status == 422 and reply.error["details"]["layer"] == 1, reply.body
    reply = await api("POST", "models/train", json_body=train_body(ds, model={"spec": {"input_shape": [5], **MLP}}))
    assert reply.status == 422 and "3 feature columns" in reply.error["message"]
    for hp in ({"epochs": 10_001}, {"learning_rate": 0}, {"batch_size": 0}, {"optimizer": "lion"}):
        reply = await api("POST", "models/train", json_body=train_body(ds, hyperparameters=hp))
        assert reply.status == 422, (hp, reply.body)
    reply = await api("POST", "models/train", json_body=train_body(ds, model={"entry_point": "os.system; rm"}))
    assert reply.status == 422
    # someone else's private dataset does not exist for bob; nothing was created for him
    reply = await api("POST", "models/train", user="bob", json_body=train_body(ds))
    assert reply.status == 404 and reply.error["code"] == "not_found"
    assert (await api("GET", "models", user="bob")).body["items"] == []


async def test_register_list_get_and_download_a_version(api):
    model = (await api("POST", "models", json_body={"name": "linear"})).body
    body, headers = multipart([("meta", "meta.json", meta(input_example=[{"a": 1, "b": 2, "c": 3}])), ("weights", "w.safetensors", weights())])
    reply = await api("POST", f"models/{model['id']}/versions", body=body, headers=headers)
    assert reply.status == 201, reply.body
    version = reply.body
    assert version["version"] == 1 and version["stage"] == "none" and version["metrics"] == {"val/accuracy": 0.9}
    assert version["spec"]["input_example"] == [{"a": 1, "b": 2, "c": 3}]
    assert version["spec"]["artifact"]["size_bytes"] == len(weights()) and version["artifact_sha256"]
    second = await api("POST", f"models/{model['id']}/versions", body=body, headers=headers)
    assert second.body["version"] == 2
    listed = await api("GET", f"models/{model['id']}/versions", params={"sort": "version"})
    assert [v["version"] for v in listed.body["items"]] == [1, 2]
    latest = await api("GET", f"models/{model['id']}/versions/latest")
    assert latest.body["version"] == 2 and (await api("GET", f"models/{model['id']}")).body["latest_version"] == 2
    art = await api("GET", f"models/{model['id']}/versions/1/artifact")
    assert art.status == 200 and art.headers["Content-Type"] == "application/vnd.safetensors"
    tensors = load_safetensors(art.body)
    assert set(tensors) == {"weight", "bias"}
    part = await api("GET", f"models/{model['id']}/versions/1/artifact", headers={"Range": "bytes=0-7"})
    assert part.status == 206 and len(part.body) == 8
    # others see nothing of a private model
    for path in (f"models/{model['id']}/versions", f"models/{model['id']}/versions/1", f"models/{model['id']}/versions/1/artifact"):
        assert (await api("GET", path, user="carol")).status == 404
    assert (await api("POST", f"models/{model['id']}/versions", user="carol", body=body, headers=headers)).status == 404
    assert (await api("GET", f"models/{model['id']}/versions/3")).status == 404


async def test_registration_refuses_what_is_not_safetensors(api, aistudio_config):
    model = (await api("POST", "models", json_body={"name": "linear"})).body
    root = Path(aistudio_config["storage_url"].removeprefix("file://"))
    before = storage_files(root) if root.exists() else []
    good = weights()
    torch_pickle = io.BytesIO()
    torch.save(torch.nn.Linear(3, 2).state_dict(), torch_pickle)
    n = int.from_bytes(good[:8], "little")
    for bad in (pickle.dumps({"weight": [1, 2]}), torch_pickle.getvalue(), good[:-4], good + b"\0\0\0\0", (10**9).to_bytes(8, "little") + good[8:], n.to_bytes(8, "little") + b"[" + good[9:]):
        body, headers = multipart([("meta", "m.json", meta()), ("weights", "w", bad)])
        reply = await api("POST", f"models/{model['id']}/versions", body=body, headers=headers)
        assert reply.status == 422 and reply.error["details"]["field"] == "weights", reply.body
    for parts, field in [([("weights", "w", good)], "meta"), ([("meta", "m", b"{nope"), ("weights", "w", good)], "meta"), ([("meta", "m", meta(metrics={"x": "high"})), ("weights", "w", good)], "meta"),
                         ([("meta", "m", meta(metrics={"x\u0000": 1})), ("weights", "w", good)], "meta"), ([("meta", "m", b'{"spec": {"a": NaN}}'), ("weights", "w", good)], "meta"),
                         ([("meta", "m", meta()), ("weights", "w", good), ("extra", "e", b"")], "extra")]:
        body, headers = multipart(parts)
        reply = await api("POST", f"models/{model['id']}/versions", body=body, headers=headers)
        assert reply.status == 422 and reply.error["details"]["field"] == field, reply.body
    reply = await api("POST", f"models/{model['id']}/versions", json_body={"spec": {}})
    assert reply.status == 415
    assert (await api("GET", f"models/{model['id']}")).body["latest_version"] == 0
    assert (await api("GET", f"models/{model['id']}/versions")).body["items"] == []
    assert storage_files(root) == before  # nothing kept, not even the staged bytes


async def test_checkpoints_are_written_by_the_job_alone(api, services):
    ds = await dataset(api)
    job = (await api("POST", "models/train", json_body=train_body(ds, model=INERT))).body
    other = (await api("POST", "models/train", json_body=train_body(ds, model=INERT))).body
    data = save_safetensors({"model.w": torch.ones(3)}, metadata={"aistudio": json.dumps({"position": {"step": 5}})})
    assert (await api("GET", f"jobs/{job['id']}/checkpoint")).status == 404
    # the owner is not the job; another job's token is not this job's
    reply = await api("PUT", f"jobs/{job['id']}/checkpoint", body=data)
    assert reply.status == 403, reply.body
    reply = await api("PUT", f"jobs/{job['id']}/checkpoint", user=None, body=data, headers=job_token(services, "alice", other["id"]))
    assert reply.status == 403, reply.body
    token = job_token(services, "alice", job["id"])
    reply = await api("PUT", f"jobs/{job['id']}/checkpoint", user=None, body=b"not safetensors", headers=token)
    assert reply.status == 422
    reply = await api("PUT", f"jobs/{job['id']}/checkpoint", user=None, body=data, headers=token)
    assert reply.status == 200 and reply.body["size_bytes"] == len(data), reply.body
    got = await api("GET", f"jobs/{job['id']}/checkpoint")
    assert got.status == 200 and got.body == data
    assert (await api("GET", f"jobs/{job['id']}/checkpoint", user="carol")).status == 404
    # a job token cannot use other write routes
    assert (await api("POST", "models", user=None, json_body={"name": "x"}, headers=token)).status == 403


async def test_a_job_registers_for_itself(api, services):
    ds = await dataset(api)
    job = (await api("POST", "models/train", json_body=train_body(ds, model=INERT))).body
    token = job_token(services, "alice", job["id"])
    dv = job["spec"]["dataset_version_id"]
    body, headers = multipart([("meta", "m", meta(lineage={"job_id": "job_someoneelse", "dataset_version_id": dv, "hyperparameters": {"epochs": 2}})), ("weights", "w", weights())])
    reply = await api("POST", f"models/{job['spec']['model_id']}/versions", user=None, body=body, headers={**headers, **token})
    assert reply.status == 201, reply.body
    version = reply.body
    assert version["job_id"] == job["id"] and version["lineage"]["job_id"] == job["id"]  # from the token
    assert version["dataset_version_id"] == dv and version["lineage"]["dataset_id"] == ds and version["lineage"]["dataset_version"] == 1
    assert (await api("GET", f"jobs/{job['id']}")).body["result"] == {"model_id": job["spec"]["model_id"], "model_version": 1}
    # a job cannot register to a model of another user
    carols = (await api("POST", "models", user="carol", json_body={"name": "c", "visibility": "public"})).body
    reply = await api("POST", f"models/{carols['id']}/versions", user=None, body=body, headers={**headers, **token})
    assert reply.status == 403, reply.body
