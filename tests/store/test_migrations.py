"""The Alembic migrations and the ORM models agree, and the chain runs both ways, on SQLite and
PostgreSQL. Each test migrates a database of its own (a fresh SQLite file, a throwaway
PostgreSQL database), so the shared test database is never touched."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from aistudio_jupyter.store.orm import Base
from aistudio_jupyter.store.session import Database
from tests.conftest import POSTGRES_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"aistudio_migrations_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # as in conftest: PostgreSQL missing is a failure, not a skip
        pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL}: {exc}", pytrace=False)
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def schema_diff(db: Database) -> list:
    """What autogenerate would put in a new migration: empty when models and migrations agree."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, Base.metadata)


def tables(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def run_alembic(db: Database, action, revision: str) -> None:
    """Run an Alembic command on the app's own configuration and a connection of ours."""
    cfg = db.alembic_config()
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, revision)
        conn.commit()


def test_head_matches_the_models(empty_database_url):
    db = Database(empty_database_url)
    try:
        db.upgrade()
        head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
        assert db.current_revision() == head
        assert schema_diff(db) == []
        assert {t.name for t in Base.metadata.sorted_tables} <= tables(db)
    finally:
        db.close()


def test_downgrade_to_base_and_upgrade_again(empty_database_url):
    db = Database(empty_database_url)
    try:
        db.upgrade()
        script = ScriptDirectory.from_config(db.alembic_config())
        # step down one revision at a time, so every downgrade() runs against its own schema
        for revision in script.walk_revisions():
            run_alembic(db, command.downgrade, revision.down_revision or "base")
            assert db.current_revision() == revision.down_revision
        assert tables(db) - {"alembic_version"} == set()
        db.upgrade()
        assert db.current_revision() == script.get_current_head()
        assert schema_diff(db) == []
        # and the schema works: a row goes in and comes out
        with db.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO audit_events (actor, action, resource_type, details, created_at) VALUES ('alice', 'create', 'dataset', '{}', CURRENT_TIMESTAMP)")
            )
            assert conn.execute(text("SELECT actor FROM audit_events")).scalar_one() == "alice"
    finally:
        db.close()


def test_upgrade_is_idempotent(empty_database_url):
    """Servers migrate at start-up: a second start on a migrated database changes nothing."""
    db = Database(empty_database_url)
    try:
        db.upgrade()
        before = db.current_revision()
        db.upgrade()
        assert db.current_revision() == before and schema_diff(db) == []
    finally:
        db.close()


def test_databases_migrating_at_once_in_one_process_do_not_tear_alembic(tmp_path):
    """Alembic installs its ``context`` proxy as module globals for each run; two runs in two
    threads used to remove it from under each other (KeyError in _remove_proxy)."""
    import threading

    dbs = [Database(f"sqlite:///{tmp_path / f'concurrent-{i}.db'}") for i in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(dbs))

    def migrate(db: Database) -> None:
        try:
            start.wait(10)
            db.upgrade()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(db,)) for db in dbs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        head = ScriptDirectory.from_config(dbs[0].alembic_config()).get_current_head()
        assert [db.current_revision() for db in dbs] == [head] * len(dbs)
    finally:
        for db in dbs:
            db.close()
