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
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from ..errors import Conflict, Unavailable

T = TypeVar("T")
log = logging.getLogger("aistudio.store")
MIGRATIONS = Path(__file__).with_name("migrations")
#: key of the PostgreSQL advisory lock that serialises migrations across servers
MIGRATION_LOCK = 0x41495354


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


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
    ):
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.retry_interval = retry_interval
        self.migrate = migrate
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(echo)
            workers = 8
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
            workers = pool_size + max_overflow
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite upgrades a reader's lock to a writer's without waiting on busy_timeout, so
        # write transactions take the write lock up front (BEGIN IMMEDIATE) and wait in line.
        self._write = sessionmaker(self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aistudio-db")
        self._ready = False
        self._ready_lock = threading.Lock()
        self._next_attempt = 0.0
        self.last_error: str | None = None

    def _sqlite_engine(self, echo: bool) -> Engine:
        path = self.url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=NullPool if path in (None, "", ":memory:") else None,
            echo=echo,
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
        """Migrate on first use; while the database is down, fail fast with ``Unavailable``."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            now = time.monotonic()
            if now < self._next_attempt:
                raise Unavailable(self._outage_message(), retry_after=max(1, int(self._next_attempt - now + 0.999)))
            try:
                if self.migrate:
                    self.upgrade()
                else:
                    with self.engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
            except Exception as exc:  # any failure to reach or migrate keeps us unready
                self._next_attempt = time.monotonic() + self.retry_interval
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                log.warning("AI Studio database unavailable: %s", self.last_error)
                raise Unavailable(self._outage_message(), retry_after=int(self.retry_interval + 0.999)) from exc
            self._ready = True
            self.last_error = None
            log.info("AI Studio database ready (%s)", self.dialect)

    def _outage_message(self) -> str:
        return "The AI Studio database is unavailable; retry shortly."

    # -- sessions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A transaction that commits on success and maps database errors to domain errors."""
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict("The change conflicts with existing data.", {"constraint": _constraint(exc)}) from exc
        except DBAPIError as exc:
            session.rollback()
            if _is_outage(exc):
                self.last_error = f"{type(exc).__name__}".strip()
                raise Unavailable(self._outage_message(), retry_after=int(self.retry_interval + 0.999)) from exc
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

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
            self.ensure_ready()
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return {"ok": True, "dialect": self.dialect, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception:
            return {"ok": False, "dialect": self.dialect, "error": self.last_error or "unreachable"}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


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
