"""What several benchmarks share: a throw-away database per run, and percentiles."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class TempPostgres:
    """A database created for this run and dropped after it (its connections terminated first)."""

    def __init__(self, admin_url: str = POSTGRES_ADMIN):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        self.name = f"aistudio_bench_{uuid.uuid4().hex[:10]}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> str:
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        self.admin.dispose()


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh SQLite file in ``workdir`` or a temporary PostgreSQL database: its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'aistudio-{uuid.uuid4().hex[:6]}.db'}"
        return
    with TempPostgres() as url:
        yield url


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0–100) of values sorted ascending."""
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]
