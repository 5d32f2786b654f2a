"""Script jobs end to end on a real server with real job processes: success with logs,
failure with its reason, cancel (SIGTERM, then SIGKILL after the grace), a process killed
from outside, GPU assignment, concurrency limits, notebook jobs and isolation between users."""

from __future__ import annotations

import os
import signal

import pytest

from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.runtime.events import EventStream
from tests.conftest import TOKENS

from .helpers import job, job_server, log_text, pid_file, read_pid, submit, wait_for, wait_state, write


@pytest.fixture(scope="module")
def srv(tmp_path_factory, sqlite_template):
    import shutil

    workdir = tmp_path_factory.mktemp("jobs")
    db = workdir / "aistudio.db"
    shutil.copy(sqlite_template, db)
    server = job_server(workdir, f"sqlite:///{db}", supervisor={"gpus": [0, 1]}, aistudio={"tiers": {"small": {"concurrent_jobs": 1, "tier_concurrent_jobs": 1}}, "user_tiers": {"carol": "small", "bob": "small"}})
    with server:
        yield server


def test_script_job_succeeds_with_its_logs_and_env(srv):
    write(srv, "hello.py", """
        import json, os, sys
        print("hello", sys.argv[1:])
        print("to stderr", file=sys.stderr)
        print(json.dumps({k: os.environ.get(k) for k in ("AISTUDIO_JOB_ID", "CUDA_VISIBLE_DEVICES")}))
        spec = json.load(open(os.environ["AISTUDIO_JOB_SPEC"]))
        print("spec", spec["args"], os.getcwd().endswith("work"))
    """)
    with srv.client("alice") as alice:
        created = submit(alice, {"path": "hello.py", "args": ["a b", "$(rm -rf /)"]})
        assert created["state"] == "queued" and created["owner"] == "alice"
        done = wait_state(alice, created["id"], ("succeeded", "failed"))
        assert done["state"] == "succeeded", done
        assert done["exit_code"] == 0 and done["exit_reason"] is None and done["started_at"] and done["finished_at"]
        out = log_text(alice, created["id"])
        assert "hello ['a b', '$(rm -rf /)']" in out
        assert f'"AISTUDIO_JOB_ID": "{created["id"]}", "CUDA_VISIBLE_DEVICES": ""' in out
        assert "spec ['a b', '$(rm -rf /)'] True" in out
        assert log_text(alice, created["id"], "stderr") == "to stderr\n"
        page = alice.get(f"/jobs/{created['id']}/logs", params={"offset": 3, "limit": 4}).json()
        assert page["text"] == "lo [" and page["next_offset"] == 7 and page["complete"] is False
        # the same story on the events WebSocket: each state once, in order, and the log lines
        statuses, logs = [], {"stdout": "", "stderr": ""}
        with EventStream(Client(srv.api(), TOKENS["alice"]), [f"job:{created['id']}"], since=0) as stream:
            while not statuses or statuses[-1] != "succeeded" or logs["stdout"] != out:
                event = stream.next(timeout=10)
                if event["type"] == "status":
                    statuses.append(event["data"]["state"])
                elif event["type"] == "log":
                    logs[event["data"]["stream"]] += event["data"]["text"]
        assert statuses == ["queued", "starting", "running", "succeeded"] and logs["stderr"] == "to stderr\n"


def test_failing_script_fails_with_its_exit_code(srv):
    write(srv, "fail.py", "import sys\nprint('bad input')\nsys.exit(3)\n")
    with srv.client("alice") as alice:
        j = submit(alice, {"path": "fail.py"})
        done = wait_state(alice, j["id"], ("succeeded", "failed"))
        assert (done["state"], done["exit_code"], done["exit_reason"]) == ("failed", 3, "exit code 3")
        r = alice.post(f"/jobs/{j['id']}/cancel")
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_cancel_sends_sigterm_then_sigkill_after_the_grace(srv):
    write(srv, "stubborn.py", """
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: print("got SIGTERM, ignoring it", flush=True))
        open(sys.argv[1], "w").write(str(os.getpid()))
        while True:
            time.sleep(0.05)
    """)
    write(srv, "polite.py", """
        import os, signal, sys, time
        def stop(*a):
            print("stopping cleanly", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        open(sys.argv[1], "w").write(str(os.getpid()))
        while True:
            time.sleep(0.05)
    """)
    with srv.client("alice") as alice:
        stubborn = submit(alice, {"path": "stubborn.py", "args": [pid_file(srv, "stubborn.pid")]})
        polite = submit(alice, {"path": "polite.py", "args": [pid_file(srv, "polite.pid")]})
        read_pid(srv, "stubborn.pid"), read_pid(srv, "polite.pid")
        for j in (stubborn, polite):
            r = alice.post(f"/jobs/{j['id']}/cancel")
            assert r.status_code == 202, r.text
            assert r.json()["cancel_requested_at"]
        done = wait_state(alice, polite["id"], ("canceled", "failed", "succeeded"), timeout=5)
        assert done["state"] == "canceled" and done["exit_code"] == 0 and done["exit_reason"] == "canceled"
        assert "stopping cleanly" in log_text(alice, polite["id"])
        done = wait_state(alice, stubborn["id"], ("canceled", "failed", "succeeded"), timeout=6)
        assert done["state"] == "canceled" and "SIGKILL after 1 s grace" in done["exit_reason"]
        assert "got SIGTERM, ignoring it" in log_text(alice, stubborn["id"])


def test_a_job_killed_from_outside_fails_with_the_signal(srv):
    write(srv, "victim.py", """
        import os, sys, time
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    with srv.client("alice") as alice:
        j = submit(alice, {"path": "victim.py", "args": [pid_file(srv, "victim.pid")]})
        os.kill(read_pid(srv, "victim.pid"), signal.SIGKILL)
        done = wait_state(alice, j["id"], ("failed", "succeeded", "lost"), timeout=5)
        assert (done["state"], done["exit_reason"]) == ("failed", "killed by SIGKILL")


HOLD = """
    import os, sys, time
    print("gpus=" + os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
"""


def test_gpus_are_assigned_exclusively_and_a_third_job_waits(srv):
    write(srv, "hold.py", HOLD)
    release = pid_file(srv, "release-gpus")
    with srv.client("alice") as alice:
        jobs = [submit(alice, {"path": "hold.py", "args": [release]}, resources={"gpus": 1}) for _ in range(3)]
        first, second = (wait_state(alice, j["id"], "running") for j in jobs[:2])
        assert sorted(first["gpu_ids"] + second["gpu_ids"]) == [0, 1]
        wait_for(lambda: all("gpus=" in log_text(alice, j["id"]) for j in jobs[:2]), what="both jobs printing their GPUs")
        assert {log_text(alice, j["id"]).strip() for j in jobs[:2]} == {"gpus=0", "gpus=1"}
        # a CPU job is not held up by the GPU queue
        cpu = submit(alice, {"path": "hello.py"} if (srv.workdir / "root" / "hello.py").exists() else {"path": "fail.py"})
        wait_state(alice, cpu["id"], ("succeeded", "failed"))
        assert job(alice, jobs[2]["id"])["state"] == "queued"
        open(release, "w").close()
        third = wait_state(alice, jobs[2]["id"], "succeeded")
        assert len(third["gpu_ids"]) == 1
        for j in jobs[:2]:
            assert wait_state(alice, j["id"], "succeeded")
        assert alice.get("/me").json()["usage"]["gpu_seconds"] > 0
        too_many = alice.post("/jobs", json={"kind": "script", "spec": {"path": "hold.py"}, "resources": {"gpus": 2}})
        assert too_many.status_code == 422 and "per job" in too_many.json()["error"]["message"]


def test_user_and_tier_concurrency_limits_keep_jobs_queued(srv):
    write(srv, "hold.py", HOLD)
    release = pid_file(srv, "release-carol")
    with srv.client("carol") as carol, srv.client("bob") as bob, srv.client("alice") as alice:
        one, two = (submit(carol, {"path": "hold.py", "args": [release]}) for _ in range(2))
        wait_state(carol, one["id"], "running")
        # bob runs nothing, but his tier ('small': one job at a time across its users) is full
        bobs = submit(bob, {"path": "hold.py", "args": [release]})
        # alice is not limited by their tier
        other = submit(alice, {"path": "fail.py"})
        wait_state(alice, other["id"], "failed")
        assert job(carol, two["id"])["state"] == "queued" and job(bob, bobs["id"])["state"] == "queued"
        open(release, "w").close()
        for client, j in ((carol, one), (carol, two), (bob, bobs)):
            wait_state(client, j["id"], "succeeded")


NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [], "source": "payload = 'default'\nn = 1\nout = None\nnested = {}\n"},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "import json\njson.dump({'payload': payload, 'type': type(payload).__name__, 'n': n, 'nested': nested}, open(out, 'w'))\nprint('wrote', out)\n",
        },
    ],
}


def test_notebook_job_gets_parameters_as_data(srv):
    import json

    nb_out, pwned = pid_file(srv, "nb.json"), pid_file(srv, "pwned")
    write(srv, "nbs/params.ipynb", json.dumps(NOTEBOOK))
    failing = json.loads(json.dumps(NOTEBOOK))
    failing["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "raise ValueError('boom from cell 3')"})
    write(srv, "nbs/failing.ipynb", json.dumps(failing))
    code = f"__import__('pathlib').Path({pwned!r}).touch()"
    with srv.client("alice") as alice:
        ok = submit(alice, {"path": "nbs/params.ipynb", "parameters": {"payload": code, "n": 3, "out": nb_out, "nested": {"a": [1, 2.5, None], "q": "\"'\\\n"}}}, kind="notebook")
        bad = submit(alice, {"path": "nbs/failing.ipynb", "parameters": {"out": pid_file(srv, "nb2.json")}}, kind="notebook")
        done = wait_state(alice, ok["id"], ("succeeded", "failed"), timeout=60)
        assert done["state"] == "succeeded", log_text(alice, ok["id"], "stderr")
        assert json.loads(open(nb_out).read()) == {"payload": code, "type": "str", "n": 3, "nested": {"a": [1, 2.5, None], "q": "\"'\\\n"}}
        assert not os.path.exists(pwned)
        failed = wait_state(alice, bad["id"], ("succeeded", "failed"), timeout=60)
        assert (failed["state"], failed["exit_reason"]) == ("failed", "exit code 1")
        assert "boom from cell 3" in log_text(alice, bad["id"], "stderr")
        refused = alice.post("/jobs", json={"kind": "notebook", "spec": {"path": "nbs/params.ipynb", "parameters": {"os.system('x')": 1}}})
        assert refused.status_code == 422


def test_paths_stay_inside_the_root(srv):
    outside = srv.workdir / "outside.py"
    outside.write_text("print('outside')\n")
    os.symlink(outside, srv.workdir / "root" / "link.py")
    with srv.client("alice") as alice:
        for spec in ({"path": "../outside.py"}, {"path": "/etc/passwd.py"}, {"path": "link.py"}, {"path": "missing.py"}, {"module": "os; rm"}, {"path": "a.py", "module": "m"}, {}):
            r = alice.post("/jobs", json={"kind": "script", "spec": spec})
            assert r.status_code == 422, (spec, r.text)


def test_other_users_cannot_see_cancel_or_read_a_private_job(srv):
    write(srv, "hold.py", HOLD)
    release = pid_file(srv, "release-private")
    with srv.client("alice") as alice, srv.client("bob") as bob:
        private = submit(alice, {"path": "hold.py", "args": [release]})
        shared = submit(bob, {"path": "hold.py", "args": [release]}, visibility="team", team="vision")
        wait_state(alice, private["id"], "running")
        for method, path in (("GET", ""), ("POST", "/cancel"), ("GET", "/logs")):
            r = bob.request(method, f"/jobs/{private['id']}{path}")
            assert r.status_code == 404, (method, path, r.text)
        assert private["id"] not in {j["id"] for j in bob.get("/jobs").json()["items"]}
        # alice edits team vision: she may cancel bob's team job; carol may not even see it
        with srv.client("carol") as carol:
            assert carol.post(f"/jobs/{shared['id']}/cancel").status_code == 404
        assert alice.post(f"/jobs/{shared['id']}/cancel").status_code == 202
        assert wait_state(bob, shared["id"], "canceled")
        open(release, "w").close()
        wait_state(alice, private["id"], "succeeded")


def test_a_job_token_reads_but_cannot_mutate(srv):
    write(srv, "probe_token.py", """
        import os, httpx
        h = {"Authorization": "Bearer " + os.environ["AISTUDIO_TOKEN"]}
        url = os.environ["AISTUDIO_URL"]
        me = os.environ["AISTUDIO_JOB_ID"]
        print("get", httpx.get(f"{url}/jobs/{me}", headers=h).status_code)
        print("submit", httpx.post(f"{url}/jobs", headers=h, json={"kind": "script", "spec": {"path": "probe_token.py"}}).status_code)
        print("cancel", httpx.post(f"{url}/jobs/{me}/cancel", headers=h).status_code)
        print("dataset", httpx.post(f"{url}/datasets", headers=h, json={"name": "x"}).status_code)
    """)
    with srv.client("alice") as alice:
        j = submit(alice, {"path": "probe_token.py"})
        wait_state(alice, j["id"], "succeeded")
        assert log_text(alice, j["id"]).split("\n") == ["get 200", "submit 403", "cancel 403", "dataset 403", ""]
        assert len(alice.get("/jobs", params={"limit": 500}).json()["items"]) == len({x["id"] for x in alice.get("/jobs", params={"limit": 500}).json()["items"]})


def test_a_job_over_its_memory_limit_is_killed_with_a_reason(srv):
    write(srv, "hog.py", """
        import time
        print("allocating", flush=True)
        blocks = []
        for _ in range(40):
            blocks.append(bytearray(16 * 1024 * 1024))  # 16 MiB, touched: zero-filled
            time.sleep(0.05)
        print("survived", flush=True)
    """)
    with srv.client("alice") as alice:
        j = submit(alice, {"path": "hog.py"}, resources={"memory_mb": 128})
        done = wait_state(alice, j["id"], ("succeeded", "failed"), timeout=30)
        assert done["state"] == "failed", done
        assert done["exit_reason"].startswith("out of memory: used ") and "over its 128 MiB limit" in done["exit_reason"], done["exit_reason"]
        assert "survived" not in log_text(alice, j["id"])
        # the same script within its limit runs to the end
        ok = submit(alice, {"path": "hog.py"}, resources={"memory_mb": 2048})
        assert wait_state(alice, ok["id"], ("succeeded", "failed"), timeout=30)["state"] == "succeeded"
