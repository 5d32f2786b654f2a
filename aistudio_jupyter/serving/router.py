"""Predict routing: dynamic batching per deployment, spread over its ready replicas.

Requests queue per deployment; a batch is cut when it holds ``max_batch_size`` rows or its
first request has waited ``max_wait_ms``, and leaves as ONE HTTP call to the least-loaded
ready replica (over its Unix socket), whose predictions are scattered back to the requests.
While every replica is busy the queue keeps filling, so batches grow with load. Every wait is
bounded: no ready replica within ``queue_timeout``, a replica that dies mid-batch or does not
answer within ``request_timeout`` all end as 503 with Retry-After, never a hang.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import deque
from typing import Any, Protocol

import httpx

from ..errors import InvalidInput, Unavailable

#: seconds a client is told to wait before retrying a 503
RETRY_AFTER = 1


class Target(Protocol):
    """A replica as the router sees it (``supervisor.Replica``)."""

    index: int
    version: int
    inflight: int

    @property
    def routable(self) -> bool: ...

    def client(self) -> httpx.AsyncClient: ...


@dataclasses.dataclass
class Pending:
    kind: str
    rows: list[Any]
    future: asyncio.Future
    queued_at: float


class Batcher:
    """The queue and the dispatch loop of one deployment."""

    def __init__(self, deployment_id: str, replicas, *, max_batch_size: int, max_wait_ms: float, per_replica: int, queue_timeout: float, request_timeout: float, log):
        #: a callable returning the deployment's replicas now (the supervisor's list changes)
        self.deployment_id, self._replicas = deployment_id, replicas
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.per_replica, self.queue_timeout, self.request_timeout = per_replica, queue_timeout, request_timeout
        self.log = log
        self._queue: deque[Pending] = deque()
        self._arrived = asyncio.Event()
        #: set whenever a replica may have room (a batch ended, a replica became ready)
        self._room = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._inflight_tasks: set[asyncio.Task] = set()

    def configure(self, max_batch_size: int, max_wait_ms: float) -> None:
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0

    def replicas_changed(self) -> None:
        self._room.set()

    async def submit(self, kind: str, rows: list[Any]) -> tuple[list[Any], int]:
        """(predictions, model version) for ``rows``; raises Unavailable or InvalidInput."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        future = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(kind, rows, future, time.monotonic()))
        self._arrived.set()
        # the batch loop bounds every stage; this outer bound only guards against a bug there
        return await asyncio.wait_for(future, self.queue_timeout + self.request_timeout + 5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for task in list(self._inflight_tasks):
            task.cancel()
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(Unavailable("The deployment stopped.", retry_after=RETRY_AFTER))

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._queue[0]
            # let the batch fill: until it is full or its first request has waited max_wait
            while self._rows(first.kind) < self.max_batch_size:
                left = first.queued_at + self.max_wait - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            replica = await self._pick()
            if replica is None:
                continue
            batch = self._take(first.kind)
            replica.inflight += 1
            task = asyncio.ensure_future(self._send(replica, batch))
            self._inflight_tasks.add(task)
            task.add_done_callback(self._inflight_tasks.discard)

    def _rows(self, kind: str) -> int:
        return sum(len(p.rows) for p in self._queue if p.kind == kind)

    def _take(self, kind: str) -> list[Pending]:
        batch, rows, keep = [], 0, deque()
        while self._queue:
            p = self._queue.popleft()
            # one request is never split; a request bigger than a batch goes alone
            if p.kind != kind or (batch and rows + len(p.rows) > self.max_batch_size):
                keep.append(p)
                continue
            batch.append(p)
            rows += len(p.rows)
        self._queue.extendleft(reversed(keep))
        return batch

    async def _pick(self):
        """The least-loaded routable replica with room, waiting for one at most
        ``queue_timeout`` past the oldest request's arrival; None after failing those requests."""
        while True:
            candidates = [r for r in self._replicas() if r.routable and r.inflight < self.per_replica]
            if candidates:
                return min(candidates, key=lambda r: (r.inflight, r.served))
            oldest = self._queue[0].queued_at if self._queue else time.monotonic()
            left = oldest + self.queue_timeout - time.monotonic()
            if left <= 0:
                ready = any(r.routable for r in self._replicas())
                message = "Every replica is busy; retry shortly." if ready else "No replica of this deployment is ready; retry shortly."
                self._fail_expired(Unavailable(message, {"deployment_id": self.deployment_id}, retry_after=RETRY_AFTER))
                return None
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass

    def _fail_expired(self, exc: Exception) -> None:
        now = time.monotonic()
        while self._queue and self._queue[0].queued_at + self.queue_timeout <= now:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(exc)

    async def _call(self, replica, key: str, rows: list[Any]) -> httpx.Response:
        """One HTTP call; the caller has counted it in ``replica.inflight``."""
        try:
            return await replica.client().post("/predict", content=json.dumps({key: rows}), headers={"Content-Type": "application/json"}, timeout=self.request_timeout)
        finally:
            replica.inflight -= 1
            self._room.set()

    async def _send(self, replica, batch: list[Pending], retried: bool = False) -> None:
        try:
            key = "records" if batch[0].kind == "records" else "inputs"
            rows = [row for p in batch for row in p.rows]
            unavailable = {"deployment_id": self.deployment_id}
            try:
                response = await self._call(replica, key, rows)
            except httpx.ConnectError:
                # never reached the replica (it just went away): another may take the batch
                replica.connect_failed()
                other = None if retried else self._pick_now()
                if other is not None:
                    other.inflight += 1
                    await self._send(other, batch, retried=True)
                    return
                self._fail(batch, Unavailable("The replica went away before answering; retry shortly.", unavailable, retry_after=RETRY_AFTER))
                return
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self._fail(batch, Unavailable(f"The replica did not answer ({type(exc).__name__}); retry shortly.", unavailable, retry_after=RETRY_AFTER))
                return
            replica.served += 1
            if response.status_code == 400 and len(batch) > 1:
                # one bad request must not fail its batch-mates: each alone
                for p in batch:
                    other = self._pick_now() or replica
                    other.inflight += 1
                    await self._send(other, [p], retried=True)
                return
            if response.status_code == 400:
                self._fail(batch, InvalidInput(f"{key}: the model could not take this input: {response.json().get('error', '')}"[:500], {"field": key}))
                return
            if response.status_code != 200:
                self._fail(batch, Unavailable(f"The replica answered {response.status_code}; retry shortly.", unavailable, retry_after=RETRY_AFTER))
                return
            predictions = response.json()["predictions"]
            start = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result((predictions[start : start + len(p.rows)], replica.version))
                start += len(p.rows)
        except Exception as exc:  # a bug here must still answer every request of the batch
            self.log.warning("AI Studio: predict batch for %s failed", self.deployment_id, exc_info=True)
            self._fail(batch, Unavailable(f"Predict failed: {type(exc).__name__}; retry shortly.", retry_after=RETRY_AFTER))

    def _pick_now(self):
        candidates = [r for r in self._replicas() if r.routable]
        return min(candidates, key=lambda r: r.inflight) if candidates else None

    @staticmethod
    def _fail(batch: list[Pending], exc: Exception) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(exc)
