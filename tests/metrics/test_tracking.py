"""``ais.track`` and ``Run`` against a real server: a separate Python process logging 5,000
points, context-manager outcomes, cancellation seen on the next flush, attaching to an
existing job, the bounded queue, and a server that drops off the network and comes back."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

import aistudio_jupyter as ais
from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.runtime.tracking import Run
from tests.handlers.test_isolation import principal
from tests.live import REPO
from tests.runtime import in_thread
from tests.tcp_proxy import TcpProxy

SCRIPT = """
import aistudio_jupyter as ais
with ais.track("from-a-process", config={"lr": 0.01, "layers": [64, 64], "eps": float("nan")}) as run:
    for i in range(2500):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 2500}, step=i)
print(run.id, run.dropped, run.skipped, run.job.state)
"""

#: no ``with``, no finish(): the exit hook sends what is queued and ends the run
SCRIPT_NO_FINISH = """
import aistudio_jupyter as ais
run = ais.track("left-open")
for i in range(300):
    run.log({"loss": float(i)})
print(run.id)
"""

SCRIPT_RAISES = """
import aistudio_jupyter as ais
with ais.track("raises") as run:
    run.log({"loss": 1.0}, step=0)
    print(run.id, flush=True)
    raise ValueError("boom")
"""


@pytest.fixture
def server(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


@pytest.fixture
def connect(server):
    """``connect(user)`` → a Client with a scoped token, over real HTTP."""
    opened: list[Client] = []

    def make(user: str = "alice", url: str | None = None) -> Client:
        opened.append(Client(url=url or server.kernel_api_url(), token=server.services.tokens.mint(user, "tracking-test", "personal")[0]))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


async def run_process(server, script: str, **env_vars: str) -> tuple[int, str, str]:
    """Run ``script`` in a fresh Python process that finds the server as a kernel does."""
    token = server.services.tokens.mint("alice", "tracking-process", "personal")[0]
    env = {**os.environ, "AISTUDIO_URL": server.kernel_api_url(), "AISTUDIO_TOKEN": token, "PYTHONPATH": str(REPO), **env_vars}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


async def all_points(api, job_id: str) -> dict:
    reply = await api("GET", f"jobs/{job_id}/metrics", params={"max_points": "10000"})
    assert reply.status == 200, reply.body
    return reply.body["series"]


async def test_a_process_logs_5000_points_and_all_arrive(api, server):
    code, out, err = await run_process(server, SCRIPT)
    assert code == 0, err
    job_id, dropped, skipped, state = out.split()
    assert (dropped, skipped, state) == ("0", "0", "succeeded")
    got = await all_points(api, job_id)
    assert [(p["step"], p["value"]) for p in got["loss"]] == [(i, 1.0 / (i + 1)) for i in range(2500)]
    assert [(p["step"], p["value"]) for p in got["acc"]] == [(i, i / 2500) for i in range(2500)]
    job = (await api("GET", f"jobs/{job_id}")).body
    assert job["kind"] == "interactive" and job["spec"]["config"] == {"lr": 0.01, "layers": [64, 64], "eps": "nan"}
    # batched: a few POSTs of at most 1,000 points, not one per log()
    batches = [e for e in await server.services.events.history(f"job:{job_id}", limit=10_000) if e["type"] == "metrics"]
    assert sum(len(e["data"]["points"]) for e in batches) == 5000
    assert all(len(e["data"]["points"]) <= 1000 for e in batches) and len(batches) <= 100


async def test_exit_without_finish_and_exceptions_in_processes(api, server):
    code, out, err = await run_process(server, SCRIPT_NO_FINISH)
    assert code == 0, err
    job = (await api("GET", f"jobs/{out.strip()}")).body
    assert job["state"] == "succeeded" and "exited without finishing" in job["exit_reason"]
    assert [p["step"] for p in (await all_points(api, job["id"]))["loss"]] == list(range(300))

    code, out, err = await run_process(server, SCRIPT_RAISES)
    assert code == 1 and "ValueError: boom" in err
    job = (await api("GET", f"jobs/{out.split()[0]}")).body
    assert (job["state"], job["exit_reason"]) == ("failed", "ValueError: boom")


async def test_context_manager_outcomes(api, connect):
    def scenario():
        client = connect()
        with pytest.raises(KeyboardInterrupt):
            with ais.track("interrupted", client=client) as run:
                run.log({"loss": 1.0})
                raise KeyboardInterrupt
        interrupted = run
        with pytest.raises(RuntimeError):
            with ais.track("crashed", client=client) as run:
                raise RuntimeError("out of patience")
        crashed = run
        with ais.track("fine", config={"seed": 1}, client=client) as run:
            run.log({"loss": 2.0, "nan": float("nan")})
            run.log({"loss": 1.0})
        with pytest.raises(RuntimeError, match="finished"):
            run.log({"loss": 0.5})
        bad = ais.track("bad-key", client=client)
        with pytest.raises(ValueError):
            bad.log({"a,b": 1.0})
        bad.finish("failed", "bad key")
        return interrupted, crashed, run

    interrupted, crashed, fine = await in_thread(scenario)
    assert (interrupted.job.state, interrupted.job.exit_reason) == ("failed", "interrupted")
    assert (crashed.job.state, crashed.job.exit_reason) == ("failed", "RuntimeError: out of patience")
    assert (fine.job.state, fine.skipped) == ("succeeded", 1)
    assert [(p["step"], p["value"]) for p in (await all_points(api, fine.id))["loss"]] == [(0, 2.0), (1, 1.0)]


async def test_cancel_is_seen_after_the_next_flush(api, server, connect):
    client = connect()
    run = await in_thread(lambda: ais.track("to-cancel", client=client))
    await in_thread(lambda: (run.log({"loss": 1.0}), run.flush()))
    assert not run.canceled
    await server.services.jobs.cancel(principal("alice"), run.id)

    def keep_training():
        step = 1
        while not run.canceled:
            run.log({"loss": 1.0 / step})
            assert run.flush(10)
            step += 1
            assert step < 20, "the run never heard of its cancellation"
        run.finish()  # as leaving the with block would: the job stays canceled

    await in_thread(keep_training)
    assert run.job.state == "canceled"
    assert [p["step"] for p in (await all_points(api, run.id))["loss"]] == [0]


async def test_attaching_never_finishes_the_job(api, server, connect, monkeypatch):
    created = await api("POST", "jobs/interactive", json_body={"name": "host"})
    job_id = created.body["id"]
    monkeypatch.setenv("AISTUDIO_JOB_ID", job_id)

    def scenario():
        client = connect()
        for attach in (lambda: Run.current(client), lambda: Run.for_job(job_id, client)):
            with attach() as run:
                run.log({"acc": 0.5}, step=10)
        monkeypatch.delenv("AISTUDIO_JOB_ID")
        with pytest.raises(RuntimeError, match="AISTUDIO_JOB_ID"):
            Run.current(client)

    await in_thread(scenario)
    assert (await api("GET", f"jobs/{job_id}")).body["state"] == "running"
    assert [p["step"] for p in (await all_points(api, job_id))["acc"]] == [10, 10]
    await api("POST", f"jobs/{job_id}/finish", json_body={"state": "succeeded"})


SCRIPT_ATTACHED = """
import aistudio_jupyter as ais
with ais.Run.current() as run:
    for i in range(100):
        run.log({"acc": i / 100}, step=i)
print(run.id, run.dropped)
"""


async def test_a_job_process_attaches_with_its_job_token(api, server):
    # an interactive run stands in for the job: no supervisor ends it behind the test's back
    job_id = (await api("POST", "jobs/interactive", json_body={"name": "as-a-job"})).body["id"]
    token = server.services.tokens.mint("alice", "job", "job", scopes=("job",), job_id=job_id)[0]
    code, out, err = await run_process(server, SCRIPT_ATTACHED, AISTUDIO_TOKEN=token, AISTUDIO_JOB_ID=job_id)
    assert code == 0, err
    assert out.split() == [job_id, "0"]
    assert [p["step"] for p in (await all_points(api, job_id))["acc"]] == list(range(100))
    assert (await api("GET", f"jobs/{job_id}")).body["state"] == "running"
    await api("POST", f"jobs/{job_id}/finish", json_body={"state": "succeeded"})


async def test_a_full_queue_drops_the_oldest_and_counts_them(api, connect):
    def scenario():
        # the sender sleeps for a minute, so the queue fills deterministically
        run = ais.track("small-queue", client=connect(), queue_limit=100, flush_interval=60, batch_size=1000)
        started = time.perf_counter()
        for i in range(150):
            run.log({"x": float(i)}, step=i)
        took = time.perf_counter() - started
        assert run.dropped == 50
        run.finish()
        return run, took

    run, took = await in_thread(scenario)
    assert took < 0.05
    assert [p["step"] for p in (await all_points(api, run.id))["x"]] == list(range(50, 150))


async def test_points_survive_the_server_dropping_off_the_network(api, server, connect):
    proxy = TcpProxy(server.serverapp.port)
    try:
        url = server.kernel_api_url().replace(f":{server.serverapp.port}", f":{proxy.port}")
        client = connect(url=url)
        run = await in_thread(lambda: ais.track("flaky", client=client, flush_interval=0.05))
        proxy.down()

        def log_while_down():
            for i in range(500):
                run.log({"loss": float(i)}, step=i)
            assert not run.flush(0.5)  # nothing can be sent now; nothing is lost either

        await in_thread(log_while_down)
        proxy.up()
        assert await in_thread(run.flush, 30)
        await in_thread(run.finish)
    finally:
        proxy.close()
    assert (run.dropped, run.job.state) == (0, "succeeded")
    assert [p["step"] for p in (await all_points(api, run.id))["loss"]] == list(range(500))
