"""Database outages: Jupyter keeps serving, AI Studio answers 503 quickly, then recovers by itself.

PostgreSQL is reached through tests/tcp_proxy.py, which the tests switch off and on (the
machine's PostgreSQL serves other test runs and is never stopped). The live-server tests run
Jupyter in its own process so that it really starts while the database is down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from .conftest import POSTGRES_ADMIN_URL, truncate_all
from .live import LiveServer
from .tcp_proxy import TcpProxy

#: a request during an outage must answer well within this (connect timeout 2 s + slack)
FAST = 6.0
RECOVERY = 15.0
LIVE_CONFIG = {"db_connect_timeout": 2, "db_retry_interval": 0.5}


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


def timed(client: httpx.Client, method: str, path: str, **kw) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kw)
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert elapsed < FAST, f"took {elapsed:.1f}s"
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "database" in error["message"].lower()
    assert int(response.headers["Retry-After"]) >= 1


def wait_until(check: Callable[[], bool], timeout: float = RECOVERY) -> float:
    """Poll ``check`` until it holds; return how long that took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not recovered within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - started


def assert_quiet_log(server: LiveServer) -> None:
    """An outage is logged, not shouted: no traceback, no 500, no line per retry."""
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    assert " 500 " not in log
    warnings = [line for line in log.splitlines() if "database unavailable" in line or "kernel token not registered" in line]
    assert 1 <= len(warnings) <= 6, warnings


@pytest.fixture
def proxy():
    with TcpProxy(make_url(POSTGRES_ADMIN_URL).port or 5432) as proxy:
        yield proxy


@pytest.fixture
def empty_postgres():
    """A brand-new, unmigrated PostgreSQL database, so recovery must migrate it."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"aistudio_outage_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgres_down_at_start_then_up(tmp_path, proxy, empty_postgres):
    proxy.down()
    with LiveServer(tmp_path, through(proxy, empty_postgres), aistudio=LIVE_CONFIG) as server, server.client("bob") as bob:
        status = httpx.get(f"{server.base}/api/status", headers=server.auth(), timeout=FAST)
        assert status.status_code == 200, "Jupyter itself must serve while the database is down"

        for method, path, body in [("GET", "/datasets", None), ("POST", "/datasets", {"name": "early"}), ("GET", "/datasets/ds_missing", None), ("GET", "/me", None)]:
            assert_unavailable(*timed(bob, method, path, json=body))
        # a scoped AI Studio token cannot be checked without the database: 503, not 401
        kernelish = httpx.get(server.api("/datasets"), headers={"Authorization": "Bearer aist_" + "x" * 43}, timeout=FAST)
        assert kernelish.status_code == 503 and kernelish.json()["error"]["code"] == "unavailable"

        health, elapsed = timed(bob, "GET", "/health")
        assert health.status_code == 503 and elapsed < FAST
        assert health.json()["status"] == "degraded" and health.json()["database"]["ok"] is False
        assert int(health.headers["Retry-After"]) >= 1
        assert str(proxy.port) not in health.text, "where the database lives is for the log, not for every user"

        proxy.up()
        took = wait_until(lambda: bob.get("/datasets").status_code == 200)
        created = bob.post("/datasets", json={"name": "after"})
        assert created.status_code == 201, created.text
        assert [d["name"] for d in bob.get("/datasets").json()["items"]] == ["after"]
        assert bob.get("/health").json()["database"]["ok"] is True
        assert server.proc.poll() is None
    engine = create_engine(empty_postgres)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")), "recovery ran the migrations"
    engine.dispose()
    assert_quiet_log(server)
    print(f"recovered {took:.2f}s after the database came back")


def test_postgres_down_mid_run_then_up(tmp_path, proxy, postgres_url):
    truncate_all(postgres_url)
    with LiveServer(tmp_path, through(proxy, postgres_url), aistudio=LIVE_CONFIG) as server, server.client("bob") as bob:
        before = bob.post("/datasets", json={"name": "before"})
        assert before.status_code == 201
        # several requests at once leave several connections in the pool for the outage to kill
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert {r.status_code for r in pool.map(lambda _: bob.get("/datasets"), range(8))} == {200}
        pid = server.proc.pid

        # cut the database while a write's transaction is open and its COMMIT not yet sent on
        frozen = proxy.hold_commit(after=b"INSERT INTO datasets")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            during = pool.submit(timed, bob, "POST", "/datasets", json={"name": "during"})
            assert frozen.wait(10), "the write never reached its COMMIT"
            proxy.down()
            assert_unavailable(*during.result(timeout=FAST * 2))

        for method, path, body in [("GET", "/datasets", None), ("GET", f"/datasets/{before.json()['id']}", None), ("POST", "/datasets", {"name": "refused"}), ("PATCH", f"/datasets/{before.json()['id']}", {"description": "x"})]:
            assert_unavailable(*timed(bob, method, path, json=body))
        health, elapsed = timed(bob, "GET", "/health")
        assert health.status_code == 503 and health.json()["database"]["ok"] is False and elapsed < FAST

        proxy.up()
        took = wait_until(lambda: bob.get("/datasets").status_code == 200)
        names = [d["name"] for d in bob.get("/datasets").json()["items"]]
        assert names == ["before"], "earlier data survives; writes refused during the outage left nothing"
        assert bob.get(f"/datasets/{before.json()['id']}").json()["description"] == ""
        assert bob.post("/datasets", json={"name": "after"}).status_code == 201
        assert server.proc.pid == pid and server.proc.poll() is None
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        audited = conn.scalars(text("SELECT details->>'name' FROM audit_events WHERE action = 'create'")).all()
    engine.dispose()
    assert sorted(audited) == ["after", "before"], "the cut transaction left no audit row either"
    assert_quiet_log(server)
    print(f"recovered {took:.2f}s after the database came back")


# -- in-process: the same contract through the pytest-jupyter server -----------------------


@pytest.fixture
def database_url(request, tmp_path):
    """Overrides conftest's: PostgreSQL through the proxy, or SQLite whose directory cannot be made."""
    if request.param == "postgresql-proxy":
        url = request.getfixturevalue("postgres_url")
        truncate_all(url)
        return through(request.getfixturevalue("proxy"), url)
    # root ignores file permissions, so the outage is a directory that cannot exist: its
    # parent path is a regular file until the test swaps it for a directory
    (tmp_path / "blocked").write_text("not a directory")
    return f"sqlite:///{tmp_path / 'blocked' / 'aistudio.db'}"


@pytest.mark.parametrize("database_url", ["postgresql-proxy"], indirect=True)
async def test_in_process_postgres_outage(api, proxy):
    assert (await api("POST", "datasets", user="bob", json_body={"name": "kept"})).status == 201
    proxy.down()
    for method, path, body in [("GET", "datasets", None), ("POST", "datasets", {"name": "lost"})]:
        started = time.monotonic()
        reply = await api(method, path, user="bob", json_body=body)
        assert reply.status == 503 and reply.error["code"] == "unavailable" and time.monotonic() - started < FAST
        assert int(reply.headers["Retry-After"]) >= 1
    proxy.up()
    deadline = time.monotonic() + RECOVERY
    while (reply := await api("GET", "datasets", user="bob")).status != 200:
        assert reply.status == 503 and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert [d["name"] for d in reply.body["items"]] == ["kept"]


@pytest.mark.parametrize("database_url", ["postgresql-proxy"], indirect=True)
async def test_in_process_admin_shutdown_mid_transaction(api, proxy, postgres_url):
    """PostgreSQL restarting under an open transaction: 503 for it, and the next request just works."""
    assert (await api("POST", "datasets", user="bob", json_body={"name": "kept"})).status == 201
    frozen = proxy.hold_commit(after=b"INSERT INTO datasets")
    during = asyncio.ensure_future(api("POST", "datasets", user="bob", json_body={"name": "during"}))
    assert await asyncio.get_running_loop().run_in_executor(None, frozen.wait, 10), "the write never reached its COMMIT"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # what a fast shutdown does to every session: FATAL 57P01 (psycopg's AdminShutdown)
        killed = conn.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    admin.dispose()
    assert killed >= 1
    reply = await asyncio.wait_for(during, FAST)
    assert reply.status == 503 and reply.error["code"] == "unavailable"
    # the database never went away: once the retry interval (0.2 s here) has passed, the next
    # request reconnects and succeeds, with no restart
    deadline = asyncio.get_running_loop().time() + FAST
    while (reply := await api("GET", "datasets", user="bob")).status == 503 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(float(reply.headers.get("Retry-After", "0.2")) / 10)
    assert reply.status == 200 and [d["name"] for d in reply.body["items"]] == ["kept"]
    assert (await api("POST", "datasets", user="bob", json_body={"name": "after"})).status == 201


@pytest.mark.parametrize("database_url", ["sqlite-unmakeable-dir"], indirect=True)
async def test_in_process_sqlite_unopenable_then_fixed(api, tmp_path):
    reply = await api("GET", "datasets", user="bob")
    assert reply.status == 503 and reply.error["code"] == "unavailable"
    health = await api("GET", "health", user="bob")
    assert health.status == 503 and health.body["database"]["ok"] is False
    (tmp_path / "blocked").unlink()
    (tmp_path / "blocked").mkdir()
    deadline = time.monotonic() + RECOVERY
    while (reply := await api("POST", "datasets", user="bob", json_body={"name": "late"})).status != 201:
        assert reply.status == 503 and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await api("GET", "health", user="bob")).body["database"]["ok"] is True
    assert (tmp_path / "blocked" / "aistudio.db").is_file()
