"""Fixtures of the widget tests (import them into a test module): clients of an in-process
server, as a kernel's client would be."""

from __future__ import annotations

import pytest

from aistudio_jupyter.runtime.client import Client
from tests.conftest import TOKENS


@pytest.fixture
def server(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


@pytest.fixture
def connect(server, jp_fetch):
    """``connect(user)`` → a Client over real HTTP (``jp_fetch`` makes the server listen).
    Call it, and the widgets, in a thread: the in-process server answers on the test's loop."""
    opened: list[Client] = []

    def make(user: str = "alice", url: str | None = None, **options) -> Client:
        opened.append(Client(url=url or server.kernel_api_url(), token=TOKENS[user], **options))
        return opened[-1]

    yield make
    for c in opened:
        c.close()
