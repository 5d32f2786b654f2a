"""Deployments served by real replica processes behind a real server (one per database for the
module): register → deploy → predict equals the model loaded in the kernel; bad input, size,
stopped and unavailable answers; a rolling update under 16 concurrent clients without one
failed request; a replica killed with SIGKILL restarted with its events seen on the WebSocket;
a server killed and restarted re-attaching to its replicas; ownership; logs and /metrics."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.runtime.events import subscribe

from ..conftest import TOKENS, truncate_all
from ..live import LiveServer
from .helpers import deployment, frame, kill_replicas, register_tabular, register_tensor, replica_processes, wait_for, wait_ready

MAX_ROWS = 500


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def srv(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"serving-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'aistudio.db'}"
        shutil.copy(request.getfixturevalue("sqlite_template"), workdir / "aistudio.db")
    else:
        url = request.getfixturevalue("postgres_url")
        truncate_all(url)
    server = LiveServer(workdir / "live", url)
    config_path = server.workdir / "config" / "jupyter_server_config.json"
    config = json.loads(config_path.read_text())
    # short leases and backoffs: a restart re-attaches, a crash restarts, within a test's patience
    config["DeploymentSupervisor"] = {"lease_seconds": 3.0, "backoff_base": 0.2, "health_interval": 0.2, "poll_interval": 0.5, "max_load_failures": 2}
    config["DeploymentService"] = {"max_predict_rows": MAX_ROWS, "max_predict_bytes": 256 * 1024}
    config_path.write_text(json.dumps(config))
    server.start()
    try:
        yield server
        server.stop()
        # a graceful stop leaves no replica behind
        assert wait_for(lambda: not replica_processes(server.workdir), 10, "replicas to exit with the server")
    finally:
        server.stop()
        kill_replicas(server.workdir)


@pytest.fixture(scope="module")
def alice(srv):
    return Client(srv.api(), TOKENS["alice"])


@pytest.fixture(scope="module")
def http(srv):
    with srv.client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def iris(alice):
    """Two versions of a tabular classifier, as ``ais.models.register`` leaves them."""
    register_tabular(alice, "iris", seed=1)
    return register_tabular(alice, "iris", seed=2)  # version 2: the latest


def records(f) -> list[dict]:
    return json.loads(f.to_json(orient="records"))


def deploy(http, name: str, model_id: str, **body) -> dict:
    r = http.post("/deployments", json={"name": name, "model_id": model_id, **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_predict_equals_the_model_loaded_in_the_kernel(srv, http, alice, iris):
    dep = deploy(http, "iris-api", iris.model_id, model_version=1, batching={"max_batch_size": 16, "max_wait_ms": 2})
    assert dep["state"] == "pending" and dep["desired_state"] == "running" and dep["model_version"] == 1
    assert dep["input_schema"] == {"kind": "records", "features": [{"name": n, "dtype": "float64"} for n in "abcd"]}
    ready = wait_ready(http, dep["id"])
    assert ready["replica_status"][0]["pid"] > 0 and ready["replica_status"][0]["model_version"] == 1

    f = frame(60, seed=5)
    f.loc[3, "b"] = None  # missing: imputed with the mean, in the kernel as in the replica
    expected = alice.models.load("iris", 1).predict(f)
    r = http.post(f"/deployments/{dep['id']}/predict", json={"records": records(f)})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected, "model_version": 1, "deployment_id": dep["id"]}
    # concurrent requests are batched together and each gets its own rows back
    results = {}

    def one(i):
        with srv.client("alice") as c:
            results[i] = c.post(f"/deployments/{dep['id']}/predict", json={"records": records(f.iloc[i : i + 3])}).json()["predictions"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(0, 30, 3)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert {i: results.get(i) for i in range(0, 30, 3)} == {i: expected[i : i + 3] for i in range(0, 30, 3)}

    # the replica's log and the metrics on Jupyter's own /metrics (which requires auth)
    logs = http.get(f"/deployments/{dep['id']}/logs", params={"replica": 0, "tail": 5}).json()
    assert any("loaded on cpu" in line for line in logs["lines"]), logs
    assert httpx.get(f"{srv.base}/metrics").status_code in (401, 403)
    text = httpx.get(f"{srv.base}/metrics", headers=srv.auth()).text
    assert f'aistudio_deployment_requests_total{{code="2xx",deployment="{dep["id"]}"}} 11.0' in text
    assert f'aistudio_deployment_request_seconds_count{{deployment="{dep["id"]}"}}' in text


def test_tensor_model_returns_raw_outputs(http, alice):
    version, module = register_tensor(alice, "raw-net", seed=3)
    dep = deploy(http, "raw-api", version.model_id)
    assert dep["model_version"] == 1, "the latest version is pinned at creation"
    assert dep["input_schema"] == {"kind": "tensor", "shape": [None, 4], "dtype": "float32"}
    wait_ready(http, dep["id"])
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    r = http.post(f"/deployments/{dep['id']}/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(r.json()["predictions"]), expected, rtol=1e-5, atol=1e-6)
    bad = http.post(f"/deployments/{dep['id']}/predict", json={"inputs": [[1, 2, 3, 4], [1, 2, 3]]})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "inputs[1]", bad.text
    assert "expected 4 values" in bad.json()["error"]["message"]
    wrong_kind = http.post(f"/deployments/{dep['id']}/predict", json={"records": [{"a": 1}]})
    assert wrong_kind.status_code == 422 and wrong_kind.json()["error"]["details"]["field"] == "inputs"
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_bad_input_size_stopped_and_unavailable(srv, http, alice, iris):
    dep = deploy(http, "iris-errors", iris.model_id)
    assert dep["model_version"] == 2
    wait_ready(http, dep["id"])
    url = f"/deployments/{dep['id']}/predict"
    rows = records(frame(5))
    rows[3]["a"] = "tall"
    bad = http.post(url, json={"records": rows})
    assert bad.status_code == 422 and bad.json()["error"]["message"] == "records[3].a: expected a number", bad.text
    del rows[3]["a"]
    missing = http.post(url, json={"records": rows})
    assert missing.status_code == 422 and missing.json()["error"]["details"]["field"] == "records[3].a"
    for body in ({}, {"records": []}, {"records": {"a": 1}}, {"records": [1]}, {"records": [{}], "inputs": [[1]]}, {"rows": []}):
        r = http.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
    assert http.post(url, content=b"[1,", headers={"Content-Type": "application/json"}).status_code == 400
    # too many rows, and too many bytes
    too_many = http.post(url, json={"records": records(frame(MAX_ROWS + 1))})
    assert too_many.status_code == 413 and too_many.json()["error"]["details"]["limit"] == MAX_ROWS
    too_big = http.post(url, content=b'{"records": [' + b'{"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0},' * 8000 + b"{}]}", headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413
    # stopped: 409, until started again
    stopped = http.post(f"/deployments/{dep['id']}/stop")
    assert stopped.status_code == 202 and stopped.json()["desired_state"] == "stopped"
    assert http.post(url, json={"records": records(frame(2))}).status_code == 409
    wait_for(lambda: deployment(http, dep["id"])["state"] == "stopped", 30, "the deployment to stop")
    assert deployment(http, dep["id"])["replica_status"] == []
    assert http.post(url, json={"records": records(frame(2))}).status_code == 409
    assert http.post(f"/deployments/{dep['id']}/start").status_code == 202
    wait_ready(http, dep["id"])
    assert http.post(url, json={"records": records(frame(2))}).status_code == 200
    # a model with no version to serve: failed; predicting is a conflict a retry cannot fix
    empty = alice.models.create(name="empty")
    hollow = deploy(http, "hollow", empty["id"])
    assert http.post(f"/deployments/{hollow['id']}/predict", json={"records": [{"x": 1}]}).status_code == 409
    failed = wait_for(lambda: (d := deployment(http, hollow["id"]))["state"] == "failed" and d, 30, "the versionless deployment to fail")
    assert "no version" in failed["status_message"]
    for d in (dep, hollow):
        assert http.delete(f"/deployments/{d['id']}").status_code == 204


def test_a_broken_version_fails_after_repeated_load_failures(srv, http, alice):
    # weights that do not fit the spec the version names: every replica dies while loading
    version, _ = register_tensor(alice, "mismatched", seed=0)
    dep = deploy(http, "mismatched-api", version.model_id)
    wait_ready(http, dep["id"])
    import torch.nn as nn

    wrong = alice.models.register(nn.Linear(3, 1), "mismatched", model={"spec": {"input_shape": [4], "layers": [{"type": "linear", "out_features": 9}]}})
    assert http.patch(f"/deployments/{dep['id']}", json={"model_version": wrong.version}).status_code == 200
    failed = wait_for(lambda: (d := deployment(http, dep["id"]))["state"] == "failed" and not d["replica_status"] and d, 60, "the deployment to fail")
    assert "failed to load 2 times" in failed["status_message"], failed
    # the old replica kept serving until then, and was stopped with the rest
    assert not replica_processes(srv.workdir, dep["id"])
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_rolling_update_under_16_clients_fails_no_request(srv, http, alice, iris):
    dep = deploy(http, "iris-rolling", iris.model_id, model_version=1, replicas=2, batching={"max_batch_size": 32, "max_wait_ms": 2})
    wait_ready(http, dep["id"], replicas=2)
    f = frame(8, seed=11)
    body = {"records": records(f)}
    expected = {1: alice.models.load("iris", 1).predict(f), 2: alice.models.load("iris", 2).predict(f)}
    assert expected[1] != expected[2], "the two versions must be told apart"
    stop = threading.Event()
    failures: list = []
    seen: dict[int, int] = {1: 0, 2: 0}
    lock = threading.Lock()

    def client():
        with srv.client("alice", timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.post(f"/deployments/{dep['id']}/predict", json=body)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append((r.status_code, r.text[:300]))
                    continue
                out = r.json()
                if out["predictions"] != expected[out["model_version"]]:
                    failures.append(("wrong predictions", out))
                with lock:
                    seen[out["model_version"]] += 1

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: seen[1] >= 32, 30, "traffic on version 1")
        patched = http.patch(f"/deployments/{dep['id']}", json={"model_version": 2})
        assert patched.status_code == 200 and patched.json()["model_version"] == 2
        wait_ready(http, dep["id"], replicas=2, version=2, timeout=90)
        settled = seen[2]
        wait_for(lambda: seen[2] >= settled + 32, 30, "traffic on version 2 after the update")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
    assert seen[1] > 0 and seen[2] > 0
    # scale down and up again: replicas drained and started, still no failure
    assert http.patch(f"/deployments/{dep['id']}", json={"replicas": 1}).status_code == 200
    wait_ready(http, dep["id"], replicas=1, version=2)
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_sigkilled_replica_restarts_and_events_stream(srv, http, alice, iris):
    dep = deploy(http, "iris-crash", iris.model_id)
    ready = wait_ready(http, dep["id"])
    pid = ready["replica_status"][0]["pid"]
    topic = f"deployment:{dep['id']}"
    with subscribe(topic, since=0, api=alice) as stream:
        history = []
        while not any(e.type == "status" and e.data["state"] == "ready" for e in history):
            history.append(stream.next(timeout=10))
        assert [e.data["state"] for e in history if e.type == "status"][-2:] == ["loading", "ready"]
        import os

        os.kill(pid, signal.SIGKILL)
        after = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ev = stream.next(timeout=30)
            after.append(ev)
            if ev.type == "status" and ev.data["state"] == "ready":
                break
    replica_events = [e.data for e in after if e.type == "replica"]
    assert replica_events[0]["state"] == "crashed" and replica_events[0]["restarts"] == 1 and replica_events[0]["pid"] == pid
    assert "SIGKILL" in replica_events[0]["last_error"]
    assert replica_events[-1]["state"] == "ready" and replica_events[-1]["pid"] != pid and replica_events[-1]["restarts"] == 1
    statuses = [e.data for e in after if e.type == "status"]
    assert statuses[0]["ready_replicas"] == 0 and statuses[-1] == {"state": "ready", "message": "1/1 replicas ready", "ready_replicas": 1, "replicas": 1, "model_version": 2}
    again = deployment(http, dep["id"])
    assert again["replica_status"][0]["restarts"] == 1
    assert http.post(f"/deployments/{dep['id']}/predict", json={"records": records(frame(3))}).status_code == 200
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204
    assert wait_for(lambda: not replica_processes(srv.workdir, dep["id"]), 10, "the replica to go with its deployment")


def test_another_user_cannot_see_predict_or_stop(srv, http, iris):
    dep = deploy(http, "iris-private", iris.model_id)
    with srv.client("bob") as bob:
        assert bob.get(f"/deployments/{dep['id']}").status_code == 404
        assert dep["id"] not in [d["id"] for d in bob.get("/deployments").json()["items"]]
        assert bob.post(f"/deployments/{dep['id']}/predict", json={"records": records(frame(2))}).status_code == 404
        assert bob.post(f"/deployments/{dep['id']}/stop").status_code == 404
        assert bob.post(f"/deployments/{dep['id']}/start").status_code == 404
        assert bob.get(f"/deployments/{dep['id']}/logs").status_code == 404
        assert bob.patch(f"/deployments/{dep['id']}", json={"replicas": 3}).status_code == 404
        assert bob.delete(f"/deployments/{dep['id']}").status_code == 404
    assert deployment(http, dep["id"])["desired_state"] == "running"
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_a_restarted_server_reattaches_to_its_replicas(srv, http, iris):
    dep = deploy(http, "iris-survivor", iris.model_id)
    pid = wait_ready(http, dep["id"])["replica_status"][0]["pid"]
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv._log.close()
    srv.start()
    # the lease expires, the new server takes over the same process
    wait_for(lambda: "re-attached to replica 0 of " + dep["id"] in srv.log_path.read_text(), 30, "the re-attach")
    again = wait_ready(http, dep["id"])
    assert again["replica_status"][0]["pid"] == pid and again["replica_status"][0]["restarts"] == 0
    assert http.post(f"/deployments/{dep['id']}/predict", json={"records": records(frame(3))}).status_code == 200
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_a_replica_dying_mid_request_answers_503_with_retry_after(srv, http, alice):
    from .slow_model import MARK, Slow

    schema = {"input_schema": {"kind": "tensor", "shape": [None, 4], "dtype": "float32"}}
    version = alice.models.register(Slow(), "slow", model={"entry_point": "tests.deployments.slow_model:build"}, preprocessing=schema)
    dep = deploy(http, "slow-api", version.model_id, batching={"max_batch_size": 1, "max_wait_ms": 0})
    pid = wait_ready(http, dep["id"])["replica_status"][0]["pid"]
    url = f"/deployments/{dep['id']}/predict"
    assert http.post(url, json={"inputs": [[1, 2, 3, 4]]}).status_code == 200
    marker = srv.workdir / "data" / "aistudio" / "deployments" / dep["id"] / "in-forward"
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=http.post(url, json={"inputs": [[MARK, 0, 0, 0]]})))
    thread.start()
    wait_for(marker.exists, 30, "the request to reach the model")
    import os

    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    assert not thread.is_alive(), "a replica's death must not leave its request hanging"
    r = answer["r"]
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    assert r.json()["error"]["code"] == "unavailable"
    # it comes back by itself, and serves again
    wait_for(lambda: deployment(http, dep["id"])["replica_status"][0]["pid"] != pid, 30, "the replica to restart")
    back = wait_ready(http, dep["id"])
    assert back["replica_status"][0]["restarts"] == 1
    assert http.post(url, json={"inputs": [[1, 2, 3, 4]]}).status_code == 200
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204


def test_two_servers_on_one_database_never_both_run_a_deployment(srv, http, iris, tmp_path):
    # servers sharing a database share storage too (S3 or one disk): whichever takes the lease
    # must find the weights
    other = LiveServer(tmp_path / "other", srv.database_url, aistudio={"storage_url": (srv.workdir / "storage").as_uri()})
    config_path = other.workdir / "config" / "jupyter_server_config.json"
    config = json.loads(config_path.read_text())
    config["DeploymentSupervisor"] = {"lease_seconds": 3.0, "poll_interval": 0.5, "health_interval": 0.2}
    config_path.write_text(json.dumps(config))
    with other:
        try:
            dep = deploy(http, "iris-shared", iris.model_id, replicas=2)
            wait_ready(http, dep["id"], replicas=2)
            time.sleep(2)  # several polls of both supervisors
            here, there = replica_processes(srv.workdir, dep["id"]), replica_processes(other.workdir, dep["id"])
            assert len(here) + len(there) == 2 and (not here or not there), (here, there)
        finally:
            other.stop()
            kill_replicas(other.workdir)
    # a server that stops gives its deployments back; the one left runs them (or still does)
    wait_for(lambda: len(replica_processes(srv.workdir, dep["id"])) == 2, 30, "the remaining server to run the replicas")
    wait_ready(http, dep["id"], replicas=2)
    assert http.post(f"/deployments/{dep['id']}/predict", json={"records": records(frame(3))}).status_code == 200
    assert http.delete(f"/deployments/{dep['id']}").status_code == 204
