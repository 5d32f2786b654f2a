"""The loop every supervisor runs on the server's event loop (jobs, deployments).

Started and stopped with the services; ``wake()`` from any thread makes it look now rather than
at its next poll; a failing step (the database is down) is logged once until it recovers, and
the loop keeps going.
"""

from __future__ import annotations

import asyncio

from ..errors import AIStudioError


class BackgroundLoop:
    """Mixin for a LoggingConfigurable whose ``_run()`` coroutine is its loop."""

    #: how log lines name it ("job supervisor")
    loop_name = "supervisor"
    _task: asyncio.Task | None = None
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _last_error: str | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def _start_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _stop_loop(self) -> bool:
        """Cancel the loop and wait for it; whether it was running."""
        if self._task is None:
            return False
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._task = None
        return True

    def wake(self) -> None:
        """Look now rather than at the next poll (thread-safe)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop closed in between
            pass

    def _woken(self) -> bool:
        """Whether someone woke the loop since it last asked (and forget it)."""
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def _sleep(self, timeout: float) -> None:
        """Until ``timeout`` passes or someone wakes the loop."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _guarded(self, step) -> None:
        try:
            await step()
            self._last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down: keep going, say so once
            message = f"{type(exc).__name__}: {exc}"[:300]
            if message != self._last_error:
                self.log.warning("AI Studio %s: %s", self.loop_name, message, exc_info=not isinstance(exc, AIStudioError))
            self._last_error = message
