"""The `/events` WebSocket (DESIGN §7) against a real server on SQLite and PostgreSQL: replay
then live with contiguous seqs, resumption with `since`, per-subscription authorization, bad
messages, slow readers, the handshake's authentication and origin check, and delivery across
server processes through PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config
from tornado.websocket import WebSocketClientConnection

import aistudio_jupyter as ais
from aistudio_jupyter.identity import Principal
from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.schemas.jobs import JobSubmit

from ..conftest import TOKENS
from ..runtime import in_thread

DEADLINE = 30.0


@pytest.fixture
def event_limits() -> dict:
    """``c.EventService`` for the test server; a test parametrizes it to shrink the bounds."""
    return {}


@pytest.fixture
def jp_server_config(jp_server_config, event_limits):
    jp_server_config["EventService"] = Config(event_limits)
    return jp_server_config


def limits(**values):
    return pytest.mark.parametrize("event_limits", [values], ids=["limits"])


@pytest.fixture
def app(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"]


@pytest.fixture
def ws(jp_ws_fetch, jp_fetch):
    """``await ws("alice")`` → an open WebSocket to /events as that user."""

    async def connect(user: str | None = "alice", headers: dict | None = None, params: dict | None = None) -> WebSocketClientConnection:
        headers = dict(headers or {})
        if user is not None:
            headers.setdefault("Authorization", f"token {TOKENS[user]}")
        return await jp_ws_fetch("aistudio", "api", "events", headers=headers, params=params)

    return connect


async def recv(conn: WebSocketClientConnection, timeout: float = DEADLINE) -> dict:
    message = await asyncio.wait_for(conn.read_message(), timeout)
    assert message is not None, f"socket closed: {conn.close_code} {conn.close_reason}"
    return json.loads(message)


async def send(conn: WebSocketClientConnection, message) -> None:
    await conn.write_message(message if isinstance(message, str) else json.dumps(message))


async def subscribe(conn, topic: str, since: int | None = None) -> dict:
    await send(conn, {"op": "subscribe", "topic": topic, **({} if since is None else {"since": since})})
    ack = await recv(conn)
    assert ack.get("op") == "subscribed" and ack["topic"] == topic, ack
    return ack


async def collect(conn, count: int, timeout: float = DEADLINE) -> list[dict]:
    """The next ``count`` events (acks and pongs skipped)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        message = await recv(conn, max(0.1, deadline - time.monotonic()))
        if "seq" in message:
            out.append(message)
    return out


async def new_job(app, owner: str = "alice", **fields) -> str:
    job = await app.services.jobs.submit(Principal(owner, teams=("vision",) if owner in ("alice", "bob") else ()), JobSubmit(kind="interactive", **fields))
    return job.id


async def publish_batch(app, topic: str, items: list[tuple[str, dict]]) -> list[int]:
    """Publish several events in one transaction, as a service does."""
    events = app.services.events

    def run(session):
        return [events.publish_in(session, topic, type_, data) for type_, data in items]

    return await app.services.db.run(run, write=True)


def points(start: int, n: int) -> dict:
    return {"points": [{"key": "loss", "step": start + i, "value": 1.0 / (start + i + 1), "wall_time": 0.0} for i in range(n)]}


# -- replay and live ------------------------------------------------------------------------


async def test_ten_thousand_points_arrive_in_order_across_replay_and_live(api, ws):
    """10,000 points POSTed to a run's metrics route, from concurrent requests: half before the
    subscription (replayed from the database), half while it replays. Every seq arrives once,
    in order, and with it every point."""
    run = await api("POST", "jobs/interactive", json_body={"name": "ten-thousand"})
    assert run.status == 201, run.body
    job = run.body["id"]
    topic = f"job:{job}"
    requests, per_request = 200, 50

    async def post(first: int, count: int) -> None:
        async def one(r: int) -> None:
            points = [{"key": "loss", "step": r * per_request + k, "value": 1.0 / (r * per_request + k + 1)} for k in range(per_request)]
            reply = await api("POST", f"jobs/{job}/metrics", json_body={"points": points})
            assert reply.status == 200, reply.body

        for start in range(first, first + count, 10):  # ten requests in flight at a time
            await asyncio.gather(*(one(r) for r in range(start, start + 10)))

    await post(0, requests // 2)
    conn = await ws("alice")
    await subscribe(conn, topic, since=1)  # after the run's `running` status
    live = asyncio.ensure_future(post(requests // 2, requests // 2))
    got = await collect(conn, requests)
    await live
    assert [m["seq"] for m in got] == list(range(2, 2 + requests))
    assert all(m["type"] == "metrics" and m["topic"] == topic for m in got)
    steps = sorted(p["step"] for m in got for p in m["data"]["points"])
    assert steps == list(range(requests * per_request))


async def test_status_events_of_a_job_and_its_owner(app, ws):
    conn = await ws("alice")
    await subscribe(conn, "user:alice")
    job = await new_job(app, name="watched")
    (event,) = await collect(conn, 1)
    assert event["type"] == "job" and event["data"]["id"] == job and event["data"]["state"] == "queued"
    await subscribe(conn, f"job:{job}", since=0)
    (status,) = await collect(conn, 1)
    assert (status["seq"], status["type"], status["data"]["state"]) == (1, "status", "queued")


async def test_reconnect_with_since_gets_exactly_the_gap(app, ws):
    topic = f"job:{await new_job(app)}"
    conn = await ws("alice")
    ack = await subscribe(conn, topic)
    await publish_batch(app, topic, [("log", {"stream": "stdout", "text": f"line {i}\n"}) for i in range(5)])
    first = await collect(conn, 5)
    last = first[-1]["seq"]
    assert [m["seq"] for m in first] == list(range(ack["seq"] + 1, last + 1))
    conn.close()
    # published while nobody listens
    await publish_batch(app, topic, [("log", {"stream": "stderr", "text": f"gap {i}\n"}) for i in range(7)])
    again = await ws("alice")
    await subscribe(again, topic, since=last)
    gap = await collect(again, 7)
    assert [m["seq"] for m in gap] == list(range(last + 1, last + 8))
    assert [m["data"]["text"] for m in gap] == [f"gap {i}\n" for i in range(7)]
    # and live after the replay, with nothing repeated in between
    await app.services.events.publish(topic, "progress", {"progress": 0.5, "message": "half"})
    (live,) = await collect(again, 1)
    assert live["seq"] == last + 8 and live["type"] == "progress"
    await send(again, {"op": "ping"})
    assert await recv(again) == {"op": "pong"}


async def test_a_rolled_back_transaction_publishes_nothing(app, ws):
    topic = f"job:{await new_job(app)}"
    conn = await ws("alice")
    ack = await subscribe(conn, topic)
    events = app.services.events

    def fails(session):
        events.publish_in(session, topic, "log", {"stream": "stdout", "text": "never\n"})
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await app.services.db.run(fails, write=True)
    await events.publish(topic, "log", {"stream": "stdout", "text": "kept\n"})
    (event,) = await collect(conn, 1)
    assert event["seq"] == ack["seq"] + 1 and event["data"]["text"] == "kept\n"


async def test_unsubscribe_stops_delivery(app, ws):
    a, b = [f"job:{await new_job(app)}" for _ in range(2)]
    conn = await ws("alice")
    await subscribe(conn, a)
    await subscribe(conn, b)
    await send(conn, {"op": "unsubscribe", "topic": a})
    assert await recv(conn) == {"op": "unsubscribed", "topic": a}
    await app.services.events.publish(a, "log", {"stream": "stdout", "text": "unheard\n"})
    await app.services.events.publish(b, "log", {"stream": "stdout", "text": "heard\n"})
    (event,) = await collect(conn, 1)
    assert event["topic"] == b


# -- authorization and bad input -----------------------------------------------------------


async def test_topics_are_authorized_per_subscription(app, ws):
    private = await new_job(app, "alice")
    shared = await new_job(app, "alice", visibility="team", team="vision")
    bob = await ws("bob")
    for topic in (f"job:{private}", "user:alice", "job:job_doesnotexist0000000000000", "dataset:ds_nope"):
        await send(bob, {"op": "subscribe", "topic": topic, "since": 0})
        reply = await recv(bob)
        assert reply["op"] == "error" and reply["topic"] == topic and reply["error"]["code"] == "not_found", reply
    # what bob may read, he may follow; the socket stayed usable after the refusals
    await subscribe(bob, f"job:{shared}", since=0)
    (status,) = await collect(bob, 1)
    assert status["data"]["id"] == shared
    await subscribe(bob, "user:bob")
    carol = await ws("carol")
    await send(carol, {"op": "subscribe", "topic": f"job:{shared}"})
    assert (await recv(carol))["error"]["code"] == "not_found"


BAD_MESSAGES = [
    ("not json", "bad_request"),
    ("[1, 2]", "invalid"),
    ({"op": "dance"}, "invalid"),
    ({"op": "subscribe"}, "invalid"),
    ({"op": "subscribe", "topic": "job:x", "since": -1}, "invalid"),
    ({"op": "subscribe", "topic": "job:x", "since": "soon"}, "invalid"),
    ({"op": "subscribe", "topic": "secrets:/etc/passwd"}, "invalid"),
    ({"op": "subscribe", "topic": "job:" + "x" * 200}, "invalid"),
    ({"op": "subscribe", "topic": "job:x", "extra": 1}, "invalid"),
    ({"op": "subscribe", "topic": "user:alice", "since": 10**6}, "conflict"),
    ({"op": "unsubscribe"}, "invalid"),
]


async def test_bad_messages_answer_an_error_and_the_socket_stays_usable(ws):
    conn = await ws("alice")
    for message, code in BAD_MESSAGES:
        await send(conn, message)
        reply = await recv(conn)
        assert reply["op"] == "error" and reply["error"]["code"] == code, (message, reply)
    await send(conn, {"op": "ping"})
    assert await recv(conn) == {"op": "pong"}
    # a message past the size limit closes the socket (tornado's limit, 1009)
    await send(conn, json.dumps({"op": "ping", "pad": "x" * 100_000}))
    assert await conn.read_message() is None
    assert conn.close_code == 1009


@limits(max_subscriptions=2)
async def test_subscriptions_per_connection_are_capped(app, ws):
    conn = await ws("alice")
    jobs = [await new_job(app) for _ in range(3)]
    await subscribe(conn, f"job:{jobs[0]}")
    await subscribe(conn, f"job:{jobs[1]}")
    await subscribe(conn, f"job:{jobs[1]}", since=0)  # resubscribing is no new subscription
    await send(conn, {"op": "subscribe", "topic": f"job:{jobs[2]}"})
    reply = await recv(conn)
    while "seq" in reply:  # the replay of the resubscription
        reply = await recv(conn)
    assert reply["error"]["code"] == "quota_exceeded"


# -- the handshake -------------------------------------------------------------------------


async def test_handshake_requires_authentication(ws, api):
    with pytest.raises(HTTPClientError) as refused:
        await ws(None, headers={"Authorization": ""})
    assert refused.value.code == 403
    # a plain GET is no WebSocket: a 400 in the envelope, not tornado's text
    plain = await api("GET", "events")
    assert plain.status == 400 and plain.body["error"]["code"] == "bad_request"
    assert (await api("GET", "events", user=None)).status == 403


async def test_ai_studio_tokens_authenticate_by_header_and_query(app, ws):
    token, _ = app.services.tokens.mint("bob", "events test", "kernel", ttl=600)
    by_header = await ws(None, headers={"Authorization": f"Bearer {token}"})
    await subscribe(by_header, "user:bob")
    await send(by_header, {"op": "subscribe", "topic": "user:alice"})
    assert (await recv(by_header))["error"]["code"] == "not_found"
    by_query = await ws(None, headers={"Authorization": ""}, params={"token": token})
    await subscribe(by_query, "user:bob")


async def test_a_foreign_origin_is_refused(ws, jp_fetch, jp_serverapp, jp_http_port):
    """A browser session (cookie) from another site must not open the socket (CSWSH)."""
    cookie = await login_cookie(jp_fetch, jp_serverapp, host=f"localhost:{jp_http_port}")
    with pytest.raises(HTTPClientError) as refused:
        await ws(None, headers={"Authorization": "", "Cookie": cookie, "Origin": "https://evil.example"})
    assert refused.value.code == 403
    same_site = await ws(None, headers={"Authorization": "", "Cookie": cookie, "Origin": f"http://localhost:{jp_http_port}"})
    await send(same_site, {"op": "ping"})
    assert await recv(same_site) == {"op": "pong"}


async def login_cookie(jp_fetch, jp_serverapp, host: str) -> str:
    """The session cookie Jupyter sets for a browser that opened a URL with ``?token=``."""
    from http.cookies import SimpleCookie

    page = await jp_fetch("aistudio", "api", "me", params={"token": jp_serverapp.identity_provider.token}, headers={"Authorization": "", "Host": host})
    jar = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        jar.load(header)
    assert jar, "no login cookie"
    return "; ".join(f"{k}={v.value}" for k, v in jar.items())


# -- slow readers --------------------------------------------------------------------------


def read_slowly(conn: WebSocketClientConnection) -> None:
    """Shrink the client's receive buffer so an unread socket pushes back within kilobytes."""
    conn.protocol.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


@limits(max_queue=20, max_queue_hard=100_000)
async def test_a_slow_reader_gets_metrics_merged_and_every_other_event(app, ws):
    topic = f"job:{await new_job(app)}"
    conn = await ws("alice")
    ack = await subscribe(conn, topic)
    read_slowly(conn)
    per_event, n = 4, 500
    for start in range(0, n, 100):  # a log line after every 9 metrics updates
        await publish_batch(app, topic, [("log", {"stream": "stdout", "text": f"{i}\n"}) if i % 10 == 9 else ("metrics", points(i * per_event, per_event)) for i in range(start, start + 100)])
    published = ack["seq"] + n
    got, seq = [], ack["seq"]
    while seq < published:
        (message,) = await collect(conn, 1)
        got.append(message)
        seq = message["seq"]
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(set(seqs)), "seq must increase"
    assert [m["data"]["text"] for m in got if m["type"] == "log"] == [f"{i}\n" for i in range(n) if i % 10 == 9]
    merged = [m for m in got if m.get("coalesced")]
    assert merged and len(got) < n, "the reader was never behind: nothing was coalesced"
    # merged, not lost: every point of every metrics event is there, in order
    steps = [p["step"] for m in got if m["type"] == "metrics" for p in m["data"]["points"]]
    assert steps == [i * per_event + k for i in range(n) if i % 10 != 9 for k in range(per_event)]


@limits(max_queue=20, max_queue_hard=40)
async def test_a_reader_too_slow_even_when_merged_is_closed_to_resume_with_since(app, ws):
    topic = f"job:{await new_job(app)}"
    conn = await ws("alice")
    ack = await subscribe(conn, topic)
    read_slowly(conn)
    # logs are never merged nor dropped: past the hard bound the server gives up on the reader
    for start in range(0, 1000, 100):
        await publish_batch(app, topic, [("log", {"stream": "stdout", "text": "x" * 2000 + "\n"}) for _ in range(100)])
    got = []
    while (message := await asyncio.wait_for(conn.read_message(), DEADLINE)) is not None:
        got.append(json.loads(message))
    assert conn.close_code == 1013, (conn.close_code, conn.close_reason)
    assert "since" in conn.close_reason
    last = got[-1]["seq"] if got else ack["seq"]
    assert [m["seq"] for m in got] == list(range(ack["seq"] + 1, last + 1))
    # reconnecting with since resumes exactly after the last event received (a replay waits
    # for the reader, so it never overflows)
    again = await ws("alice")
    await subscribe(again, topic, since=last)
    rest = await collect(again, ack["seq"] + 1000 - last)
    assert [m["seq"] for m in rest] == list(range(last + 1, ack["seq"] + 1001))


@limits(retention_seconds=0)
async def test_old_events_are_pruned_but_seqs_never_restart(app, ws):
    events = app.services.events
    topic = f"job:{await new_job(app)}"
    await publish_batch(app, topic, [("log", {"stream": "stdout", "text": "old\n"})] * 3)
    head = await events.head(topic)
    assert await events.prune() >= head
    assert await events.history(topic) == []
    assert await events.publish(topic, "log", {"stream": "stdout", "text": "new\n"}) == head + 1
    # a reader resuming from before the pruned events is told what it cannot get back
    conn = await ws("alice")
    ack = await subscribe(conn, topic, since=1)
    assert (ack["seq"], ack["pruned_through"]) == (head + 1, head)
    (event,) = await collect(conn, 1)
    assert (event["seq"], event["data"]["text"]) == (head + 1, "new\n")


@limits(max_queue=20, max_queue_hard=40)
async def test_the_python_client_resumes_where_it_was_dropped(app, jp_fetch, jp_http_port, jp_base_url):
    """``ais.events`` reconnects by itself after the server closed it as too slow, and what it
    yields stays contiguous."""
    topic = f"job:{await new_job(app)}"
    api = Client(f"http://127.0.0.1:{jp_http_port}{jp_base_url}aistudio/api", TOKENS["alice"])
    stream = await in_thread(lambda: ais.events.subscribe(topic, since=0, api=api))
    first = await in_thread(stream.next, DEADLINE)
    assert (first.seq, first.type) == (1, "status")
    # nobody reads while these are published: the server gives up on this reader
    for _ in range(3):
        await publish_batch(app, topic, [("log", {"stream": "stdout", "text": "y" * 8000 + "\n"}) for _ in range(100)])
    rest = await in_thread(lambda: [stream.next(DEADLINE) for _ in range(300)])
    assert [e.seq for e in rest] == list(range(2, 302))
    assert stream.reconnects >= 1
    await in_thread(stream.close)  # the close handshake needs this loop
    api.close()
