"""Tests of code that runs inside kernels: the Python client and how kernels find their server."""

import asyncio


def in_thread(fn, *args):
    """Run a blocking client call; the in-process server needs this test's event loop to answer it."""
    return asyncio.to_thread(fn, *args)
