"""CRUD of models, agents, deployments and jobs, and the meta routes `/me` and `/health`,
through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, text

import aistudio_jupyter
from aistudio_jupyter.app import DEFAULT_TIER
from aistudio_jupyter.identity import Principal, teams_for
from aistudio_jupyter.schemas.jobs import JobSubmit
from tests.conftest import TEAMS

GOLD = {"priority": 5, "concurrent_jobs": 16, "gpus_per_job": 4, "storage_bytes": 10**12}
PRICE_PER_GPU_HOUR = 2.0


@pytest.fixture
def aistudio_config(aistudio_config):
    """bob is on a paid tier, and GPU time has a price, so /me has something to report."""
    return {**aistudio_config, "tiers": {"gold": GOLD}, "user_tiers": {"bob": "gold"}, "price_per_gpu_hour": PRICE_PER_GPU_HOUR}


def sql(database_url: str, statement: str, **params) -> None:
    """Write state that no route sets yet (scheduler states, upload sizes, model versions)."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


async def submit(jp_serverapp, user: str, name: str, **fields) -> dict:
    """Jobs have no create route until the scheduler lands; this is the service door it will use."""
    teams, editor = teams_for(user, (), TEAMS)
    jobs = jp_serverapp.web_app.settings["aistudio"].services.jobs
    job = await jobs.submit(Principal(username=user, teams=teams, editor_teams=editor), JobSubmit(name=name, **fields))
    return job.model_dump(mode="json")


# -- models and agents -----------------------------------------------------------------------

CRUD = {
    "models": {
        "create": {"name": "resnet", "description": "image classifier", "tags": ["vision", "cnn"], "task": "classification"},
        "expect": {"latest_version": 0, "task": "classification", "tags": ["vision", "cnn"]},
        "patch": {"task": "embedding", "tags": []},
        "invalid": [{"name": "m", "task": "astrology"}, {"name": "m", "tags": ["x" * 65]}, {"name": "m", "tags": ["t"] * 33}],
    },
    "agents": {
        "create": {
            "name": "trainer",
            "instructions": "Train the best model you can within budget.",
            "tools": ["datasets.search", "jobs.submit"],
            "planner": "plan_and_execute",
            "llm": "local-llama",
            "limits": {"max_steps": 5, "max_cost_usd": 2.5},
        },
        "expect": {
            "tools": ["datasets.search", "jobs.submit"],
            "planner": "plan_and_execute",
            "llm": "local-llama",
            # limits left out take their defaults: an agent never runs unbounded
            "limits": {"max_steps": 5, "max_seconds": 600, "max_tool_calls": 50, "max_cost_usd": 2.5, "max_gpus": 0},
        },
        "patch": {"planner": "single_shot", "tools": ["jobs.cancel"], "limits": {"max_steps": 9, "max_seconds": 60, "max_tool_calls": 3, "max_cost_usd": 0.5, "max_gpus": 1}},
        "invalid": [{"name": "a", "planner": "vibes"}, {"name": "a", "limits": {"max_steps": 0}}, {"name": "a", "limits": {"max_gpus": 65}}, {"name": "a", "tools": "jobs.submit"}, {"name": "a", "llm": ""}],
    },
}


@pytest.mark.parametrize("kind", list(CRUD))
async def test_crud(api, kind):
    spec = CRUD[kind]
    created = await api("POST", kind, json_body=spec["create"])
    assert created.status == 201, created.body
    row = created.body
    assert row["owner"] == "alice" and row["visibility"] == "private" and row["team"] is None
    assert row["name"] == spec["create"]["name"] and row["updated_at"] == row["created_at"]
    assert {k: row[k] for k in spec["expect"]} == spec["expect"]

    assert (await api("GET", f"{kind}/{row['id']}")).body == row
    listed = await api("GET", kind)
    assert [item["id"] for item in listed.body["items"]] == [row["id"]]
    assert listed.body["items"][0] == row
    assert (await api("GET", kind, params={"q": spec["create"]["name"][:3].upper()})).body["items"] == [row]
    assert (await api("GET", kind, params={"q": "nothing-like-it"})).body["items"] == []

    patched = await api("PATCH", f"{kind}/{row['id']}", json_body=spec["patch"])
    assert patched.status == 200, patched.body
    assert {k: patched.body[k] for k in spec["patch"]} == spec["patch"]
    # fields the patch leaves out keep their values
    assert patched.body["name"] == row["name"] and patched.body["created_at"] == row["created_at"]
    assert patched.body["updated_at"] > row["updated_at"]
    assert (await api("GET", f"{kind}/{row['id']}")).body == patched.body

    renamed = await api("PATCH", f"{kind}/{row['id']}", json_body={"name": "renamed"})
    assert renamed.status == 200 and renamed.body["name"] == "renamed"
    assert (await api("POST", kind, json_body={**spec["create"], "name": "renamed"})).status == 409
    other = await api("POST", kind, json_body={"name": "another"})
    assert other.status == 201
    clash = await api("PATCH", f"{kind}/{other.body['id']}", json_body={"name": "renamed"})
    assert clash.status == 409 and clash.error["code"] == "conflict"

    for body in spec["invalid"]:
        bad = await api("POST", kind, json_body=body)
        assert bad.status == 422 and bad.error["code"] == "invalid", body

    assert (await api("DELETE", f"{kind}/{row['id']}")).status == 204
    assert (await api("GET", f"{kind}/{row['id']}")).status == 404
    assert (await api("DELETE", f"{kind}/{row['id']}")).status == 404
    assert [item["id"] for item in (await api("GET", kind)).body["items"]] == [other.body["id"]]


# -- deployments -----------------------------------------------------------------------------


async def test_deployment_lifecycle(api):
    model = (await api("POST", "models", json_body={"name": "iris-mlp"})).body
    created = await api("POST", "deployments", json_body={"name": "iris-api", "model_id": model["id"], "replicas": 2, "resources": {"cpus": 0.5}})
    assert created.status == 201, created.body
    dep = created.body
    assert dep["state"] == "pending" and dep["status_message"] is None
    assert dep["model_id"] == model["id"] and dep["model_version"] is None and dep["replicas"] == 2
    assert dep["resources"] == {"cpus": 0.5, "gpus": 0, "memory_mb": 2048}
    assert dep["batching"] == {"max_batch_size": 32, "max_wait_ms": 5.0}
    assert (await api("GET", f"deployments/{dep['id']}")).body == dep
    assert [d["id"] for d in (await api("GET", "deployments", params={"status": "pending"})).body["items"]] == [dep["id"]]
    assert (await api("GET", "deployments", params={"status": "ready"})).body["items"] == []

    patched = await api("PATCH", f"deployments/{dep['id']}", json_body={"replicas": 3, "batching": {"max_batch_size": 8, "max_wait_ms": 1.0}})
    assert patched.status == 200, patched.body
    assert patched.body["replicas"] == 3 and patched.body["batching"] == {"max_batch_size": 8, "max_wait_ms": 1.0}
    # the state belongs to the deployment controller, never to a client
    forced = await api("PATCH", f"deployments/{dep['id']}", json_body={"state": "ready"})
    assert forced.status == 422
    moved = await api("PATCH", f"deployments/{dep['id']}", json_body={"model_id": "mdl_other"})
    assert moved.status == 422

    # a model that serves a deployment cannot disappear under it
    busy = await api("DELETE", f"models/{model['id']}")
    assert busy.status == 409 and busy.error["code"] == "conflict"
    assert [d["id"] for d in busy.error["details"]["deployments"]] == [dep["id"]]
    assert (await api("GET", f"models/{model['id']}")).status == 200

    assert (await api("DELETE", f"deployments/{dep['id']}")).status == 204
    assert (await api("GET", f"deployments/{dep['id']}")).status == 404
    assert (await api("DELETE", f"models/{model['id']}")).status == 204


async def test_deployment_needs_a_readable_model_and_an_existing_version(api, database_url):
    unknown = await api("POST", "deployments", json_body={"name": "ghost", "model_id": "mdl_0000000000000000000000000"})
    assert unknown.status == 404 and unknown.error["code"] == "not_found"
    bobs_private = (await api("POST", "models", user="bob", json_body={"name": "secret"})).body
    hidden = await api("POST", "deployments", json_body={"name": "borrowed", "model_id": bobs_private["id"]})
    assert hidden.status == 404, "another user's private model must look missing"
    bobs_public = (await api("POST", "models", user="bob", json_body={"name": "shared", "visibility": "public"})).body
    borrowed = await api("POST", "deployments", json_body={"name": "borrowed", "model_id": bobs_public["id"]})
    assert borrowed.status == 201 and borrowed.body["owner"] == "alice"

    model = (await api("POST", "models", json_body={"name": "versioned"})).body
    missing = await api("POST", "deployments", json_body={"name": "v7", "model_id": model["id"], "model_version": 7})
    assert missing.status == 422 and missing.error["code"] == "invalid"
    # versions arrive with training (not yet routed); register version 1 in the store directly
    sql(
        database_url,
        "INSERT INTO model_versions (id, model_id, version, stage, spec, metrics, lineage, created_by, created_at) "
        "VALUES (:id, :m, 1, 'none', '{}', '{}', '{}', 'alice', :now)",
        id="mv_test_1",
        m=model["id"],
        now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    )
    pinned = await api("POST", "deployments", json_body={"name": "v1", "model_id": model["id"], "model_version": 1})
    assert pinned.status == 201, pinned.body
    assert pinned.body["model_version"] == 1
    repin = await api("PATCH", f"deployments/{pinned.body['id']}", json_body={"model_version": 2})
    assert repin.status == 422
    assert (await api("GET", f"deployments/{pinned.body['id']}")).body["model_version"] == 1
    # bob's public model has no version 1: the check is per model, not global
    cross = await api("POST", "deployments", json_body={"name": "cross", "model_id": bobs_public["id"], "model_version": 1})
    assert cross.status == 422


# -- jobs ------------------------------------------------------------------------------------


async def test_jobs_list_get_and_status_filter(jp_serverapp, api, database_url):
    queued = await submit(jp_serverapp, "alice", "prep", kind="script", spec={"argv": ["python", "prep.py"]})
    running = await submit(jp_serverapp, "alice", "train", kind="train", resources={"gpus": 1})
    failed = await submit(jp_serverapp, "alice", "eval", kind="validate")
    await submit(jp_serverapp, "bob", "bobs", kind="script")
    # the scheduler that moves jobs along lands later; set the states it would have set
    sql(database_url, "UPDATE jobs SET state = 'running', attempts = 1 WHERE id = :id", id=running["id"])
    sql(database_url, "UPDATE jobs SET state = 'failed', exit_code = 3, exit_reason = 'exit 3' WHERE id = :id", id=failed["id"])

    got = await api("GET", f"jobs/{queued['id']}")
    assert got.status == 200
    job = got.body
    assert job["state"] == "queued" and job["kind"] == "script" and job["owner"] == "alice"
    assert job["spec"] == {"argv": ["python", "prep.py"]} and job["resources"]["gpus"] == 0
    assert job["exit_code"] is None and job["attempts"] == 0 and job["started_at"] is None

    everything = await api("GET", "jobs")
    assert [j["id"] for j in everything.body["items"]] == [failed["id"], running["id"], queued["id"]]
    for state, expected in (("running", [running]), ("queued", [queued]), ("failed", [failed]), ("succeeded", [])):
        page = await api("GET", "jobs", params={"status": state})
        assert page.status == 200
        assert [j["id"] for j in page.body["items"]] == [j["id"] for j in expected], state
    failed_now = (await api("GET", f"jobs/{failed['id']}")).body
    assert failed_now["exit_code"] == 3 and failed_now["exit_reason"] == "exit 3"
    assert [j["id"] for j in (await api("GET", "jobs", params={"limit": "2"})).body["items"]] == [failed["id"], running["id"]]
    assert (await api("GET", "jobs", user="carol")).body["items"] == []


# -- /me and /health -------------------------------------------------------------------------


def _period() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")


async def test_me_reports_identity_tier_and_quotas(api):
    quota_keys = ("storage_bytes", "concurrent_jobs", "gpus_per_job", "gpu_hours_per_month", "requests_per_minute", "upload_bytes")
    alice = (await api("GET", "me")).body
    assert alice["username"] == "alice" and alice["display_name"] == "Alice"
    assert alice["teams"] == ["vision"] and alice["editor_teams"] == ["vision"] and alice["groups"] == []
    assert alice["tier"] == "default" and alice["token_scopes"] is None
    assert alice["quotas"] == {k: DEFAULT_TIER[k] for k in quota_keys}

    bob = (await api("GET", "me", user="bob")).body
    assert bob["username"] == "bob" and bob["teams"] == ["vision"] and bob["editor_teams"] == []
    assert bob["tier"] == "gold"
    # the tier overrides some quotas; the rest come from the default tier
    assert bob["quotas"] == {k: GOLD.get(k, DEFAULT_TIER[k]) for k in quota_keys}

    carol = (await api("GET", "me", user="carol")).body
    assert carol["teams"] == [] and carol["tier"] == "default"
    assert carol["usage"]["storage_bytes"] == 0 and carol["usage"]["active_jobs"] == 0 and carol["usage"]["cost"] == 0


async def test_me_usage_counts_storage_active_jobs_and_gpu_time(jp_serverapp, api, database_url):
    first = (await api("POST", "datasets", json_body={"name": "a"})).body
    second = (await api("POST", "datasets", json_body={"name": "b", "visibility": "public"})).body
    bobs = (await api("POST", "datasets", user="bob", json_body={"name": "c"})).body
    # sizes arrive with uploaded versions; write them as the upload path would
    for ds, size in ((first, 1000), (second, 2345), (bobs, 10**9)):
        sql(database_url, "UPDATE datasets SET size_bytes = :s WHERE id = :id", s=size, id=ds["id"])
    jobs = [await submit(jp_serverapp, "alice", f"j{i}", kind="script") for i in range(4)]
    sql(database_url, "UPDATE jobs SET state = 'running' WHERE id = :id", id=jobs[0]["id"])
    sql(database_url, "UPDATE jobs SET state = 'succeeded' WHERE id = :id", id=jobs[1]["id"])
    sql(database_url, "UPDATE jobs SET state = 'canceled' WHERE id = :id", id=jobs[2]["id"])
    await submit(jp_serverapp, "bob", "bobs", kind="script")
    before = _period()
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for owner, period, seconds in (("alice", before, 1800.0), ("alice", before, 900.0), ("alice", "2000-01", 36_000.0), ("bob", before, 7200.0)):
        sql(
            database_url,
            "INSERT INTO usage_records (owner, period, kind, amount, created_at) VALUES (:o, :p, 'gpu_seconds', :a, :now)",
            o=owner,
            p=period,
            a=seconds,
            now=now,
        )

    usage = (await api("GET", "me")).body["usage"]
    assert usage["period"] in (before, _period())
    assert usage["storage_bytes"] == 3345, "own datasets only, public ones included"
    assert usage["active_jobs"] == 2, "queued and running count; succeeded and canceled do not"
    assert usage["gpu_seconds"] == 2700.0, "this month only"
    assert usage["cost"] == pytest.approx(2700.0 / 3600 * PRICE_PER_GPU_HOUR)
    bob_usage = (await api("GET", "me", user="bob")).body["usage"]
    assert bob_usage["storage_bytes"] == 10**9 and bob_usage["active_jobs"] == 1 and bob_usage["gpu_seconds"] == 7200.0


async def test_health(api, database_url):
    reply = await api("GET", "health")
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "ok" and reply.body["version"] == aistudio_jupyter.__version__
    database = reply.body["database"]
    assert database["ok"] is True and database["dialect"] == database_url.split(":")[0].split("+")[0]
    assert 0 <= database["latency_ms"] < 5000
    assert (await api("GET", "health", user=None)).status == 403


async def test_status_filter_refuses_unknown_states(api):
    for path in ("jobs", "deployments"):
        typo = await api("GET", path, params={"status": "runing"})
        assert typo.status == 422 and typo.error["details"]["field"] == "status", typo.body
        assert "running" in typo.error["message"] or "ready" in typo.error["message"]
        assert (await api("GET", path, params={"status": "failed"})).status == 200


async def test_patch_with_null_for_a_required_field_is_refused(api):
    # found by schemathesis: {"tags": null} reached the response model and answered 500
    ds = (await api("POST", "datasets", json_body={"name": "nulls"})).body
    for field in ("tags", "name", "description", "visibility"):
        refused = await api("PATCH", f"datasets/{ds['id']}", json_body={field: None})
        assert refused.status == 422 and refused.error["details"]["field"] == field, refused.body
    cleared = await api("PATCH", f"datasets/{ds['id']}", json_body={"team": None})
    assert cleared.status == 200 and cleared.body["team"] is None
    assert (await api("GET", f"datasets/{ds['id']}")).body["tags"] == []
