"""``/jobs/{id}/metrics``, ``/jobs/interactive`` and ``/jobs/{id}/finish`` through HTTP, on
SQLite and PostgreSQL: round trips, downsampling that keeps extremes, refusals, ownership,
job tokens, events, and the sweep of runs whose kernel went away."""

from __future__ import annotations

import json
import math

import pytest

from aistudio_jupyter.runtime.client import Record
from aistudio_jupyter.schemas.jobs import JobSubmit
from aistudio_jupyter.services.metrics import insert_points
from tests.handlers.test_isolation import principal


def services_of(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"].services


async def start_run(api, user: str = "alice", **body) -> dict:
    reply = await api("POST", "jobs/interactive", user=user, json_body={"name": "run", "config": {"lr": 0.1}, **body})
    assert reply.status == 201, reply.body
    return reply.body


async def post_points(api, job_id: str, points: list[dict], user: str = "alice", **kw):
    return await api("POST", f"jobs/{job_id}/metrics", user=user, json_body={"points": points}, **kw)


async def series(api, job_id: str, user: str = "alice", **params) -> dict:
    reply = await api("GET", f"jobs/{job_id}/metrics", user=user, params={k: str(v) for k, v in params.items()})
    assert reply.status == 200, reply.body
    return reply.body["series"]


async def test_round_trip_keys_and_since_step(api, jp_serverapp):
    job = await start_run(api)
    assert (job["kind"], job["state"], job["spec"], job["owner"]) == ("interactive", "running", {"config": {"lr": 0.1}}, "alice")
    assert job["started_at"] is not None
    points = [{"key": "loss", "step": i, "value": 1 / (i + 1), "wall_time": 1_700_000_000 + i} for i in range(50)]
    points += [{"key": "train/acc", "step": i, "value": i / 50} for i in range(0, 50, 5)]
    reply = await post_points(api, job["id"], points)
    assert reply.status == 200 and reply.body == {"accepted": 60, "canceled": False}

    everything = await series(api, job["id"])
    assert sorted(everything) == ["loss", "train/acc"]
    assert everything["loss"] == [{"step": p["step"], "value": p["value"], "wall_time": p["wall_time"]} for p in points[:50]]
    assert [p["step"] for p in everything["train/acc"]] == list(range(0, 50, 5))
    assert all(p["wall_time"] > 1_700_000_000 for p in everything["train/acc"])  # stamped by the server

    tail = await series(api, job["id"], keys="train/acc, loss,missing", since_step=40)
    assert [p["step"] for p in tail["loss"]] == list(range(40, 50))
    assert [p["step"] for p in tail["train/acc"]] == [40, 45]
    assert tail["missing"] == []

    # one metrics event per batch, carrying exactly the stored points, after the run's status event
    history = await services_of(jp_serverapp).events.history(f"job:{job['id']}")
    assert [e["type"] for e in history] == ["status", "metrics"]
    assert history[0]["data"]["state"] == "running"
    assert len(history[1]["data"]["points"]) == 60 and history[1]["data"]["points"][0] == {"key": "loss", "step": 0, "value": 1.0, "wall_time": 1_700_000_000}


async def test_downsampling_keeps_extremes_of_100k_points(api, jp_serverapp):
    job = await start_run(api)
    n = 100_000
    values = [math.sin(i / 2000) + 0.01 * ((i * 7919) % 13) for i in range(n)]
    values[53_211], values[77_777] = 50.0, -50.0
    # seeded with the service's own bulk insert: 100 POSTs' worth of HTTP would test nothing more
    rows = [(job["id"], "loss", i, values[i], 1.0) for i in range(n)]
    await services_of(jp_serverapp).db.run(insert_points, rows, write=True)

    for max_points in (1000, 8):
        got = (await series(api, job["id"], keys="loss", max_points=max_points))["loss"]
        assert len(got) <= max_points
        steps = [p["step"] for p in got]
        assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == n - 1
        assert max(p["value"] for p in got) == 50.0 and min(p["value"] for p in got) == -50.0
        assert all(p["value"] == values[p["step"]] for p in got)
        if max_points == 1000:
            assert len(got) > 900  # the budget is used, not wasted

    # a window after since_step is downsampled on its own
    late = (await series(api, job["id"], keys="loss", since_step=60_000, max_points=100))["loss"]
    assert len(late) <= 100 and late[0]["step"] == 60_000 and min(p["value"] for p in late) == -50.0


async def test_refusals_answer_the_envelope(api):
    job = await start_run(api)
    path = f"jobs/{job['id']}/metrics"
    nan = await api("POST", path, body='{"points": [{"key": "loss", "step": 1, "value": NaN}]}', headers={"Content-Type": "application/json"})
    assert nan.status == 400 and nan.error["code"] == "bad_request"
    cases = {
        "negative step": [{"key": "loss", "step": -1, "value": 1.0}],
        "empty key": [{"key": "", "step": 1, "value": 1.0}],
        "long key": [{"key": "k" * 129, "step": 1, "value": 1.0}],
        "comma in key": [{"key": "a,b", "step": 1, "value": 1.0}],
        "string value": [{"key": "loss", "step": 1, "value": "high"}],
        "huge value": [{"key": "loss", "step": 1, "value": 10**400}],
        "float step": [{"key": "loss", "step": 1.5, "value": 1.0}],
        "unknown field": [{"key": "loss", "step": 1, "value": 1.0, "epoch": 3}],
        "too many": [{"key": "l", "step": i, "value": 0.0} for i in range(10_001)],
    }
    for name, points in cases.items():
        reply = await api("POST", path, json_body={"points": points}) if name != "huge value" else await api("POST", path, body='{"points": [{"key": "loss", "step": 1, "value": 1e400}]}', headers={"Content-Type": "application/json"})
        assert reply.status == 422 and reply.error["code"] == "invalid", (name, reply.status, reply.body)
    too_big = await api("POST", path, body=json.dumps({"points": [{"key": "k" * 128, "step": i, "value": 0.5} for i in range(9_000)]}), headers={"Content-Type": "application/json"})
    assert too_big.status == 413 and too_big.error["code"] == "payload_too_large"

    assert (await post_points(api, "job_" + "a" * 25, [{"key": "loss", "step": 1, "value": 1.0}])).status == 404
    assert (await api("GET", "jobs/job_nope/metrics")).status == 404
    for params in ({"max_points": "3"}, {"max_points": "10001"}, {"since_step": "-1"}, {"keys": ","}, {"keys": ",".join(f"k{i}" for i in range(101))}, {"bogus": "1"}):
        reply = await api("GET", path, params=params)
        assert reply.status == 422 and reply.error["code"] == "invalid", (params, reply.body)
    # nothing of the refused batches was stored
    assert await series(api, job["id"]) == {}


async def test_other_users_cannot_read_or_write(api):
    private = await start_run(api)
    shared = await start_run(api, visibility="team", team="vision")
    await post_points(api, private["id"], [{"key": "loss", "step": 0, "value": 1.0}])
    point = [{"key": "loss", "step": 1, "value": 2.0}]
    for user in ("bob", "carol"):
        assert (await post_points(api, private["id"], point, user=user)).status == 404
        assert (await api("GET", f"jobs/{private['id']}/metrics", user=user)).status == 404
        assert (await api("POST", f"jobs/{private['id']}/finish", user=user, json_body={"state": "failed"})).status == 404
    # bob reads the team's run but cannot change it (alice edits team vision, bob does not)
    assert (await api("GET", f"jobs/{shared['id']}/metrics", user="bob")).status == 200
    assert (await post_points(api, shared["id"], point, user="bob")).status == 403
    assert (await api("POST", f"jobs/{shared['id']}/finish", user="bob", json_body={"state": "failed"})).status == 403
    assert (await api("GET", f"jobs/{shared['id']}/metrics", user="carol")).status == 404
    assert (await series(api, private["id"]))["loss"] == [{"step": 0, "value": 1.0, "wall_time": (await series(api, private["id"]))["loss"][0]["wall_time"]}]
    # sharing needs membership
    reply = await api("POST", "jobs/interactive", user="carol", json_body={"name": "x", "visibility": "team", "team": "vision"})
    assert reply.status == 422


async def test_a_job_token_writes_only_its_own_job(api, jp_serverapp):
    # interactive runs stand in for two jobs of alice's: no supervisor will end them meanwhile
    mine, other = Record(await start_run(api)), Record(await start_run(api))
    token, _ = services_of(jp_serverapp).tokens.mint("alice", "job", "job", scopes=("job",), job_id=mine.id)
    headers = {"Authorization": f"Bearer {token}"}
    point = [{"key": "loss", "step": 0, "value": 1.0}]
    reply = await api("POST", f"jobs/{other.id}/metrics", user=None, json_body={"points": point}, headers=headers)
    assert reply.status == 403 and reply.error["code"] == "forbidden", reply.body
    assert (await series(api, other.id)) == {}
    own = await api("POST", f"jobs/{mine.id}/metrics", user=None, json_body={"points": point}, headers=headers)
    assert own.status == 200 and own.body == {"accepted": 1, "canceled": False}, own.body
    assert (await api("GET", f"jobs/{mine.id}/metrics", user=None, headers=headers)).status == 200
    # the job's token reports; it does not start or end runs
    assert (await api("POST", "jobs/interactive", user=None, json_body={"name": "x"}, headers=headers)).status == 403
    assert (await api("POST", f"jobs/{mine.id}/finish", user=None, json_body={"state": "succeeded"}, headers=headers)).status == 403


async def test_finish_and_what_a_finished_run_refuses(api, jp_serverapp):
    job = await start_run(api)
    done = await api("POST", f"jobs/{job['id']}/finish", json_body={"state": "failed", "reason": "ValueError: boom"})
    assert done.status == 200, done.body
    assert (done.body["state"], done.body["exit_reason"]) == ("failed", "ValueError: boom") and done.body["finished_at"]
    late = await post_points(api, job["id"], [{"key": "loss", "step": 9, "value": 1.0}])
    assert late.status == 409 and late.error["details"]["state"] == "failed"
    again = await api("POST", f"jobs/{job['id']}/finish", json_body={"state": "succeeded"})
    assert again.status == 409
    assert (await api("POST", f"jobs/{job['id']}/finish", json_body={"state": "canceled"})).status == 422
    history = await services_of(jp_serverapp).events.history(f"job:{job['id']}")
    assert [(e["type"], e["data"]["state"]) for e in history] == [("status", "running"), ("status", "failed")]
    user_events = await services_of(jp_serverapp).events.history("user:alice")
    assert [e["data"]["state"] for e in user_events if e["data"]["id"] == job["id"]] == ["running", "failed"]

    script = await services_of(jp_serverapp).jobs.submit(principal("alice"), JobSubmit(name="s", kind="script"))
    reply = await api("POST", f"jobs/{script.id}/finish", json_body={"state": "succeeded"})
    assert reply.status == 409 and reply.error["details"]["kind"] == "script"


async def test_cancel_is_reported_to_the_run(api, jp_serverapp):
    job = await start_run(api)
    assert (await post_points(api, job["id"], [])).body == {"accepted": 0, "canceled": False}
    await services_of(jp_serverapp).jobs.cancel(principal("alice"), job["id"])
    refused = await post_points(api, job["id"], [{"key": "loss", "step": 0, "value": 1.0}])
    assert refused.status == 409 and refused.error["details"]["state"] == "canceled"
    assert (await api("GET", f"jobs/{job['id']}")).body["state"] == "canceled"


async def test_silent_runs_are_swept_as_lost(api, jp_serverapp):
    runs = services_of(jp_serverapp).runs
    quiet = await start_run(api)
    finished = await start_run(api)
    await api("POST", f"jobs/{finished['id']}/finish", json_body={"state": "succeeded"})
    runs.idle_timeout = 3600
    assert await runs.sweep() == []
    runs.idle_timeout = 0
    assert await runs.sweep() == [quiet["id"]]
    lost = (await api("GET", f"jobs/{quiet['id']}")).body
    assert lost["state"] == "lost" and "sent nothing" in lost["exit_reason"]
    assert (await api("GET", f"jobs/{finished['id']}")).body["state"] == "succeeded"


async def test_a_progress_key_moves_the_jobs_progress(api, jp_serverapp):
    job = await start_run(api)
    points = [{"key": "progress", "step": 30, "value": 0.3}, {"key": "progress", "step": 10, "value": 0.1}, {"key": "loss", "step": 30, "value": 2.0}]
    assert (await post_points(api, job["id"], points)).status == 200
    assert (await api("GET", f"jobs/{job['id']}")).body["progress"] == 0.3
    # out of range is stored as a metric but is no progress
    assert (await post_points(api, job["id"], [{"key": "progress", "step": 40, "value": 7.0}])).status == 200
    assert (await api("GET", f"jobs/{job['id']}")).body["progress"] == 0.3
    history = await services_of(jp_serverapp).events.history(f"job:{job['id']}")
    assert [e["data"] for e in history if e["type"] == "progress"] == [{"progress": 0.3, "message": ""}]
