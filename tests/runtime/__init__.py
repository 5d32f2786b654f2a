"""Tests of code that runs inside kernels: the Python client and how kernels find their server."""

import asyncio
import contextlib
from collections.abc import Iterator


def in_thread(fn, *args):
    """Run a blocking client call; the in-process server needs this test's event loop to answer it."""
    return asyncio.to_thread(fn, *args)


@contextlib.contextmanager
def clients(url: str) -> Iterator:
    """``make(user)`` → a blocking ``ais.Client`` for that user (a test token) at ``url``; every
    client made is closed on leaving."""
    from aistudio_jupyter.runtime.client import Client
    from tests.conftest import TOKENS

    opened: list[Client] = []

    def make(user: str = "alice") -> Client:
        opened.append(Client(url=url, token=TOKENS[user]))
        return opened[-1]

    try:
        yield make
    finally:
        for c in opened:
            c.close()
