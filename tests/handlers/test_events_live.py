"""Events across server processes (DESIGN §7): two real servers on one PostgreSQL database, a
run published through one and followed with ``ais.events`` on the other, including events
published while the follower's server had lost its database (NOTIFY is lost then; the
listener re-reads on reconnection)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from aistudio_jupyter.runtime.client import APIError, Client
from aistudio_jupyter.runtime.events import subscribe

from ..conftest import POSTGRES_ADMIN_URL, TOKENS, truncate_all
from ..live import LiveServer
from ..tcp_proxy import TcpProxy


@contextlib.contextmanager
def started(*servers: LiveServer):
    """Start servers side by side (each takes seconds to boot)."""
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(LiveServer.start, servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


def take(stream, n: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    return [stream.next(timeout=max(0.1, deadline - time.monotonic())) for _ in range(n)]


def post_points(http, job: str, start: int, n: int = 10) -> None:
    reply = http.post(f"/jobs/{job}/metrics", json={"points": [{"key": "loss", "step": s, "value": 1.0 / (s + 1)} for s in range(start, start + n)]})
    assert reply.status_code == 200, reply.text


@pytest.mark.timeout(180)
def test_published_in_one_server_seen_in_another_even_across_an_outage(tmp_path, postgres_url):
    truncate_all(postgres_url)
    with TcpProxy(make_url(POSTGRES_ADMIN_URL).port or 5432) as proxy:
        behind_proxy = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
        # B waits 2 s between database probes: right after the outage its replays first get 503s
        a, b = LiveServer(tmp_path / "a", postgres_url), LiveServer(tmp_path / "b", behind_proxy, aistudio={"db_retry_interval": 2.0})
        with (
            started(a, b),
            a.client("alice") as alice_a,
            Client(b.api(), TOKENS["alice"]) as alice_b,
        ):
            sidebar = subscribe("user:alice", api=alice_b)
            created = alice_a.post("/jobs/interactive", json={"name": "two-servers", "config": {"lr": 0.1}})
            assert created.status_code == 201, created.text
            job = created.json()["id"]
            (listed,) = take(sidebar, 1)
            assert (listed.type, listed.data["id"], listed.data["state"]) == ("job", job, "running")

            stream = subscribe(f"job:{job}", since=0, api=alice_b)
            (running,) = take(stream, 1)
            assert (running.type, running.data["state"]) == ("status", "running")
            for start in range(0, 50, 10):
                post_points(alice_a, job, start)
            got = take(stream, 5)
            assert [e.seq for e in got] == list(range(running.seq + 1, running.seq + 6))
            assert [p["step"] for e in got for p in e.data["points"]] == list(range(50))

            # B loses the database: its LISTEN connection dies and NOTIFYs sent meanwhile are lost
            proxy.down()
            assert alice_b.http.get("/datasets").status_code == 503
            post_points(alice_a, job, 50)
            assert alice_a.post(f"/jobs/{job}/finish", json={"state": "succeeded"}).status_code == 200
            proxy.up()
            # on reconnection B re-reads what its subscribers missed: nothing skipped, in order
            missed = take(stream, 2)
            assert [e.seq for e in missed] == [running.seq + 6, running.seq + 7]
            assert [p["step"] for p in missed[0].data["points"]] == list(range(50, 60))
            assert (missed[1].type, missed[1].data["state"]) == ("status", "succeeded")
            (finished,) = take(sidebar, 1)
            assert finished.data["state"] == "succeeded"

            # a reader in B may not follow what it cannot read in A
            with Client(b.api(), TOKENS["bob"]) as bob_b, pytest.raises(APIError) as refused:
                subscribe(f"job:{job}", since=0, api=bob_b)
            assert refused.value.code == "not_found"
            stream.close()
            sidebar.close()
        log = (tmp_path / "b" / "server.log").read_text(errors="replace")
        assert "LISTEN connection lost" in log and "LISTEN connection is back" in log
        assert "Traceback" not in log
