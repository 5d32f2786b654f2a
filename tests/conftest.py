"""Fixtures: a real Jupyter server with AI Studio on SQLite and on PostgreSQL, and API helpers.

PostgreSQL is not optional: when it is unreachable the PostgreSQL-parametrised tests fail
(set AISTUDIO_TEST_SKIP_POSTGRES=1 to skip them on a machine without it; CI never does).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from traitlets.config import Config

from aistudio_jupyter.store.orm import Base
from aistudio_jupyter.store.session import Database

pytest_plugins = ["pytest_jupyter.jupyter_server", "tests.live", "tests.s3"]

POSTGRES_ADMIN_URL = os.environ.get("AISTUDIO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEAMS = {"vision": {"members": ["alice", "bob"], "editors": ["alice"]}}
TOKENS = {"alice": "alice-token", "bob": "bob-token", "carol": "carol-token"}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("AISTUDIO_TEST_SKIP_POSTGRES") == "1" and os.environ.get("CI") != "true":
        skip = pytest.mark.skip(reason="AISTUDIO_TEST_SKIP_POSTGRES=1")
        for item in items:
            if "postgresql" in item.keywords or "[postgresql" in item.nodeid:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"aistudio_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the suite must fail, not skip, when PostgreSQL is missing
        pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL}: {exc}", pytrace=False)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    db.upgrade()
    db.close()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file that each test copies (migrating per test is slower)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.close()
    return path


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Every service and API test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "aistudio.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    truncate_all(url)
    return url


@pytest.fixture
def aistudio_config(database_url, tmp_path) -> dict[str, Any]:
    """``c.AIStudio`` for the test server; tests may change it before the server starts."""
    return {
        "database_url": database_url,
        "storage_url": (tmp_path / "storage").as_uri(),
        "teams": TEAMS,
        "db_retry_interval": 0.2,
        "owner": "alice",
    }


@pytest.fixture
def jp_server_config(aistudio_config):
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"aistudio_jupyter": True},
                "identity_provider_class": "tests.identity.NamedUsersIdentityProvider",
            },
            "AIStudio": aistudio_config,
            # in-process servers test the API; jobs' processes are tested on live servers
            # (tests/jobs), where a supervisor claiming the rows these tests set up belongs
            "JobSupervisor": {"enabled": False},
            # likewise deployments' replica processes: tested in tests/deployments
            "DeploymentSupervisor": {"enabled": False},
        }
    )


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error(self) -> dict:
        return self.body["error"]


@pytest.fixture
def api(jp_fetch):
    """``await api("POST", "datasets", user="bob", json={...})`` → Reply (never raises on 4xx/5xx)."""

    async def call(method: str, path: str, *, user: str | None = "alice", json_body: Any = None, body: str | bytes | None = None, params: dict | None = None, headers: dict | None = None) -> Reply:
        headers = dict(headers or {})
        if user is not None:
            headers.setdefault("Authorization", f"token {TOKENS[user]}")
        else:
            headers.setdefault("Authorization", "")
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        kwargs: dict[str, Any] = {"method": method, "headers": headers, "raise_error": False}
        if body is not None or method in ("POST", "PATCH", "PUT"):
            kwargs["body"] = body if body is not None else ""
        if method == "DELETE" and body is None:
            kwargs.pop("body", None)
        response = await jp_fetch("aistudio", "api", *path.strip("/").split("/"), params=params, **kwargs)
        raw = response.body
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return Reply(response.code, parsed, response.headers)

    return call
