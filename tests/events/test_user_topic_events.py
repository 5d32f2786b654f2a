"""``dataset``, ``model`` and ``deployment`` events on ``user:<owner>`` (the sidebar's one
subscription), against a real server on SQLite and PostgreSQL: every write announces itself
with its action in the write's own transaction, only to the row's owner, and a write that
fails announces nothing."""

from __future__ import annotations

import asyncio
import time

import pytest

from aistudio_jupyter.identity import Principal
from aistudio_jupyter.schemas.datasets import DatasetCreate

from ..conftest import TOKENS
from ..handlers.test_events import collect, recv, send, subscribe
from ..handlers.test_validation import HEADER, clean_records, csv_of
from ..handlers.test_versions import multipart
from ..models.helpers import deploy, new_model, register

TYPES = ("dataset", "model", "deployment")
DEADLINE = 30.0


@pytest.fixture
def app(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


@pytest.fixture
def ws(jp_ws_fetch):
    async def connect(user: str = "alice"):
        return await jp_ws_fetch("aistudio", "api", "events", headers={"Authorization": f"token {TOKENS[user]}"})

    return connect


async def announced(conn, count: int, timeout: float = DEADLINE) -> list[dict]:
    """The next ``count`` dataset/model/deployment events (the jobs' ``job`` events skipped)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        (event,) = await collect(conn, 1, max(0.1, deadline - time.monotonic()))
        if event["type"] in TYPES:
            out.append(event)
    return out


async def quiet(conn, wait: float = 0.5) -> list[dict]:
    """Whatever ``conn`` receives within ``wait`` seconds after a ping's pong (which proves the
    socket is past everything sent before it)."""
    await send(conn, {"op": "ping"})
    got = []
    while True:
        message = await recv(conn)
        if message.get("op") == "pong":
            break
        got.append(message)
    try:
        while True:
            got.append(await recv(conn, wait))
    except asyncio.TimeoutError:
        return [m for m in got if "seq" in m]


def actions(events: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["type"], e["data"]["action"], e["data"]["id"]) for e in events]


async def upload_file(api, ds: str, data: bytes, name: str = "data.csv", user: str = "alice"):
    body, ctype = multipart([("file", name, data)])
    return await api("POST", f"datasets/{ds}/files", user=user, body=body, headers={"Content-Type": ctype})


async def test_dataset_writes_and_validation_are_announced_to_the_owner(api, ws):
    conn = await ws("alice")
    await subscribe(conn, "user:alice")
    created = await api("POST", "datasets", json_body={"name": "live-ds", "description": "first"})
    assert created.status == 201, created.body
    ds = created.body["id"]
    (event,) = await announced(conn, 1)
    assert event["topic"] == "user:alice"
    assert actions([event]) == [("dataset", "created", ds)]
    assert event["data"]["record"] == created.body

    assert (await api("PATCH", f"datasets/{ds}", json_body={"description": "second"})).status == 200
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("dataset", "updated", ds)] and event["data"]["record"]["description"] == "second"

    data = b"\n".join(csv_of(clean_records(20), HEADER)) + b"\n"
    version = await upload_file(api, ds, data)
    assert version.status == 201, version.body
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("dataset", "version", ds)]
    assert event["data"]["record"]["latest_version"] == 1 and event["data"]["record"]["size_bytes"] == len(data)
    assert event["data"]["version"]["version"] == 1 and event["data"]["version"]["version_id"] == version.body["id"]

    # a validation is followed from queued to its verdict on the same topic
    started = await api("POST", f"datasets/{ds}/validate", json_body={"rules": [{"check": "not_null", "column": "id"}]})
    assert started.status == 202, started.body
    vid = started.body["validation"]["id"]
    states = []
    while not states or states[-1] not in ("passed", "failed", "error"):
        (event,) = await announced(conn, 1)
        assert actions([event]) == [("dataset", "validation", ds)]
        report = event["data"]["validation"]
        assert (report["id"], report["dataset_id"], report["version"], report["job_id"]) == (vid, ds, 1, started.body["job"]["id"])
        states.append(report["state"])
    assert states == ["pending", "running", "passed"] and report["passed"] is True

    assert (await api("DELETE", f"datasets/{ds}")).status == 204
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("dataset", "deleted", ds)] and "record" not in event["data"]


async def test_an_upload_that_makes_a_dataset_announces_it_once_as_created(api, ws):
    from ..handlers.test_uploads import upload_bytes

    conn = await ws("alice")
    await subscribe(conn, "user:alice")
    _, reply = await upload_bytes(api, b"a,b\n1,2\n", name="by-upload", filename="by-upload.csv")
    assert reply.status == 204, reply.body
    ds = reply.headers["AIStudio-Dataset"]
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("dataset", "created", ds)]
    assert event["data"]["record"]["name"] == "by-upload" and event["data"]["version"]["version"] == 1
    assert await quiet(conn) == []


async def test_model_registry_writes_are_announced(api, ws):
    conn = await ws("alice")
    await subscribe(conn, "user:alice")
    model = await new_model(api, "live-model")
    mid = model["id"]
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("model", "created", mid)] and event["data"]["record"]["latest_version"] == 0

    v1 = await register(api, mid, seed=1, metrics={"acc": 0.5})
    await register(api, mid, seed=2)
    got = await announced(conn, 2)
    assert actions(got) == [("model", "version", mid)] * 2
    assert [e["data"]["version"]["version"] for e in got] == [1, 2] and got[0]["data"]["version"]["id"] == v1["id"]
    assert got[1]["data"]["record"]["latest_version"] == 2
    # a summary, not the version's whole record
    assert set(got[0]["data"]["version"]) == {"id", "version", "stage", "created_at"}

    assert (await api("PATCH", f"models/{mid}/versions/1", json_body={"stage": "production"})).status == 200
    assert (await api("PATCH", f"models/{mid}/versions/2", json_body={"stage": "production", "archive_existing": True})).status == 200
    got = await announced(conn, 2)
    assert actions(got) == [("model", "stage", mid)] * 2
    assert [(e["data"]["version"]["version"], e["data"]["version"]["stage"], e["data"]["archived"]) for e in got] == [(1, "production", []), (2, "production", [1])]

    assert (await api("DELETE", f"models/{mid}/versions/1")).status == 204
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("model", "version_deleted", mid)] and event["data"]["version"]["version"] == 1

    assert (await api("PATCH", f"models/{mid}", json_body={"description": "better"})).status == 200
    assert (await api("DELETE", f"models/{mid}/versions/2")).status == 204
    assert (await api("DELETE", f"models/{mid}")).status == 204
    assert actions(await announced(conn, 3)) == [("model", "updated", mid), ("model", "version_deleted", mid), ("model", "deleted", mid)]


async def test_deployment_writes_and_state_changes_are_announced(api, ws):
    model = await new_model(api, "served")
    await register(api, model["id"])
    conn = await ws("alice")
    await subscribe(conn, "user:alice")
    dep = await deploy(api, model["id"], 1)
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("deployment", "created", dep["id"])]
    assert event["data"]["record"]["state"] == "pending" and event["data"]["record"]["name"] == dep["name"]

    # no server runs it here (the supervisor is off): stopping is immediate, and so is its state
    assert (await api("POST", f"deployments/{dep['id']}/stop")).status == 202
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("deployment", "state", dep["id"])]
    assert {k: event["data"][k] for k in ("state", "ready_replicas", "replicas", "model_version")} == {"state": "stopped", "ready_replicas": 0, "replicas": 1, "model_version": 1}
    assert (await api("POST", f"deployments/{dep['id']}/start")).status == 202
    (event,) = await announced(conn, 1)
    assert (event["data"]["action"], event["data"]["state"]) == ("state", "pending")

    assert (await api("PATCH", f"deployments/{dep['id']}", json_body={"replicas": 2})).status == 200
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("deployment", "updated", dep["id"])] and event["data"]["record"]["replicas"] == 2
    assert (await api("DELETE", f"deployments/{dep['id']}")).status == 204
    (event,) = await announced(conn, 1)
    assert actions([event]) == [("deployment", "deleted", dep["id"])]


async def test_only_the_owner_hears_and_only_the_owner_may_subscribe(api, ws):
    bob = await ws("bob")
    await send(bob, {"op": "subscribe", "topic": "user:alice", "since": 0})
    refused = await recv(bob)
    assert refused["op"] == "error" and refused["error"]["code"] == "not_found", refused
    await subscribe(bob, "user:bob")
    alice = await ws("alice")
    await subscribe(alice, "user:alice")

    # alice's public dataset: bob may read it, but its events are alice's alone
    public = (await api("POST", "datasets", json_body={"name": "open", "visibility": "public"})).body
    assert actions(await announced(alice, 1)) == [("dataset", "created", public["id"])]
    # bob's team dataset changed by alice, an editor of the team: announced to bob, its owner
    shared = await api("POST", "datasets", user="bob", json_body={"name": "shared", "visibility": "team", "team": "vision"})
    assert shared.status == 201, shared.body
    assert (await api("PATCH", f"datasets/{shared.body['id']}", json_body={"description": "edited by alice"})).status == 200
    assert actions(await announced(bob, 2)) == [("dataset", "created", shared.body["id"]), ("dataset", "updated", shared.body["id"])]
    assert await quiet(alice) == []
    assert await quiet(bob) == []


async def test_a_failed_write_announces_nothing(api, ws, app):
    model = await new_model(api, "kept")
    await register(api, model["id"])
    dep = await deploy(api, model["id"], 1)
    taken = (await api("POST", "datasets", json_body={"name": "taken"})).body
    conn = await ws("alice")
    await subscribe(conn, "user:alice")

    # refused before or after the row changed: each rolls back, nothing is announced
    assert (await api("POST", "datasets", json_body={"name": "taken"})).status == 409
    assert (await api("PATCH", f"datasets/{taken['id']}", json_body={"visibility": "team", "team": "nope"})).status == 422
    assert (await api("DELETE", f"models/{model['id']}/versions/1")).status == 409
    assert (await api("DELETE", f"models/{model['id']}")).status == 409
    assert (await api("PATCH", f"models/{model['id']}/versions/1", json_body={"stage": "archived"})).status == 200
    assert (await api("PATCH", f"models/{model['id']}/versions/1", json_body={"stage": "production"})).status == 422
    (staged,) = await announced(conn, 1)
    assert staged["data"]["action"] == "stage"

    # a transaction that announced and then failed: its event never reaches a reader, and the
    # seq it took is not skipped (the next event follows the last one delivered)
    alice = Principal("alice", teams=("vision",), editor_teams=("vision",))

    def announce_then_fail(session):
        app.services.datasets._create(session, alice, DatasetCreate(name="rolled-back"))
        raise RuntimeError("after the announcement")

    with pytest.raises(RuntimeError):
        await app.services.db.run(announce_then_fail, write=True)
    assert (await api("GET", "datasets", params={"q": "rolled-back"})).body["items"] == []
    assert await quiet(conn) == []
    assert (await api("DELETE", f"deployments/{dep['id']}")).status == 204
    (deleted,) = await announced(conn, 1)
    assert actions([deleted]) == [("deployment", "deleted", dep["id"])] and deleted["seq"] == staged["seq"] + 1
    replay = await ws("alice")
    await subscribe(replay, "user:alice", since=0)
    history = await collect(replay, deleted["seq"])
    assert [e["seq"] for e in history] == list(range(1, deleted["seq"] + 1))
    assert "rolled-back" not in str(history)
