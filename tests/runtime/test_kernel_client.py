"""Kernels know their server: a real kernel started through the server's REST API uses the
Python client with the URL and scoped token the extension handed it, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time

import httpx
import pytest
from jupyter_client import BlockingKernelClient
from sqlalchemy import select

from aistudio_jupyter.store.orm import ApiToken
from aistudio_jupyter.store.session import Database
from tests.conftest import TOKENS
from tests.live import LiveServer, free_port

#: what the kernel reports: its view of AI Studio, and its whole environment
REPORT = """
import json, os
import aistudio_jupyter as ais
print(json.dumps({
    "datasets": [d.name for d in ais.datasets.list(sort="name")],
    "me": ais.me().username,
    "env": dict(os.environ),
}))
"""

AFTER_REVOCATION = """
try:
    ais.datasets.list()
    print(json.dumps({"status": None}))
except ais.APIError as err:
    print(json.dumps({"status": err.status, "code": err.code, "message": err.message}))
"""


async def kernel_token_registered(app, timeout: float = 30) -> str:
    """The id of the kernels' token, once the start-up thread has stored its hash."""
    deadline = time.monotonic() + timeout
    while app.kernel_token_id is None:
        assert time.monotonic() < deadline, "the kernel token was never registered"
        await asyncio.sleep(0.05)
    return app.kernel_token_id


@contextlib.asynccontextmanager
async def started_kernel(serverapp, jp_fetch):
    """A python3 kernel started over ``POST /api/kernels``, shut down over ``DELETE``."""
    reply = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel_id = json.loads(reply.body)["id"]
    kc = serverapp.kernel_manager.get_kernel(kernel_id).client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def run(kc, code: str) -> dict:
    """Execute ``code``; the test server answers the kernel's HTTP calls while this awaits."""
    stdout: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            stdout.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, output_hook=hook, timeout=60)
    content = reply["content"]
    assert content["status"] == "ok", "\n".join(content.get("traceback", [])) or content
    return json.loads("".join(stdout))


def token_rows(database_url: str) -> list[dict]:
    db = Database(database_url)
    try:
        return db.call(lambda s: [{c.name: getattr(row, c.name) for c in ApiToken.__table__.columns} for row in s.scalars(select(ApiToken))])
    finally:
        db.close()


async def test_a_kernel_lists_its_owners_datasets_and_holds_only_a_scoped_token(monkeypatch, jp_serverapp, jp_fetch, api, database_url):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    for name in ("wine", "iris"):
        assert (await api("POST", "datasets", json_body={"name": name})).status == 201
    assert (await api("POST", "datasets", user="bob", json_body={"name": "bobs-secret"})).status == 201
    app = jp_serverapp.web_app.settings["aistudio"]
    token_id = await kernel_token_registered(app)

    async with started_kernel(jp_serverapp, jp_fetch) as kc:
        seen = await run(kc, REPORT)
        assert seen["datasets"] == ["iris", "wine"]
        assert seen["me"] == "alice"  # the server's owner (c.AIStudio.owner)
        env = seen["env"]
        assert env["AISTUDIO_URL"] == f"http://127.0.0.1:{jp_serverapp.port}/a%40b/aistudio/api"
        token = env["AISTUDIO_TOKEN"]
        assert token.startswith("aist_") and len(token) > 40
        # no Jupyter credential and no database URL reach the kernel
        secrets = [jp_serverapp.identity_provider.token, *TOKENS.values(), database_url]
        assert not [k for k, v in env.items() for s in secrets if s in v]

        rows = token_rows(database_url)
        assert not [r for r in rows if token in repr(r)], "the kernel token is stored in plaintext"
        mine = [r for r in rows if r["token_hash"] == hashlib.sha256(token.encode()).hexdigest()]
        assert [(r["id"], r["owner"], r["kind"], r["revoked_at"]) for r in mine] == [(token_id, "alice", "kernel", None)]

        app.services.tokens.revoke(token_id)  # clears the look-up cache too
        refused = await run(kc, AFTER_REVOCATION)
        assert refused["status"] == 403 and refused["code"] == "unauthenticated"
        assert "revoked" in refused["message"]


@pytest.fixture
def hub_user(monkeypatch):
    """A JupyterHub single-user server: the hub names the user in the server's environment."""
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    return "bob"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("jp_base_url", ["/user/bob/"])
async def test_under_jupyterhub_kernels_act_as_the_hub_user(hub_user, jp_serverapp, jp_fetch, api, database_url):
    assert (await api("POST", "datasets", user="bob", json_body={"name": "bob-data"})).status == 201
    assert (await api("POST", "datasets", json_body={"name": "alice-data"})).status == 201
    await kernel_token_registered(jp_serverapp.web_app.settings["aistudio"])

    async with started_kernel(jp_serverapp, jp_fetch) as kc:
        seen = await run(kc, REPORT)
    assert seen["me"] == "bob" and seen["datasets"] == ["bob-data"]
    assert seen["env"]["AISTUDIO_URL"].endswith("/user/bob/aistudio/api")
    assert [r["owner"] for r in token_rows(database_url) if r["kind"] == "kernel" and r["revoked_at"] is None] == ["bob"]


def next_port_also_free() -> int:
    """A free port whose successor is free too."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise AssertionError("no two adjacent free ports on 127.0.0.1")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kernels_reach_the_port_the_server_moved_to(tmp_path, database_url):
    """A second ``jupyter lab`` finds its port taken and moves on; its kernels must follow it."""
    taken = next_port_also_free()
    moved = taken + 1  # Jupyter tries the next port first
    server = LiveServer(tmp_path, database_url, server={"port": taken, "port_retries": 1})
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.port, server.base = moved, f"http://127.0.0.1:{moved}"
        with server:
            kernel = httpx.post(server.base + "/api/kernels", headers=server.auth("alice"), json={"name": "python3"}).json()
            kc = BlockingKernelClient(connection_file=str(tmp_path / "runtime" / f"kernel-{kernel['id']}.json"))
            kc.load_connection_file()
            # no heartbeat: a client without a kernel manager calls a slow first beat "died"
            kc.start_channels(hb=False)
            try:
                kc.wait_for_ready(timeout=60)
                out: list[str] = []
                code = "import os, aistudio_jupyter as ais; print(os.environ['AISTUDIO_URL'], ais.me().username)"
                reply = kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
                assert reply["content"]["status"] == "ok", reply["content"]
            finally:
                kc.stop_channels()
                httpx.delete(f"{server.base}/api/kernels/{kernel['id']}", headers=server.auth("alice"))
    assert "".join(out).split() == [server.api(), "alice"]
