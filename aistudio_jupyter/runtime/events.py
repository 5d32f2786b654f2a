"""Live events in Python: ``for ev in ais.events.subscribe("job:ID", since=0): ...``.

A blocking client of the server's ``/events`` WebSocket for kernels, scripts and tests (no
asyncio needed). It reconnects on its own after a dropped connection or a server that found
it too slow, resubscribing each topic with ``since`` = the last seq it handed out, so the
events it yields stay contiguous per topic (apart from merged metrics, ``ev.coalesced``).
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .client import APIError, Client, Record, client

#: error codes of the protocol → the HTTP status the same error has on the REST routes
_STATUS = {"bad_request": 400, "forbidden": 403, "not_found": 404, "conflict": 409, "invalid": 422, "quota_exceeded": 429, "unavailable": 503}
#: largest server message accepted (a merged metrics update for a slow reader can be big)
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


def websocket_url(api_url: str) -> str:
    """``http://host/aistudio/api`` → ``ws://host/aistudio/api/events``."""
    scheme, _, rest = api_url.partition("://")
    return {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest.rstrip("/") + "/events"


class EventStream:
    """Events of one or more topics, in order per topic; iterate, or call ``next(timeout)``.

    ``since``: an int for every topic, or ``{topic: seq}``; None starts at what is published
    from now on. ``last`` maps each topic to the last seq yielded, the ``since`` to resume
    from. ``reconnect_for``: seconds to keep trying to reconnect before giving up.
    """

    def __init__(self, api: Client, topics: Iterable[str], since: int | dict[str, int] | None = None, *, reconnect_for: float = 30.0, open_timeout: float = 10.0):
        self._api = api
        self.topics = list(dict.fromkeys(topics))
        if not self.topics:
            raise ValueError("subscribe to at least one topic")
        start = since if isinstance(since, dict) else {t: since for t in self.topics}
        self.last: dict[str, int | None] = {t: start.get(t) for t in self.topics}
        #: per topic, the head seq the server reported at the latest subscription
        self.heads: dict[str, int] = {}
        #: times the stream lost its connection and resumed
        self.reconnects = 0
        self.reconnect_for = reconnect_for
        self.open_timeout = open_timeout
        self._ws = None
        self._closed = False
        self._connect()

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> None:
        # imported here: ``import aistudio_jupyter`` stays quick in kernels that never stream
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        headers = {"Authorization": self._api.http.headers["Authorization"]} if "Authorization" in self._api.http.headers else {}
        url = websocket_url(self._api.url)
        options: dict[str, Any] = {}
        if url.startswith("wss://"):
            options["ssl"] = self._verify()
        try:
            ws = connect(url, additional_headers=headers, open_timeout=self.open_timeout, max_size=MAX_MESSAGE_BYTES, **options)
        except InvalidStatus as exc:
            response = exc.response
            try:
                err = json.loads(response.body or b"{}")["error"]
                raise APIError(response.status_code, err.get("code", "error"), err.get("message", ""), err.get("details"), err.get("request_id")) from None
            except (ValueError, KeyError, TypeError):
                raise APIError(response.status_code, "http_error", (response.body or b"")[:300].decode(errors="replace")) from None
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise ConnectionError(f"Cannot open the AI Studio events socket at {url}: {exc}") from exc
        try:
            for topic in self.topics:
                op: dict[str, Any] = {"op": "subscribe", "topic": topic}
                if self.last[topic] is not None:
                    op["since"] = self.last[topic]
                ws.send(json.dumps(op))
            pending = set(self.topics)
            self._buffer: list[dict] = []
            while pending:
                message = json.loads(ws.recv(timeout=self.open_timeout))
                if message.get("op") == "subscribed":
                    pending.discard(message["topic"])
                    self.heads[message["topic"]] = message["seq"]
                    if self.last[message["topic"]] is None:
                        self.last[message["topic"]] = message["seq"]
                elif message.get("op") == "error":
                    raise self._error(message)
                elif "seq" in message:
                    self._buffer.append(message)
        except BaseException:
            ws.close()
            raise
        self._ws = ws

    def _verify(self) -> ssl.SSLContext:
        # the CA the HTTP client trusts: a self-signed server certificate (see app.py)
        cafile = os.environ.get("AISTUDIO_CA_FILE")
        return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()

    @staticmethod
    def _error(message: dict) -> APIError:
        err = message.get("error") or {}
        code = err.get("code", "error")
        topic = message.get("topic")
        text = err.get("message", "") + (f" (topic {topic})" if topic else "")
        return APIError(_STATUS.get(code, 400), code, text)

    def _reconnect(self) -> None:
        self.reconnects += 1
        deadline = time.monotonic() + self.reconnect_for
        delay = 0.1
        while True:
            try:
                self._connect()
                return
            except ConnectionError:
                if time.monotonic() + delay > deadline:
                    raise
            except APIError as exc:
                if exc.status != 503 or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- reading ---------------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> Record:
        """The next event; ``TimeoutError`` when none comes within ``timeout`` seconds."""
        from websockets.exceptions import ConnectionClosed

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise StopIteration
            if self._buffer:
                message = self._buffer.pop(0)
            else:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    message = json.loads(self._ws.recv(timeout=left))
                except TimeoutError:
                    raise TimeoutError(f"no event within {timeout}s") from None
                except ConnectionClosed:
                    if self._closed:
                        raise StopIteration from None
                    self._reconnect()
                    continue
            if message.get("op") == "error":
                raise self._error(message)
            if "seq" not in message:
                continue  # acks and pongs
            topic = message["topic"]
            last = self.last.get(topic)
            if last is not None and message["seq"] <= last:
                continue  # replayed again after a resubscription
            self.last[topic] = message["seq"]
            return Record(message)

    def __iter__(self) -> Iterator[Record]:
        while True:
            try:
                yield self.next()
            except StopIteration:
                return

    def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            self._ws.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ais.events stream {', '.join(self.topics)}>"


def subscribe(topics: str | Iterable[str], since: int | dict[str, int] | None = None, *, api: Client | None = None, **options: Any) -> EventStream:
    """Live events of ``topics`` (``"job:ID"``, ``"dataset:ID"``, ``"user:NAME"``…), after ``since``.

    ``for ev in ais.events.subscribe(f"job:{job.id}", since=0): print(ev.type, ev.data)``
    """
    return EventStream(api or client(), [topics] if isinstance(topics, str) else topics, since, **options)
