"""`/events`: the one WebSocket carrying live updates (DESIGN §7).

Built on Jupyter's WebSocket support, as the kernel and terminal sockets are: the handshake is
authenticated (Jupyter's login and tokens, and AI Studio's ``aist_`` tokens) and origin-checked
like any Jupyter WebSocket, and refused with 403 before the upgrade. Each connection owns a
bounded outgoing queue: a reader that falls behind gets its queued ``metrics`` events merged
per topic, never loses a ``status``, ``job`` or ``log`` event, and past a harder bound is
closed with ``CLOSE_TOO_SLOW`` so it reconnects with ``since``.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado.web import HTTPError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import AIStudioError, BadRequest, Conflict, QuotaExceeded
from ..observability import EVENTS_SENT
from ..schemas.events import CLOSE_TOO_SLOW, ClientMessage, PingOp, SubscribeOp, UnsubscribeOp
from ..services.events import Subscription
from ..services.tokens import looks_like_token
from .auth import TokenAuthorizer, TokenIdentityProvider
from .base import AUTH_RESOURCE, AIStudioHandler, Operation

#: largest client message: ops are small
MAX_MESSAGE_BYTES = 64 * 1024
#: messages written before waiting for the socket to drain
WRITE_BATCH = 64


class EventsHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """WebSocket (GET with `Upgrade: websocket`, answered 101). Client → server JSON messages:
    `{"op": "subscribe", "topic": "job:ID", "since": SEQ}` (history after SEQ, then live; no
    `since`: live only), `{"op": "unsubscribe", "topic": ...}`, `{"op": "ping"}`. Server →
    client: `{"op": "subscribed", "topic", "seq"}` (the topic's head), then events `{"topic",
    "seq", "type", "data"}` with `seq` contiguous per topic (`"coalesced": true` marks merged
    metrics updates for a slow reader); `{"op": "unsubscribed", "topic"}`, `{"op": "pong"}`,
    `{"op": "error", "topic", "error": {"code", "message"}}`. Topics: `job:ID`, `dataset:ID`,
    `upload:ID`, `deployment:ID`, `agent_run:ID` (readable ones) and `user:<you>` (`job`, and
    `dataset` / `model` / `deployment` events `{"action", "id", ...}` of what you own). Close code
    1013: too slow a reader; reconnect and subscribe with `since`."""

    auth_resource = AUTH_RESOURCE
    operations = {"get": Operation("Switching Protocols: the live events WebSocket", status=101, tag="events")}

    # the AI Studio handlers' identity and services, on Jupyter's WebSocket base
    aistudio = AIStudioHandler.aistudio
    services = AIStudioHandler.services
    principal = AIStudioHandler.principal
    _request_id = AIStudioHandler._request_id

    @property
    def identity_provider(self):
        return TokenIdentityProvider(JupyterHandler.identity_provider.fget(self), self.services.tokens)

    @property
    def authorizer(self):
        return TokenAuthorizer(JupyterHandler.authorizer.fget(self))

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self.request_id = self._request_id()
        self._subs: dict[str, Subscription] = {}
        self._queue: collections.deque[dict] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._writer: asyncio.Task | None = None
        self._closing = False

    def set_default_headers(self) -> None:
        """No page headers (CSP and the like) on a WebSocket handshake, as Jupyter's kernel socket."""

    @property
    def max_message_size(self) -> int:
        return MAX_MESSAGE_BYTES

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # the handshake's errors (403, 400) in the same JSON envelope as every other route
        self.set_header("Content-Type", "application/json")
        AIStudioHandler.write_error(self, status_code, **kwargs)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)
        else:
            AIStudioHandler.log_exception(self, typ, value, tb)

    def prepare(self, *args: Any, **kwargs: Any):
        # browsers cannot set headers on a WebSocket: an AI Studio token may come as ?token=
        token = self.get_query_argument("token", "")
        if looks_like_token(token) and not self.request.headers.get("Authorization"):
            self.request.headers["Authorization"] = f"Bearer {token}"
        return super().prepare(*args, **kwargs)

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise BadRequest("This route is a WebSocket: connect with `Upgrade: websocket`.")
        self.principal  # resolved now, while the handshake's request is at hand
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._writer = asyncio.ensure_future(self._write_loop())

    # -- client → server -------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        topic = None
        try:
            try:
                raw = json.loads(message)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise BadRequest("Messages are JSON objects with an `op`.") from None
            if isinstance(raw, dict) and isinstance(raw.get("topic"), str):
                topic = raw["topic"][:160]
            op = AIStudioHandler._validate(ClientMessage, raw).root
            if isinstance(op, SubscribeOp):
                await self._subscribe(op)
            elif isinstance(op, UnsubscribeOp):
                self._unsubscribe(op.topic)
                self._send({"op": "unsubscribed", "topic": op.topic})
            elif isinstance(op, PingOp):
                self._send({"op": "pong"})
        except AIStudioError as exc:
            self._send({"op": "error", "topic": topic, "error": {"code": exc.code, "message": exc.message}})
        except Exception:
            self.log.error("AI Studio events: message failed [%s]", self.request_id, exc_info=True)
            self._send({"op": "error", "topic": topic, "error": {"code": "internal", "message": f"Internal error; see the server log under {self.request_id}."}})

    async def _subscribe(self, op: SubscribeOp) -> None:
        events = self.services.events
        if op.topic not in self._subs and len(self._subs) >= events.max_subscriptions:
            raise QuotaExceeded(f"At most {events.max_subscriptions} subscriptions per connection.")
        await events.authorize(self.principal, op.topic)
        if self._closing:
            return
        # before opening: once open, the replay may start at any await
        first = await events.first_retained(op.topic) if op.since is not None else None
        # subscribing again restarts the topic from the new `since`
        self._unsubscribe(op.topic)
        sub = Subscription(events, op.topic, op.since, self._send, room=self._room)
        head = await sub.open()
        if self._closing or (op.since is not None and op.since > head):
            sub.close()
            if self._closing:
                return
            raise Conflict(f"since={op.since} is past the topic's last seq {head}.", {"seq": head})
        self._subs[op.topic] = sub
        ack: dict[str, Any] = {"op": "subscribed", "topic": op.topic, "seq": head}
        if op.since is not None and op.since < head and (first is None or first > op.since + 1):
            ack["pruned_through"] = (first - 1) if first is not None else head
        # no await between open() and here: the ack goes out before the replayed events
        self._send(ack)

    def _unsubscribe(self, topic: str) -> None:
        sub = self._subs.pop(topic, None)
        if sub is not None:
            sub.close()

    def on_close(self) -> None:
        self._closing = True
        for topic in list(self._subs):
            self._unsubscribe(topic)
        self._queue.clear()
        if self._writer is not None:
            self._writer.cancel()

    # -- server → client -------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        if self._closing:
            return
        self._queue.append(message)
        self._wake.set()
        events = self.services.events
        if len(self._queue) > events.max_queue:
            self._coalesce(events.coalesce_max_points)
            if len(self._queue) > events.max_queue_hard:
                self.log.warning("AI Studio events: closing a reader %d messages behind [%s]", len(self._queue), self.request_id)
                self._closing = True
                self.close(CLOSE_TOO_SLOW, "Too slow a reader: reconnect and subscribe with since")

    def _coalesce(self, max_points: int) -> None:
        """Merge every queued ``metrics`` event of a topic into its newest one, which keeps
        its place, so seqs stay increasing per topic; other events are left alone."""
        last: dict[str, int] = {}
        for i, m in enumerate(self._queue):
            if m.get("type") == "metrics" and "seq" in m:
                last[m["topic"]] = i
        if not last:
            return
        points: dict[str, list] = {}
        merged: dict[str, int] = {}
        queue: collections.deque[dict] = collections.deque()
        for i, m in enumerate(self._queue):
            if m.get("type") != "metrics" or "seq" not in m:
                queue.append(m)
                continue
            topic = m["topic"]
            points.setdefault(topic, []).extend((m.get("data") or {}).get("points", ()))
            merged[topic] = merged.get(topic, 0) + 1
            if i == last[topic]:
                if merged[topic] == 1 and not m.get("coalesced"):
                    queue.append(m)
                else:
                    kept = points[topic][-max_points:]
                    queue.append({**m, "data": {**m["data"], "points": kept}, "coalesced": True})
        self._queue = queue

    async def _room(self) -> int:
        """Wait until the queue is under half its bound (a replay yields to a slow reader);
        how many more messages it may take now."""
        bound = self.services.events.max_queue
        while len(self._queue) > bound // 2 and not self._closing:
            self._drained.clear()
            await self._drained.wait()
        return bound - len(self._queue)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    pending = None
                    batch = min(WRITE_BATCH, len(self._queue))
                    for _ in range(batch):
                        pending = self.write_message(json.dumps(self._queue.popleft()))
                    EVENTS_SENT.inc(batch)
                    if len(self._queue) <= self.services.events.max_queue // 2:
                        self._drained.set()
                    await pending
                self._drained.set()
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        finally:
            self._drained.set()


default_handlers = [("/events", EventsHandler)]
