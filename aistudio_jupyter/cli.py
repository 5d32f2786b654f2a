"""``jupyter aistudio …``: database migrations, tokens, status, blob garbage collection and the OpenAPI document.

The database URL comes from ``--database-url``, else the same configuration the server reads
(``c.AIStudio.database_url`` in the Jupyter config files, ``$AISTUDIO_DATABASE_URL``), else the
embedded SQLite default — so the CLI always acts on the database the server uses.
"""

from __future__ import annotations

import argparse
import json
import sys

from jupyter_core.application import JupyterApp


class _ConfigReader(JupyterApp):
    """Loads jupyter_server_config.* from the Jupyter config path, as the server does."""

    name = "jupyter-aistudio"
    config_file_name = "jupyter_server_config"


def server_config():
    reader = _ConfigReader()
    reader.initialize(argv=[])
    return reader.config


def resolve_database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    from .app import AIStudio

    return AIStudio(config=server_config()).database_url


def open_database(args, migrate: bool = True):
    from .store.session import Database

    return Database(resolve_database_url(args.database_url), migrate=migrate)


def cmd_db_upgrade(args) -> int:
    db = open_database(args)
    db.upgrade(args.revision)
    print(f"database at revision {db.current_revision()} ({db.dialect})")
    return 0


def cmd_db_current(args) -> int:
    from alembic.script import ScriptDirectory

    db = open_database(args, migrate=False)
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    current = db.current_revision()
    print(json.dumps({"current": current, "head": head, "up_to_date": current == head}))
    return 0 if current == head else 1


def cmd_tokens_create(args) -> int:
    from .services.tokens import TokenService

    db = open_database(args)
    token, token_id = TokenService(db=db).mint(args.user, args.name, "personal", ttl=args.ttl)
    print(json.dumps({"id": token_id, "token": token, "owner": args.user}))
    print("Store the token now: it is not shown again.", file=sys.stderr)
    return 0


def cmd_tokens_list(args) -> int:
    from .services.tokens import TokenService

    print(json.dumps(TokenService(db=open_database(args)).list(args.user), indent=2))
    return 0


def cmd_tokens_revoke(args) -> int:
    from .errors import NotFound
    from .services.tokens import TokenService

    try:
        TokenService(db=open_database(args)).revoke(args.id)
    except NotFound as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def cmd_status(args) -> int:
    from alembic.script import ScriptDirectory

    db = open_database(args, migrate=False)
    health = db.health()
    if health["ok"]:
        health["revision"] = db.current_revision()
        health["head"] = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    health["url"] = db.url.render_as_string(hide_password=True)
    print(json.dumps(health, indent=2))
    return 0 if health["ok"] else 1


def cmd_gc(args) -> int:
    from .services.gc import GarbageCollector

    config = server_config()
    if args.storage_url:
        from .storage import storage_from_url

        storage = storage_from_url(args.storage_url, s3_endpoint_url=args.s3_endpoint_url)
    else:
        from .app import AIStudio

        storage = AIStudio(config=config).build_storage()
    collector = GarbageCollector(config=config, db=open_database(args), storage=storage)
    report = collector.collect(grace_seconds=args.grace_seconds, dry_run=args.dry_run)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def cmd_openapi(args) -> int:
    from .handlers import ROUTES
    from .openapi import build_document

    print(json.dumps(build_document(ROUTES, server_url=args.server_url), indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jupyter aistudio", description="AI Studio for Jupyter: administration.")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: the server's configuration)")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    db.add_parser("current", help="show the current and head revisions (exit 1 when behind)").set_defaults(func=cmd_db_current)

    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="tokens_command", required=True)
    create = tokens.add_parser("create", help="mint a personal API token for a user")
    create.add_argument("--user", required=True)
    create.add_argument("--name", default="personal token")
    create.add_argument("--ttl", type=float, default=None, help="lifetime in seconds (default: none)")
    create.set_defaults(func=cmd_tokens_create)
    lst = tokens.add_parser("list", help="active tokens (never their secrets)")
    lst.add_argument("--user")
    lst.set_defaults(func=cmd_tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_tokens_revoke)

    sub.add_parser("status", help="database reachability and schema revision").set_defaults(func=cmd_status)
    gc = sub.add_parser("gc", help="delete stored dataset blobs that no version refers to any more")
    gc.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    gc.add_argument("--grace-seconds", type=float, default=None, help="keep blobs younger than this (default: c.GarbageCollector.grace_seconds, 1 day)")
    gc.add_argument("--storage-url", help="file:///path or s3://bucket/prefix (default: the server's configuration)")
    gc.add_argument("--s3-endpoint-url", help="S3 endpoint for MinIO/Ceph, with --storage-url")
    gc.set_defaults(func=cmd_gc)
    openapi = sub.add_parser("openapi", help="print the OpenAPI document")
    openapi.add_argument("--server-url", default="/aistudio/api")
    openapi.set_defaults(func=cmd_openapi)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
