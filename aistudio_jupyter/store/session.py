"""The database: engine, managed sessions, migrations at start-up and outage handling.

Services call ``await db.run(fn, ...)``: ``fn(session, ...)`` runs in a worker thread (store
calls never block the event loop) inside one transaction that commits, or rolls back and maps
database errors to domain errors. When the database is unreachable every call raises
``Unavailable`` (503) quickly, and the first call after it comes back migrates and recovers,
with no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ..errors import Conflict, Unavailable

T = TypeVar("T")
logger = logging.getLogger("aistudio.store")
MIGRATIONS = Path(__file__).with_name("migrations")
#: worker threads (and pooled connections) on SQLite, which writes one transaction at a time
SQLITE_WORKERS = 8
#: key of the PostgreSQL advisory lock that serialises migrations across servers
MIGRATION_LOCK = 0x41495354
#: serialises alembic runs within this process (see upgrade)
_ALEMBIC_LOCK = threading.Lock()


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing to serve (503) rather than a bug in a query (500).

    Operational errors cover refused and dropped connections, the server's own shutdown
    (psycopg's AdminShutdown is one) and timeouts; an InterfaceError is a closed connection.
    """
    return isinstance(exc, (OperationalError, InterfaceError)) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


#: SQLSTATEs of a lost server: connection exceptions and the server shutting down
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _lost_database(exc: BaseException) -> bool:
    """Whether the database itself is gone, rather than one statement failing operationally.

    A lock or statement timeout (PostgreSQL) or a busy file (SQLite) is an operational error
    too, but the database is there; treating it as an outage would have the next request
    re-probe — on SQLite, waiting behind the very writer that caused it.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    if sqlstate := getattr(orig, "sqlstate", None):
        return sqlstate.startswith(_LOST_SQLSTATES)
    if sqlite_error := getattr(orig, "sqlite_errorname", None):
        return sqlite_error.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR"))
    return True  # no code: the driver failed before the server answered (refused, reset)


class Database:
    """One database, shared by every service of the server process."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        max_overflow: int = 8,
        pool_timeout: float = 10.0,
        connect_timeout: int = 5,
        retry_interval: float = 2.0,
        echo: bool = False,
        migrate: bool = True,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ):
        self.url = make_url(url)
        self.log = log or logger
        self.dialect = self.url.get_backend_name()
        self.retry_interval = retry_interval
        self.migrate = migrate
        if self.dialect == "sqlite":
            workers = SQLITE_WORKERS
            self.engine = self._sqlite_engine(echo)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"connect_timeout": connect_timeout},
                echo=echo,
            )
            # no more workers than pooled connections: past pool_size, QueuePool opens an
            # overflow connection per checkout and closes it at checkin, so under load a
            # request in eight paid for a new PostgreSQL backend (measured: benchmarks/)
            workers = max(1, pool_size)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite upgrades a reader's lock to a writer's without waiting on busy_timeout, so
        # write transactions take the write lock up front (BEGIN IMMEDIATE) and wait in line.
        self._write = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aistudio-db")
        self._ready = False
        self._ready_lock = threading.Lock()
        self._next_attempt = 0.0
        self._down_since: float | None = None
        self._state_lock = threading.Lock()
        self.last_error: str | None = None

    def _sqlite_engine(self, echo: bool) -> Engine:
        path = self.url.database
        engine = create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": 30},
            echo=echo,
            # as many pooled connections as workers: SQLAlchemy's default pool keeps 5, so
            # under load the other workers opened and set up a fresh connection per call
            **({"poolclass": NullPool} if path in (None, "", ":memory:") else {"pool_size": SQLITE_WORKERS}),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # take transaction control from the driver so BEGIN is ours (see _write)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")

        return engine

    # -- migrations ------------------------------------------------------------------------

    def alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%"))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``, serialised across processes by a lock."""
        from alembic import command

        cfg = self.alembic_config()
        engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        with engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                # alembic's `context` is a module-global proxy that each run installs and removes:
                # two Databases migrating at once in one process would tear it from each other
                with _ALEMBIC_LOCK:
                    command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    conn.commit()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def ensure_ready(self) -> None:
        """Migrate on first use; while the database is down, fail fast with ``Unavailable``.

        During an outage one caller at a time probes the database, at most once per
        ``retry_interval``; everyone else is answered at once instead of queueing behind a
        probe that may wait out the whole connect timeout.
        """
        if self._ready:
            return
        # before the first failure, callers wait for the migration rather than fail beside it
        if not self._ready_lock.acquire(blocking=self.last_error is None):
            raise self._unavailable()
        try:
            if self._ready:
                return
            if time.monotonic() < self._next_attempt:
                raise self._unavailable()
            try:
                self._probe()
            except Exception as exc:  # any failure to reach or migrate keeps us unready
                self._mark_down(exc, backoff=True)
                raise self._unavailable() from exc
            self._mark_up()
        finally:
            self._ready_lock.release()

    def _probe(self) -> None:
        path = self.url.database
        if self.dialect == "sqlite" and path and path != ":memory:":
            # here, not at start-up: a directory that cannot be made yet is an outage, not a crash
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.migrate:
            self.upgrade()
        else:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

    def _mark_down(self, exc: BaseException, *, backoff: bool = False) -> None:
        """Record an outage; with ``backoff`` the next probe waits ``retry_interval``.

        A connection lost mid-request probes again at once (one lost connection is often
        just that); a failed probe makes everyone wait for the next one.
        """
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        with self._state_lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
            self._ready = False
            if backoff:
                self._next_attempt = time.monotonic() + self.retry_interval
            # one warning per outage (or per new cause), not one per probe: outages last hours
            if first or error != self.last_error:
                self.log.warning("AI Studio database unavailable, retrying every %gs: %s", self.retry_interval, error)
            self.last_error = error

    def _mark_up(self) -> None:
        with self._state_lock:
            self._ready = True
            self.last_error = None
            down_since, self._down_since = self._down_since, None
        if down_since is not None:
            self.log.warning("AI Studio database is back after %.1fs", time.monotonic() - down_since)
        else:
            self.log.info("AI Studio database ready (%s)", self.dialect)

    def retry_after(self) -> int:
        """Seconds a client should wait before retrying while the database is down."""
        return max(1, math.ceil(max(self._next_attempt - time.monotonic(), self.retry_interval)))

    def _unavailable(self) -> Unavailable:
        return Unavailable("The AI Studio database is unavailable; retry shortly.", {"component": "database"}, retry_after=self.retry_after())

    # -- sessions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A transaction that commits on success and maps database errors to domain errors."""
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            _quiet_rollback(session)
            raise Conflict("The change conflicts with existing data.", {"constraint": _constraint(exc)}) from exc
        except Exception as exc:
            _quiet_rollback(session)
            if _is_outage(exc):
                # the transaction died with its connection and never committed
                if _lost_database(exc):
                    self._mark_down(exc)
                raise self._unavailable() from exc
            if isinstance(exc, PoolTimeout):  # every connection busy: load, not an outage
                raise Unavailable("The AI Studio database is busy; retry shortly.", {"component": "database"}, retry_after=self.retry_after()) from exc
            raise
        except BaseException:
            _quiet_rollback(session)
            raise
        finally:
            _quiet_close(session)

    def call(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """Run ``fn(session, *args)`` in one transaction, on this thread."""
        self.ensure_ready()
        with self.session(write=write) as session:
            return fn(session, *args)

    async def run(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """Run ``fn(session, *args)`` in one transaction on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self.call, fn, *args, write=write))

    def health(self) -> dict[str, Any]:
        """Probe the database; never raises."""
        started = time.perf_counter()
        try:
            self.call(lambda session: session.execute(text("SELECT 1")))
            return {"ok": True, "dialect": self.dialect, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception:
            # the kind of failure only: the full message names hosts and paths, which are for the log
            cause = (self.last_error or "").split(":", 1)[0]
            return {"ok": False, "dialect": self.dialect, "error": f"unreachable ({cause})" if cause else "unreachable"}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


def _quiet_rollback(session: Session) -> None:
    # rolling back over a dead connection fails too; that must not hide the error that matters
    try:
        session.rollback()
    except Exception:
        logger.debug("rollback failed", exc_info=True)


def _quiet_close(session: Session) -> None:
    try:
        session.close()
    except Exception:
        logger.debug("closing a session failed", exc_info=True)


def _constraint(exc: IntegrityError) -> str:
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return name
    # SQLite names the columns instead: "UNIQUE constraint failed: datasets.owner, datasets.name"
    return str(orig).split(":", 1)[-1].strip()[:200] if orig is not None else "unknown"


def default_sqlite_url(data_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(data_dir) / 'aistudio' / 'aistudio.db'}"
