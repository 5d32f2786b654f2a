"""Tracking runs from a kernel or a job process: ``with ais.track("name", config={...}) as run:
run.log({"loss": loss}, step=i)``.

``Run.log`` only appends to an in-memory queue (about a microsecond per value): a daemon
thread sends the queue in batches (every ``flush_interval`` seconds or ``batch_size`` points)
over one keep-alive connection, and retries with backoff while the server is restarting or
unreachable, so a training loop never waits on the network and a blip loses nothing. The
queue is bounded: past ``queue_limit`` the oldest points are dropped and counted in
``run.dropped`` rather than blocking the loop or exhausting memory. Every answer says whether
someone canceled the job; ``run.canceled`` turns true on the next flush (an idle run sends a
heartbeat every ``heartbeat_interval`` seconds, which also keeps it from being swept as lost).
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import operator
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from .client import APIError, Client, Record
from .client import client as default_client

log = logging.getLogger("aistudio_jupyter.tracking")

#: the server's limits (schemas/metrics.py): key length, and characters a key cannot hold
MAX_KEY = 128
_BAD_KEY_CHARS = frozenset(",\x7f" + "".join(map(chr, range(32))))
#: statuses worth retrying: the server or its database is (re)starting, or we are rate limited
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON: NaN and infinities become strings, unknown objects their repr."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return str(value)


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or not _BAD_KEY_CHARS.isdisjoint(key):
        raise ValueError(f"A metric key is a string of 1 to {MAX_KEY} characters without commas or control characters, not {key!r}.")
    return key


class Run:
    """A job that this process logs metrics to. Make one with ``ais.track`` (a new interactive
    run) or attach to the job this process runs as with ``Run.current()`` / ``Run.for_job(id)``."""

    def __init__(
        self,
        job: Mapping[str, Any],
        client: Client,
        *,
        owned: bool,
        flush_interval: float = 0.1,
        batch_size: int = 1000,
        queue_limit: int = 1_000_000,
        heartbeat_interval: float = 30.0,
    ):
        self.job = Record(job)
        self.id: str = job["id"]
        self._client = client
        #: an owned run (``ais.track``) is finished by this process; an attached one by its supervisor
        self._owned = owned
        self._interval = flush_interval
        self._batch = batch_size
        self._limit = queue_limit
        self._heartbeat = heartbeat_interval
        self._queue: collections.deque = collections.deque()
        self._keys: set[str] = set()
        self._step = 0
        # two counters, each written by one thread only: += is not atomic across threads
        self._overflowed = 0
        self._rejected = 0
        #: values that were NaN or infinite, which the server does not store
        self.skipped = 0
        #: the last error the server answered (a refused batch), for diagnosis
        self.error: Exception | None = None
        self._canceled = False
        self._ended = False
        self._closed = False
        self._inflight = False
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_contact = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"aistudio-run-{self.id}", daemon=True)
        self._thread.start()
        _live_runs.add(self)

    # -- making runs -----------------------------------------------------------------------

    @classmethod
    def for_job(cls, job_id: str, client: Client | None = None, **options: Any) -> Run:
        """Log to an existing job (a train or script job). Finishing it is its supervisor's
        business: ``finish()`` here only sends what is queued."""
        client = client or default_client()
        return cls(client.request("GET", f"/jobs/{job_id}"), client, owned=False, **options)

    @classmethod
    def current(cls, client: Client | None = None, **options: Any) -> Run:
        """The job this process runs as (``AISTUDIO_JOB_ID``, set by the job's supervisor)."""
        job_id = os.environ.get("AISTUDIO_JOB_ID")
        if not job_id:
            raise RuntimeError("AISTUDIO_JOB_ID is not set: this process is not an AI Studio job. Use ais.track(name) to start a run.")
        return cls.for_job(job_id, client, **options)

    # -- logging ---------------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue ``{key: value}`` at ``step`` (default: one past the last step logged).

        Values are anything ``float()`` takes (numbers, NumPy scalars, one-element tensors —
        a CUDA tensor's ``float()`` waits for the GPU, as ``.item()`` does). Never blocks.
        """
        if self._closed:
            raise RuntimeError(f"Run {self.id} is finished; start another with ais.track().")
        if step is None:
            step = self._step
        else:
            step = operator.index(step)
            if step < 0:
                raise ValueError(f"step must be >= 0, not {step}.")
        self._step = step + 1
        now = time.time()
        queue, keys, limit = self._queue, self._keys, self._limit
        for key, value in metrics.items():
            if key not in keys:
                keys.add(check_key(key))
            value = float(value)
            if not math.isfinite(value):
                self.skipped += 1
                continue
            if len(queue) >= limit:
                try:
                    queue.popleft()
                    self._overflowed += 1
                except IndexError:  # the sender emptied it meanwhile
                    pass
            queue.append((key, step, value, now))
        if len(queue) >= self._batch:
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Points that were not stored: the queue overflowed, the server refused a batch, or the job had ended."""
        return self._overflowed + self._rejected

    @property
    def canceled(self) -> bool:
        """Whether someone canceled this job; a loop should check it and stop."""
        return self._canceled

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Send everything logged so far; False if it could not within ``timeout`` seconds."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: not self._queue and not self._inflight, timeout)

    def finish(self, state: str = "succeeded", reason: str | None = None, *, timeout: float = 30.0) -> None:
        """Send what is queued, stop the sender and, for a run made by ``ais.track``, end the
        job as ``state`` ("succeeded" or "failed", with an optional reason)."""
        if self._closed:
            return
        self._closed = True
        if not self.flush(timeout):
            log.warning("AI Studio run %s: %d points could not be sent in %.0f s and are lost.", self.id, len(self._queue), timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        _live_runs.discard(self)
        if not self._owned:
            return
        body = {"state": state} if reason is None else {"state": state, "reason": reason[:4000]}
        try:
            self.job = Record(self._client.request("POST", f"/jobs/{self.id}/finish", json=body))
        except APIError as exc:
            if exc.status != 409:  # 409: it ended already (canceled, or swept as lost)
                raise
            self.job = Record(self._client.request("GET", f"/jobs/{self.id}"))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("succeeded")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("failed", "interrupted")
        else:
            self.finish("failed", f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"<ais.Run {self.id} {self.job.get('name', '')!r}{' canceled' if self._canceled else ''}>"

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        # ticks at a fixed rate, not ``interval`` after the last send ended: a point waits at
        # most one interval (plus its POST) however long the previous POST took
        tick = time.monotonic() + self._interval
        while True:
            self._wake.wait(max(0.0, tick - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            if now >= tick:  # not an early wake (a full batch, flush): the next tick is due
                tick = max(tick + self._interval, now)
            # only what is queued now: points logged while these batches are in flight wait for
            # the next tick, or a loop logging every step would keep the sender posting
            # back to back (measured: several times the CPU of one POST per interval)
            pending = len(self._queue)
            while pending > 0 and self._queue:
                with self._idle:
                    self._inflight = True
                batch = []
                pop = self._queue.popleft
                try:
                    while len(batch) < min(self._batch, pending):
                        batch.append(pop())
                except IndexError:
                    pass
                pending -= len(batch)
                self._send(batch)
                with self._idle:
                    self._inflight = False
                    self._idle.notify_all()
            if self._stop.is_set():
                return
            if not self._ended and time.monotonic() - self._last_contact >= self._heartbeat:
                self._send([])
            with self._idle:
                self._idle.notify_all()

    def _send(self, batch: list[tuple]) -> None:
        if self._ended:
            self._rejected += len(batch)
            return
        body = {"points": [{"key": k, "step": s, "value": v, "wall_time": t} for k, s, v, t in batch]}
        delay = 0.1
        while True:
            try:
                reply = self._client.request("POST", f"/jobs/{self.id}/metrics", json=body)
            except ConnectionError as exc:
                self.error = exc
            except APIError as exc:
                self.error = exc
                if exc.status not in _RETRY_STATUSES:
                    self._refused(exc, len(batch))
                    return
            else:
                self._last_contact = time.monotonic()
                self._canceled = self._canceled or bool(reply.get("canceled"))
                return
            # keep the batch and try again, unless finish() is already waiting on us to give up
            if self._stop.wait(delay) and self._closed:
                self._rejected += len(batch)
                return
            delay = min(delay * 2, 5.0)

    def _refused(self, exc: APIError, points: int) -> None:
        self._rejected += points
        if exc.status == 409:
            # the job has ended: nothing more will be stored, so stop sending
            self._ended = True
            self._canceled = self._canceled or exc.details.get("state") == "canceled"
            log.warning("AI Studio run %s has ended (%s); further points are dropped.", self.id, exc.details.get("state"))
        else:
            log.warning("AI Studio refused %d points of run %s: %s", points, self.id, exc)


def track(name: str, config: Mapping[str, Any] | None = None, *, client: Client | None = None, visibility: str = "private", team: str | None = None, **options: Any) -> Run:
    """Start an interactive run: a job in the studio, running in this kernel.

    ``with ais.track("lr-sweep", config={"lr": 3e-4}) as run: run.log({"loss": l}, step=i)``:
    leaving the block finishes it (succeeded, or failed with the exception). ``options`` go to
    ``Run`` (``flush_interval``, ``batch_size``, ``queue_limit``, ``heartbeat_interval``).
    """
    client = client or default_client()
    body: dict[str, Any] = {"name": name, "config": _jsonable(dict(config or {})), "visibility": visibility}
    if team is not None:
        body["team"] = team
    return Run(client.request("POST", "/jobs/interactive", json=body), client, owned=True, **options)


@atexit.register
def _finish_at_exit() -> None:
    # the sender is a daemon thread: without this, points queued at exit would vanish
    for run in list(_live_runs):
        try:
            run.finish(reason="The process exited without finishing the run.", timeout=5.0)
        except Exception as exc:  # the server may be gone; exiting must not fail
            log.warning("AI Studio run %s could not be finished at exit: %s", run.id, exc)
