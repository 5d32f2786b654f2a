"""The Python client against a real server, with a Jupyter token and with a scoped ``aist_`` token.

The client blocks, so each scenario runs in a worker thread while the test's event loop serves
the in-process server over real HTTP (a separate server process would add seconds per test
and prove nothing more about the client).
"""

from __future__ import annotations

import json
import pickle

import pytest

import aistudio_jupyter as ais
from aistudio_jupyter.runtime import client as client_module
from aistudio_jupyter.runtime.client import APIError, Client, Record
from tests.conftest import TOKENS
from tests.runtime import in_thread
from tests.live import free_port


@pytest.fixture(params=["jupyter-token", "aist-token"])
def connect(request, jp_serverapp, jp_fetch):
    """``connect(user)`` → a Client for ``user`` (alice unless told), over real HTTP."""
    app = jp_serverapp.web_app.settings["aistudio"]
    url = app.kernel_api_url()
    opened: list[Client] = []

    def make(user: str = "alice") -> Client:
        token = TOKENS[user] if request.param == "jupyter-token" else app.services.tokens.mint(user, "client-test", "personal")[0]
        opened.append(Client(url=url, token=token))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


async def test_pages_get_create_update_delete(connect):
    def scenario():
        alice = connect()
        names = [f"set-{i}" for i in range(7)]
        created = [alice.datasets.create(name=n, tags=["client"]) for n in names]
        assert [d.owner for d in created] == ["alice"] * 7 and all(d.id.startswith("ds_") for d in created)

        pages = list(alice.datasets.pages(page_size=3, sort="name"))
        assert [[d.name for d in p] for p in pages] == [names[0:3], names[3:6], names[6:]]
        assert [d.name for d in alice.datasets.list(sort="-name")] == names[::-1]
        assert len(alice.datasets.list(limit=4)) == 4
        assert [d.name for d in alice.datasets.list(q="SET-3")] == ["set-3"]

        first = alice.datasets.get(created[0].id)
        assert first == created[0] and alice.datasets.get("set-0") == first
        # a record goes back in as it came out
        changed = alice.datasets.update(first, visibility="public", description="shared")
        assert (changed.visibility, changed.description, changed.id) == ("public", "shared", first.id)
        assert Record(json.loads(json.dumps(changed))) == changed and pickle.loads(pickle.dumps(changed)).name == "set-0"
        assert repr(changed) == f"<{first.id} 'set-0'>" and "visibility" in dir(changed)

        alice.datasets.delete(changed)
        with pytest.raises(APIError) as gone:
            alice.datasets.get(first.id)
        assert gone.value.status == 404
        assert len(alice.datasets.list()) == 6

    await in_thread(scenario)


async def test_get_by_name_prefers_your_own(connect):
    def scenario():
        alice, bob = connect("alice"), connect("bob")
        bobs = bob.datasets.create(name="shared", visibility="public")
        bob.datasets.create(name="only-bob", visibility="public")
        bob.datasets.create(name="hidden")
        mine = alice.datasets.create(name="shared")
        # a name that looks like an id prefix is still a name
        train = alice.models.create(name="mdl_train", task="classification")

        assert alice.datasets.get("shared").id == mine.id
        assert bob.datasets.get("shared").id == bobs.id
        assert alice.datasets.get("only-bob").owner == "bob"
        assert alice.models.get("mdl_train").id == train.id
        for missing in ("hidden", "shar"):
            with pytest.raises(APIError) as err:
                alice.datasets.get(missing)
            assert (err.value.status, err.value.code) == (404, "not_found")

    await in_thread(scenario)


async def test_errors_carry_the_envelope(connect):
    def scenario():
        alice = connect()
        alice.agents.create(name="helper", tools=["datasets.list"])

        with pytest.raises(APIError) as missing:
            alice.agents.get("agt_" + "0" * 25)
        with pytest.raises(APIError) as duplicate:
            alice.agents.create(name="helper")
        with pytest.raises(APIError) as invalid:
            alice.agents.create(name="x", limits={"max_steps": 0})
        with pytest.raises(APIError) as unknown:
            alice.datasets.create(name="y", colour="red")

        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert (duplicate.value.status, duplicate.value.code) == (409, "conflict")
        assert (invalid.value.status, invalid.value.code) == (422, "invalid")
        assert "max_steps" in invalid.value.message and invalid.value.details["errors"]
        assert (unknown.value.status, unknown.value.code) == (422, "invalid") and "colour" in unknown.value.message
        for err in (missing.value, duplicate.value, invalid.value, unknown.value):
            assert err.message and len(err.request_id) >= 8 and err.request_id in str(err)
        assert [a.name for a in alice.agents.list()] == ["helper"]

    await in_thread(scenario)


async def test_the_module_level_client_is_configured_once(monkeypatch, jp_serverapp, jp_fetch):
    monkeypatch.setattr(client_module, "_default", None)
    url = jp_serverapp.web_app.settings["aistudio"].kernel_api_url()

    def scenario():
        configured = ais.client(url=url, token=TOKENS["bob"])
        assert ais.client() is configured and repr(ais.datasets) == "<ais.datasets>"
        ds = ais.datasets.create(name="via-module")
        assert ais.me().username == "bob" and ds.owner == "bob"
        assert [d.id for d in ais.datasets.list()] == [ds.id]
        assert ais.health().status == "ok"
        # reconfiguring switches every module-level collection to the new identity
        ais.client(url=url, token=TOKENS["carol"])
        assert ais.me().username == "carol" and ais.datasets.list() == []

    try:
        await in_thread(scenario)
    finally:
        if client_module._default is not None:
            client_module._default.close()


def test_without_a_server_the_client_says_what_to_do(monkeypatch):
    monkeypatch.setattr(client_module, "_default", None)
    monkeypatch.delenv("AISTUDIO_URL", raising=False)
    with pytest.raises(RuntimeError, match=r"AISTUDIO_URL is not set.*ais\.client\(url="):
        ais.datasets.list()

    url = f"http://127.0.0.1:{free_port()}/aistudio/api"
    with Client(url=url, token="aist_" + "x" * 43) as nowhere:
        with pytest.raises(ConnectionError, match="Cannot reach AI Studio at " + url):
            nowhere.datasets.list()
        with pytest.raises(TypeError, match="read-only"):
            nowhere.jobs.create(name="x")
