"""The model registry over HTTP: stages and their transitions, compare, lineage as far as the
caller may read it, deletes refused while a deployment uses the version, and the garbage
collection of deleted weights (never of weights a registration is about to use)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from aistudio_jupyter.services.model_versions import artifact_key

from ..training.test_train_api import INERT, dataset, job_token, services, train_body  # noqa: F401 -- fixtures
from .helpers import deploy, multipart, new_model, register, weights


@pytest.fixture
def app(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


async def stages(api, model_id: str) -> dict[int, str]:
    page = await api("GET", f"models/{model_id}/versions", params={"sort": "version"})
    return {v["version"]: v["stage"] for v in page.body["items"]}


async def test_stage_transitions(api):
    model = await new_model(api)
    mid = model["id"]
    for seed in range(3):
        await register(api, mid, seed=seed)
    path = f"models/{mid}/versions"

    up = await api("PATCH", f"{path}/1", json_body={"stage": "staging"})
    assert up.status == 200 and up.body["stage"] == "staging" and up.body["version"] == 1
    assert (await api("PATCH", f"{path}/1", json_body={"stage": "production"})).body["stage"] == "production"
    # without archive_existing two versions may share production; the alias is the newest
    assert (await api("PATCH", f"{path}/2", json_body={"stage": "production"})).status == 200
    assert await stages(api, mid) == {1: "production", 2: "production", 3: "none"}
    assert (await api("GET", f"{path}/production")).body["version"] == 2
    # promoting with archive_existing archives every other production version at once
    promoted = await api("PATCH", f"{path}/3", json_body={"stage": "production", "archive_existing": True})
    assert promoted.status == 200 and promoted.body["stage"] == "production"
    assert await stages(api, mid) == {1: "archived", 2: "archived", 3: "production"}
    listed = await api("GET", path, params={"stage": "production"})
    assert [v["version"] for v in listed.body["items"]] == [3]
    assert [v["version"] for v in (await api("GET", path, params={"stage": "archived", "sort": "version"})).body["items"]] == [1, 2]
    assert (await api("GET", f"{path}/production")).body["version"] == 3
    assert (await api("GET", f"{path}/staging")).status == 404  # nothing in staging
    assert (await api("GET", f"{path}/latest")).body["version"] == 3

    # an archived version comes back through none or staging, not straight to production
    refused = await api("PATCH", f"{path}/1", json_body={"stage": "production"})
    assert refused.status == 422 and refused.body["error"]["details"]["allowed"] == ["none", "staging"]
    assert (await api("PATCH", f"{path}/1", json_body={"stage": "staging"})).body["stage"] == "staging"
    # staying put is allowed and changes nothing
    assert (await api("PATCH", f"{path}/3", json_body={"stage": "production"})).body["stage"] == "production"
    # archive_existing into staging archives the staging version only
    assert (await api("PATCH", f"{path}/2", json_body={"stage": "staging", "archive_existing": True})).body["stage"] == "staging"
    assert await stages(api, mid) == {1: "archived", 2: "staging", 3: "production"}


async def test_concurrent_promotions_leave_one_version_in_production(api):
    model = await new_model(api)
    mid = model["id"]
    for seed in range(4):
        await register(api, mid, seed=seed)
    for round in range(3):
        replies = await asyncio.gather(*(api("PATCH", f"models/{mid}/versions/{v}", json_body={"stage": "production", "archive_existing": True}) for v in (1, 2, 3, 4)))
        # a version archived by another promotion before its own turn may not go to production
        assert {r.status for r in replies} <= {200, 422} and 200 in {r.status for r in replies}, round
        now = await stages(api, mid)
        assert sorted(now.values()) == ["archived"] * 3 + ["production"], now
        # back through none, as an archived version must
        for v, stage in now.items():
            if stage == "archived":
                assert (await api("PATCH", f"models/{mid}/versions/{v}", json_body={"stage": "none"})).status == 200


async def test_stage_changes_refuse_bad_input_and_other_users(api):
    model = await new_model(api)
    mid = model["id"]
    await register(api, mid)
    path = f"models/{mid}/versions/1"
    for body in ({"stage": "live"}, {}, {"stage": "staging", "extra": 1}, {"stage": "staging", "archive_existing": "maybe"}):
        reply = await api("PATCH", path, json_body=body)
        assert reply.status == 422 and reply.body["error"]["code"] == "invalid", body
    assert (await api("PATCH", f"models/{mid}/versions/one", json_body={"stage": "staging"})).status == 422
    assert (await api("PATCH", f"models/{mid}/versions/9", json_body={"stage": "staging"})).status == 404
    # a private model: others get 404 for every route, as if it did not exist
    for user in ("bob", "carol"):
        assert (await api("PATCH", path, user=user, json_body={"stage": "staging"})).status == 404
        assert (await api("DELETE", path, user=user)).status == 404
        assert (await api("GET", f"models/{mid}/compare", user=user)).status == 404
        assert (await api("GET", f"{path}/lineage", user=user)).status == 404
    # a public model: others read it but cannot change it; a team editor can
    assert (await api("PATCH", f"models/{mid}", json_body={"visibility": "team", "team": "vision"})).status == 200
    assert (await api("PATCH", path, user="bob", json_body={"stage": "staging"})).status == 403  # member, not editor
    assert (await api("PATCH", path, user="carol", json_body={"stage": "staging"})).status == 404
    theirs = await new_model(api, user="bob", visibility="team", team="vision")
    await register(api, theirs["id"], user="bob")
    edited = await api("PATCH", f"models/{theirs['id']}/versions/1", json_body={"stage": "staging"})  # alice edits vision
    assert edited.status == 200 and edited.body["stage"] == "staging"
    assert await stages(api, mid) == {1: "none"}


async def test_compare_versions_side_by_side(api):
    model = await new_model(api)
    mid = model["id"]
    await register(api, mid, seed=0, metrics={"val/accuracy": 0.8, "loss": 0.5}, lineage={"hyperparameters": {"epochs": 2, "lr": 0.1}, "code_hash": "a"})
    await register(api, mid, seed=1, metrics={"val/accuracy": 0.9}, lineage={"hyperparameters": {"epochs": 4, "lr": 0.1}, "code_hash": "a"})
    await register(api, mid, seed=2, metrics={"val/accuracy": 0.95, "f1": 0.7}, lineage={"hyperparameters": {"epochs": 8, "lr": 0.1, "batch": 32}, "code_hash": "b"})

    picked = await api("GET", f"models/{mid}/compare", params={"versions": "3,1"})
    assert picked.status == 200, picked.body
    body = picked.body
    assert [c["version"] for c in body["versions"]] == [3, 1]
    assert body["metrics"] == {"f1": [0.7, None], "loss": [None, 0.5], "val/accuracy": [0.95, 0.8]}
    assert body["hyperparameters"] == {"batch": [32, None], "epochs": [8, 2], "lr": [0.1, 0.1]}
    assert body["lineage"]["code_hash"] == ["b", "a"]
    assert "hyperparameters.epochs" in body["differs"] and "hyperparameters.lr" not in body["differs"] and "lineage.code_hash" in body["differs"]

    every = (await api("GET", f"models/{mid}/compare")).body
    assert [c["version"] for c in every["versions"]] == [1, 2, 3] and every["metrics"]["val/accuracy"] == [0.8, 0.9, 0.95]
    for bad in ("1,x", "", "1;2", ",".join(["1"] * 51)):
        assert (await api("GET", f"models/{mid}/compare", params={"versions": bad})).status == 422, bad
    missing = await api("GET", f"models/{mid}/compare", params={"versions": "1,7"})
    assert missing.status == 404 and missing.body["error"]["details"]["versions"] == [7]
    assert (await api("GET", f"models/{mid}/compare", params={"version": "1"})).status == 422


async def test_lineage_hides_what_the_caller_cannot_read(api, services):  # noqa: F811
    ds = await dataset(api)
    job = (await api("POST", "models/train", json_body=train_body(ds, model=INERT))).body
    mid = job["spec"]["model_id"]
    meta = {"spec": {"format": "aistudio.safetensors/1"}, "lineage": {"dataset_version_id": job["spec"]["dataset_version_id"]}}
    body, headers = multipart([("meta", json.dumps(meta).encode()), ("weights", weights(5))])
    reply = await api("POST", f"models/{mid}/versions", user=None, body=body, headers={**headers, **job_token(services, "alice", job["id"])})
    assert reply.status == 201, reply.body
    mine = await deploy(api, mid, 1)
    assert (await api("PATCH", f"models/{mid}", json_body={"visibility": "public"})).status == 200
    carols = await deploy(api, mid, 1, user="carol")

    seen = await api("GET", f"models/{mid}/versions/1/lineage")
    assert seen.status == 200, seen.body
    lineage = seen.body
    dataset_name = (await api("GET", f"datasets/{ds}")).body["name"]
    assert lineage["dataset"]["id"] == ds and lineage["dataset"]["name"] == dataset_name and lineage["dataset"]["version"] == 1
    assert lineage["dataset"]["version_id"] == job["spec"]["dataset_version_id"] and len(lineage["dataset"]["sha256"]) == 64
    assert lineage["job"]["id"] == job["id"] and lineage["job"]["kind"] == job["kind"] and "state" in lineage["job"]
    assert lineage["model_version"]["version"] == 1 and lineage["model_version"]["model_id"] == mid
    assert lineage["deployments"] == [{"id": mine["id"], "name": mine["name"], "state": lineage["deployments"][0]["state"], "model_version": 1}, {"id": carols["id"], "hidden": True}]
    # carol reads the public model, but not alice's dataset, job or deployment
    theirs = (await api("GET", f"models/{mid}/versions/latest/lineage", user="carol")).body
    assert theirs["dataset"] == {"id": ds, "hidden": True} and theirs["job"] == {"id": job["id"], "hidden": True}
    assert theirs["deployments"][0] == {"id": mine["id"], "hidden": True} and theirs["deployments"][1]["name"] == carols["name"]
    assert dataset_name not in str(theirs) and mine["name"] not in str(theirs)
    # a version registered by hand has no lineage to show
    await register(api, mid, seed=6)
    bare = (await api("GET", f"models/{mid}/versions/2/lineage")).body
    assert bare["dataset"] is None and bare["job"] is None and bare["deployments"] == []
    for dep in (mine, carols):
        owner = "alice" if dep is mine else "carol"
        assert (await api("DELETE", f"deployments/{dep['id']}", user=owner)).status == 204


async def test_a_deployed_version_cannot_be_deleted(api):
    model = await new_model(api, visibility="public")
    mid = model["id"]
    for seed in range(3):
        await register(api, mid, seed=10 + seed)
    dep = await deploy(api, mid, 1)
    bobs = await deploy(api, mid, 1, user="bob")

    refused = await api("DELETE", f"models/{mid}/versions/1")
    assert refused.status == 409 and refused.body["error"]["code"] == "conflict"
    assert dep["id"] in refused.body["error"]["message"] and dep["name"] in refused.body["error"]["message"]
    assert refused.body["error"]["details"]["deployments"] == [{"id": dep["id"], "name": dep["name"], "state": refused.body["error"]["details"]["deployments"][0]["state"]}, {"id": bobs["id"], "hidden": True}]
    assert bobs["name"] not in refused.body["error"]["message"]
    whole = await api("DELETE", f"models/{mid}")
    assert whole.status == 409 and whole.body["error"]["code"] == "conflict" and dep["id"] in whole.body["error"]["message"]
    # a version no deployment uses goes; its number is not reused
    assert (await api("DELETE", f"models/{mid}/versions/3")).status == 204
    assert (await api("GET", f"models/{mid}/versions/3")).status == 404
    assert (await api("GET", f"models/{mid}/versions/latest")).body["version"] == 2
    assert (await api("DELETE", f"models/{mid}/versions/3")).status == 404
    assert (await api("DELETE", f"models/{mid}/versions/2", user="carol")).status == 403  # public: readable, not writable
    # the deployments go first, then the version and the model
    assert (await api("DELETE", f"deployments/{dep['id']}")).status == 204
    assert (await api("DELETE", f"models/{mid}/versions/1")).status == 409  # bob's still uses it
    assert (await api("DELETE", f"deployments/{bobs['id']}", user="bob")).status == 204
    assert (await api("DELETE", f"models/{mid}/versions/1")).status == 204
    assert [v["version"] for v in (await api("GET", f"models/{mid}/versions")).body["items"]] == [2]
    assert (await api("DELETE", f"models/{mid}")).status == 204
    again = await register(api, (await new_model(api))["id"], seed=10)
    assert again["version"] == 1


async def test_gc_reclaims_the_weights_of_deleted_versions(api, app):
    storage, gc = app.services.storage, app.services.gc
    first, second = await new_model(api), await new_model(api)
    shared, alone = weights(20), weights(21)
    keys = {name: artifact_key(hashlib.sha256(data).hexdigest()) for name, data in (("shared", shared), ("alone", alone))}
    await register(api, first["id"], data=shared)
    await register(api, second["id"], data=shared)  # the same weights: stored once
    await register(api, first["id"], data=alone)
    assert (await api("DELETE", f"models/{first['id']}/versions/1")).status == 204
    assert (await api("DELETE", f"models/{first['id']}/versions/2")).status == 204
    assert (await asyncio.to_thread(gc.collect)).deleted == []  # within the grace period
    done = await asyncio.to_thread(gc.collect, 0)
    assert done.deleted == [keys["alone"]] and done.bytes_freed == len(alone)
    assert not await asyncio.to_thread(storage.exists, keys["alone"])
    assert (await api("GET", f"models/{second['id']}/versions/1/artifact")).body == shared
    # deleting the whole model frees its weights too
    assert (await api("DELETE", f"models/{second['id']}")).status == 204
    assert (await asyncio.to_thread(gc.collect, 0)).deleted == [keys["shared"]]
    assert [k for k in await asyncio.to_thread(lambda: list(storage.list("models/sha256/")))] == []


async def test_registrations_during_collection_keep_their_weights(api, app):
    """Register the weights of a just-deleted version while collections run: a version never loses them."""
    gc, storage = app.services.gc, app.services.storage
    model = await new_model(api)
    data = weights(30)
    key = artifact_key(hashlib.sha256(data).hexdigest())
    for round in range(4):
        v = await register(api, model["id"], data=data)
        assert (await api("DELETE", f"models/{model['id']}/versions/{v['version']}")).status == 204  # now garbage
        collecting = asyncio.gather(*(asyncio.to_thread(gc.collect, 0) for _ in range(2)))
        revived = await register(api, model["id"], data=data)
        await collecting
        assert await asyncio.to_thread(storage.exists, key), round
        assert (await api("GET", f"models/{model['id']}/versions/{revived['version']}/artifact")).body == data
        assert (await api("DELETE", f"models/{model['id']}/versions/{revived['version']}")).status == 204
