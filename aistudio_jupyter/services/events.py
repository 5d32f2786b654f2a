"""Events: one ordered, replayable stream per topic (DESIGN §7).

A publisher calls ``publish_in(session, topic, type, data)`` inside its own transaction: the
topic's ``seq`` comes from its counter row, updated in that same transaction, so seqs commit in
order (a later seq is never visible before an earlier one) and a replay from the database never
skips one. Only after COMMIT is the event handed to this process's listeners, on the IOLoop; a
rolled-back transaction publishes nothing. Other processes learn of it from a PostgreSQL
NOTIFY carrying only ``topic seq`` (sent at commit, dropped on rollback) and re-read the
database, which also covers notifications lost while their listener was disconnected.

Listeners are objects with ``on_event(event)`` and ``resync()``; ``Subscription`` is the one
every consumer uses: history after ``since`` from the database, then live, in seq order with no
gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, delete, event, func, insert, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from ..errors import InvalidInput, NotFound
from ..identity import Principal
from ..schemas.events import TOPIC_PATTERN
from ..store import orm
from ..store.types import JSONType, UTCDateTime, utcnow
from . import access

CHANNEL = "aistudio_events"
TOPIC = re.compile(TOPIC_PATTERN)
#: topic kind → the table whose readable rows make the topic readable
TOPIC_TABLES = {"job": orm.Job, "dataset": orm.Dataset, "deployment": orm.Deployment, "agent_run": orm.AgentRun}
#: seconds between a reader's attempts to replay while the database does not answer
RETRY_FIRST, RETRY_MAX = 0.2, 5.0
_PENDING = "aistudio_events_pending"
_HOOKED = "aistudio_events_hooked"

Event = dict[str, Any]  # {"topic", "seq", "type", "data"}


# built once: a publisher of thousands of events a second pays no statement building
_NEXT_SEQ = (
    sqlite_insert(orm.EventTopic)
    .values(topic=bindparam("topic"), seq=1)
    .on_conflict_do_update(index_elements=[orm.EventTopic.topic], set_={"seq": orm.EventTopic.seq + 1})
    .returning(orm.EventTopic.seq)
)
_INSERT_EVENT = insert(orm.Event.__table__)
#: PostgreSQL in one round trip: take the seq (the row lock orders every publisher of the topic
#: until it commits), store the event, and NOTIFY — delivered at COMMIT, discarded by ROLLBACK
_PUBLISH_PG = text(
    f"""WITH next AS (
        INSERT INTO event_topics (topic, seq) VALUES (:topic, 1)
        ON CONFLICT (topic) DO UPDATE SET seq = event_topics.seq + 1 RETURNING seq
    ), stored AS (
        INSERT INTO events (topic, seq, type, data, created_at) SELECT :topic, seq, :type, :data, :created_at FROM next RETURNING seq
    )
    SELECT seq, pg_notify('{CHANNEL}', :topic || ' ' || seq) FROM stored"""
).bindparams(bindparam("data", type_=JSONType), bindparam("created_at", type_=UTCDateTime()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def check_topic(topic: str) -> re.Match:
    match = TOPIC.match(topic) if isinstance(topic, str) else None
    if match is None:
        raise InvalidInput("A topic is kind:id with kind one of job, dataset, upload, deployment, agent_run, user.", {"field": "topic"})
    return match


class EventService(LoggingConfigurable):
    db = AnyTrait(help="The Database.")
    retention_seconds = Float(7 * 24 * 3600.0, config=True, help="Events older than this are pruned (a topic's seq counter never restarts).")
    prune_interval = Float(3600.0, config=True, help="Seconds between prunes of old events.")
    page_size = Int(500, config=True, help="Events read from the database per replay query.")
    max_queue = Int(1000, config=True, help="Messages queued for one WebSocket before metrics updates are coalesced.")
    max_queue_hard = Int(5000, config=True, help="Messages queued for one WebSocket (after coalescing) before it is closed as too slow.")
    max_subscriptions = Int(200, config=True, help="Topics one WebSocket may subscribe to at once.")
    coalesce_max_points = Int(5000, config=True, help="Points one coalesced metrics message carries at most (the newest are kept).")
    listen_retry_max = Float(10.0, config=True, help="Longest wait, in seconds, between reconnections of the PostgreSQL LISTEN connection.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: dict[str, set] = {}
        #: per listened topic, the highest seq handed to its listeners, in order
        self._seen: dict[str, int] = {}
        self._pumping: set[str] = set()
        self._repump: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = threading.Event()
        self._listen_thread: threading.Thread | None = None
        self._prune_task: asyncio.Task | None = None

    # -- publishing ------------------------------------------------------------------------

    def publish_in(self, session: Session, topic: str, type: str, data: dict | BaseModel) -> int:
        """Append an event to ``topic`` inside the caller's transaction (a ``write=True`` one);
        returns its seq. Listeners hear of it only once that transaction commits.

        ``data`` is JSON (a pydantic model is dumped in JSON mode; datetimes become ISO text).
        """
        check_topic(topic)
        if not 0 < len(type) <= 32:
            raise InvalidInput("An event type has 1 to 32 characters.", {"field": "type"})
        payload = json.loads(json.dumps(data, default=_jsonable))
        conn = session.connection()
        params = {"topic": topic, "type": type, "data": payload, "created_at": utcnow()}
        if conn.dialect.name == "postgresql":
            seq = conn.execute(_PUBLISH_PG, params).scalar_one()
        else:
            # the write transaction (BEGIN IMMEDIATE) orders every publisher until it commits
            seq = conn.execute(_NEXT_SEQ, {"topic": topic}).scalar_one()
            conn.execute(_INSERT_EVENT, {**params, "seq": seq})
        if not session.info.get(_HOOKED):
            session.info[_HOOKED] = True
            event.listen(session, "after_commit", self._after_commit)
            event.listen(session, "after_rollback", self._after_rollback)
        session.info.setdefault(_PENDING, []).append({"topic": topic, "seq": seq, "type": type, "data": payload})
        return seq

    async def publish(self, topic: str, type: str, data: dict | BaseModel) -> int:
        """``publish_in`` in a transaction of its own."""
        return await self.db.run(self.publish_in, topic, type, data, write=True)

    def _after_commit(self, session: Session) -> None:
        events = session.info.pop(_PENDING, None)
        loop = self._loop
        if events and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: nobody listens
                loop.call_soon_threadsafe(self._offer_all, events)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_PENDING, None)

    # -- reading ---------------------------------------------------------------------------

    async def history(self, topic: str, since: int = 0, limit: int | None = None) -> list[Event]:
        """Events of ``topic`` with seq > ``since``, oldest first."""
        return await self.db.run(self._history, topic, since, limit or self.page_size)

    def _history(self, session: Session, topic: str, since: int, limit: int) -> list[Event]:
        rows = session.execute(
            select(orm.Event.seq, orm.Event.type, orm.Event.data).where(orm.Event.topic == topic, orm.Event.seq > since).order_by(orm.Event.seq).limit(limit)
        )
        return [{"topic": topic, "seq": seq, "type": type_, "data": data} for seq, type_, data in rows]

    async def head(self, topic: str) -> int:
        """The last seq taken on ``topic`` (0 for a topic that never had an event)."""
        return await self.db.run(self._head, topic)

    def _head(self, session: Session, topic: str) -> int:
        return session.scalar(select(orm.EventTopic.seq).where(orm.EventTopic.topic == topic)) or 0

    async def authorize(self, who: Principal, topic: str) -> None:
        """Raise ``NotFound`` unless ``who`` may read ``topic`` (unreadable answers as missing)."""
        kind, id_ = check_topic(topic).groups()
        if kind == "user":
            if id_ != who.username:
                raise NotFound(f"No topic {topic!r}.", {"topic": topic})
            return
        await self.db.run(self._authorize, who, kind, id_, topic)

    def _authorize(self, session: Session, who: Principal, kind: str, id_: str, topic: str) -> None:
        if kind == "upload":
            owner = session.scalar(select(orm.Upload.owner).where(orm.Upload.id == id_))
            if owner != who.username:
                raise NotFound(f"No topic {topic!r}.", {"topic": topic})
            return
        try:
            access.load(session, TOPIC_TABLES[kind], who, id_, kind=kind)
        except NotFound:
            raise NotFound(f"No topic {topic!r}.", {"topic": topic}) from None

    async def prune(self) -> int:
        """Delete events past the retention age; counters stay, so seqs never repeat."""
        return await self.db.run(self._prune, write=True)

    def _prune(self, session: Session) -> int:
        cutoff = utcnow() - dt.timedelta(seconds=self.retention_seconds)
        return session.execute(delete(orm.Event).where(orm.Event.created_at < cutoff)).rowcount or 0

    def _first_retained(self, session: Session, topic: str) -> int | None:
        return session.scalar(select(func.min(orm.Event.seq)).where(orm.Event.topic == topic))

    async def first_retained(self, topic: str) -> int | None:
        """The oldest seq still stored for ``topic`` (older ones were pruned)."""
        return await self.db.run(self._first_retained, topic)

    # -- in-process listeners (on the IOLoop) ----------------------------------------------

    def subscribe(self, topic: str, listener) -> None:
        """Hand ``listener.on_event(event)`` every later event of ``topic``, in seq order;
        ``listener.resync()`` is called when events may have been missed (a lost NOTIFY)."""
        self._listeners.setdefault(topic, set()).add(listener)

    def unsubscribe(self, topic: str, listener) -> None:
        found = self._listeners.get(topic)
        if found is None:
            return
        found.discard(listener)
        if not found:
            del self._listeners[topic]
            self._seen.pop(topic, None)

    def _offer_all(self, events: list[Event]) -> None:
        for ev in events:
            self._offer(ev)

    def _offer(self, ev: Event) -> None:
        topic = ev["topic"]
        if topic not in self._listeners:
            return
        seen = self._seen.get(topic)
        if seen is None or ev["seq"] == seen + 1:
            self._seen[topic] = ev["seq"]
            for listener in list(self._listeners.get(topic, ())):
                try:
                    listener.on_event(ev)
                except Exception:  # one broken consumer must not starve the others
                    self.log.warning("AI Studio event listener failed", exc_info=True)
        elif ev["seq"] > seen + 1:
            # an earlier event committed first but has not reached us: read it
            self._wake(topic)

    def _notified(self, topic: str, seq: int) -> None:
        if topic not in self._listeners:
            return
        seen = self._seen.get(topic)
        if seen is None:
            self._seen[topic] = seq - 1
        elif seq <= seen:
            return
        self._wake(topic)

    def _wake(self, topic: str) -> None:
        if topic in self._pumping:
            self._repump.add(topic)
            return
        self._pumping.add(topic)
        self._spawn(self._pump(topic))

    async def _pump(self, topic: str) -> None:
        """Read and hand out what this process has not seen of ``topic``, once for all its listeners."""
        try:
            while topic in self._seen:
                self._repump.discard(topic)
                events = await self.history(topic, self._seen[topic], self.page_size)
                self._offer_all(events)
                if len(events) < self.page_size and topic not in self._repump:
                    break
        except Exception as exc:
            # each listener retries on its own until the database answers
            self.log.info("AI Studio events: could not read %s: %s", topic, type(exc).__name__)
            for listener in list(self._listeners.get(topic, ())):
                listener.resync()
        finally:
            self._pumping.discard(topic)

    def _resync(self) -> None:
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener.resync()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        if self.db.dialect == "postgresql":
            self._listen_thread = threading.Thread(target=self._listen, name="aistudio-events-listen", daemon=True)
            self._listen_thread.start()
        self._prune_task = self._spawn(self._prune_periodically())

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        if self._listen_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._listen_thread.join, 5)
            self._listen_thread = None
        self._loop = None

    async def _prune_periodically(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    self.log.info("AI Studio events: pruned %d events older than %gs", pruned, self.retention_seconds)
            except Exception as exc:  # the database may be down; the next round retries
                self.log.info("AI Studio events: prune failed: %s", type(exc).__name__)
            await asyncio.sleep(self.prune_interval)

    def _hop(self, fn: Callable, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def _listen(self) -> None:
        """LISTEN on a connection of its own, in this thread, reconnecting with backoff.

        Every (re)connection resyncs the listeners: notifications sent while disconnected are
        lost, the events are not.
        """
        import psycopg

        conninfo = make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        delay, failing = 0.2, False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if failing:
                        self.log.warning("AI Studio events: LISTEN connection is back")
                    delay, failing = 0.2, False
                    self._hop(self._resync)
                    idle = 0
                    while not self._stopping.is_set():
                        got = False
                        for note in conn.notifies(timeout=0.5):
                            got = True
                            topic, _, seq = note.payload.rpartition(" ")
                            if topic and seq.isdigit():
                                self._hop(self._notified, topic, int(seq))
                        idle = 0 if got else idle + 1
                        if idle >= 20:  # a silent peer: a dead connection only shows when used
                            conn.execute("SELECT 1")
                            idle = 0
            except Exception as exc:
                if not failing:
                    self.log.warning("AI Studio events: LISTEN connection lost (%s); retrying", type(exc).__name__)
                failing = True
                self._stopping.wait(delay)
                delay = min(delay * 2, self.listen_retry_max)


class Subscription:
    """One consumer of one topic: the events after ``since`` from the database, then live ones,
    each exactly once and in seq order; ``since=None`` starts at the topic's current head.

    ``deliver(event)`` is called on the IOLoop. ``await room()``, before each replay page, says
    how many events the consumer can take now, so one that cannot keep up slows the replay
    rather than overflowing. Live events are
    dropped while a replay runs and the replay re-reads until no live event arrived during it:
    an event handed out live was committed, so the next read sees it.
    """

    def __init__(self, service: EventService, topic: str, since: int | None, deliver: Callable[[Event], None], room: Callable | None = None):
        self.service = service
        self.topic = topic
        self.since = since
        self.last = since or 0
        self.deliver = deliver
        self.room = room
        self.closed = False
        self._catching_up = True
        self._dirty = False
        self._task: asyncio.Task | None = None

    async def open(self) -> int:
        """Start listening, then replay; returns the topic's head when subscribing."""
        self.service.subscribe(self.topic, self)
        try:
            head = await self.service.head(self.topic)
        except BaseException:
            self.close()
            raise
        if self.since is None:
            self.last = head
        self._task = self.service._spawn(self._catch_up())
        return head

    def close(self) -> None:
        self.closed = True
        self.service.unsubscribe(self.topic, self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def on_event(self, ev: Event) -> None:
        if self.closed or ev["seq"] <= self.last:
            return
        if self._catching_up:
            self._dirty = True
        elif ev["seq"] == self.last + 1:
            self.last = ev["seq"]
            self.deliver(ev)
        else:
            self.resync()

    def resync(self) -> None:
        if self.closed:
            return
        if self._catching_up:
            self._dirty = True
            return
        self._catching_up = True
        self._task = self.service._spawn(self._catch_up())

    async def _catch_up(self) -> None:
        page = self.service.page_size
        delay = RETRY_FIRST
        try:
            while not self.closed:
                self._dirty = False
                try:
                    limit = page if self.room is None else max(1, min(page, await self.room()))
                    events = await self.service.history(self.topic, self.last, limit)
                except Exception as exc:
                    # the database is down or just back (it answers 503 until its next probe):
                    # nothing else would bring this reader the events it is missing
                    self.service.log.info("AI Studio events: replay of %s failed (%s); retrying in %gs", self.topic, type(exc).__name__, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                delay = RETRY_FIRST
                for ev in events:
                    if self.closed:
                        return
                    if ev["seq"] > self.last:
                        self.last = ev["seq"]
                        self.deliver(ev)
                if len(events) < limit and not self._dirty:
                    break
        finally:
            self._catching_up = False
