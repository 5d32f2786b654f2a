"""The ``aistudio`` Jupyter server extension: configuration, wiring and the route table."""

from __future__ import annotations

import gc
import getpass
import os
import re
import threading
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Dict, Enum, Float, Int, Type, Unicode, default

from . import __version__
from .errors import Conflict
from .handlers import ROUTES
from .handlers.base import NotFoundHandler
from .services import Services
from .store.session import Database, default_sqlite_url

API_PREFIX = "/aistudio/api"
GIB = 1024**3

#: quotas of the built-in tier; ``c.AIStudio.tiers`` adds tiers or overrides these keys
DEFAULT_TIER = {
    "priority": 0,
    "storage_bytes": 50 * GIB,
    "concurrent_jobs": 4,
    "gpus_per_job": 1,
    "gpu_hours_per_month": 100.0,
    "requests_per_minute": 1200,
    "upload_bytes": 20 * GIB,
}


def route_pattern(template: str) -> str:
    """``/datasets/{id}`` → ``/aistudio/api/datasets/(?P<id>[^/]+)``."""
    return API_PREFIX + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", template)


class AIStudio(ExtensionApp):
    """AI Studio for Jupyter."""

    name = "aistudio"
    description = "AI Studio for Jupyter: datasets, training, models, agents and deployments"
    version = __version__
    load_other_extensions = True

    database_url = Unicode(
        config=True,
        help="SQLAlchemy URL of the database. Default: $AISTUDIO_DATABASE_URL, else SQLite in the Jupyter data directory. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    storage_url = Unicode(config=True, help="Where file bytes live: file:///path or s3://bucket/prefix. Default: local disk in the Jupyter data directory.")
    s3_endpoint_url = Unicode("", config=True, help="S3 endpoint for MinIO, Ceph or other S3-compatible stores (empty: AWS).")
    storage_class = Type(
        None,
        klass="aistudio_jupyter.storage.base.Storage",
        allow_none=True,
        config=True,
        help="Storage backend class, built with storage_url (and endpoint_url=s3_endpoint_url when it takes one). Default: by storage_url's scheme, LocalStorage for file://, S3Storage for s3://.",
    )
    upload_cleanup_interval = Float(600.0, config=True, help="Seconds between sweeps that expire stale uploads and delete their bytes (also run at start-up).")
    db_pool_size = Int(8, config=True, help="Connections kept open per server process (PostgreSQL).")
    db_max_overflow = Int(8, config=True, help="Extra connections allowed under load (PostgreSQL).")
    db_pool_timeout = Float(10.0, config=True, help="Seconds to wait for a pooled connection before answering 503.")
    db_connect_timeout = Int(5, config=True, help="Seconds to wait when connecting to the database.")
    db_retry_interval = Float(2.0, config=True, help="While the database is down, seconds between reconnection attempts.")
    migrate_on_start = Bool(True, config=True, help="Apply database migrations at start-up (under a lock shared by all servers).")
    identity_mode = Enum(
        ["auto", "owner", "named"],
        "auto",
        config=True,
        help="Who the principal is. 'owner': every request acts as `owner` (a single-user server). 'named': the identity provider's username "
        "(JupyterHub, custom providers). 'auto': 'owner' under Jupyter's built-in token/password providers, which invent anonymous names, else 'named'.",
    )
    owner = Unicode(config=True, help="The server's owner, the principal of single-user servers. Default: the OS user.")
    teams = Dict(config=True, help='Teams: {"vision": {"members": ["ann", "bo"], "editors": ["ann"]}}. JupyterHub groups are teams too.')
    tiers = Dict(config=True, help="Tier name → quotas; keys as in the built-in 'default' tier, which this may override.")
    user_tiers = Dict(config=True, help="Username → tier name.")
    group_tiers = Dict(config=True, help="JupyterHub group → tier name; the highest-priority tier wins.")
    price_per_gpu_hour = Float(0.0, config=True, help="Price of one GPU-hour, for cost reports and budgets.")
    max_json_bytes = Int(1024 * 1024, config=True, help="Largest JSON request body accepted (bigger uploads go through tus).")
    kernel_token_ttl = Float(30 * 24 * 3600.0, config=True, help="Lifetime in seconds of the token handed to this server's kernels.")
    freeze_startup_objects = Bool(
        True,
        config=True,
        help="Once the server is up, move the objects allocated at start-up out of the garbage collector's reach (gc.freeze). "
        "Each full collection otherwise rescans them (~300k in a JupyterLab server), stalling every request ~80 ms (benchmarks/README.md).",
    )

    @default("database_url")
    def _default_database_url(self) -> str:
        return os.environ.get("AISTUDIO_DATABASE_URL") or default_sqlite_url(jupyter_data_dir())

    @default("storage_url")
    def _default_storage_url(self) -> str:
        return os.environ.get("AISTUDIO_STORAGE_URL") or (Path(jupyter_data_dir()) / "aistudio" / "storage").as_uri()

    @default("owner")
    def _default_owner(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # no passwd entry in some containers
            return "owner"

    @property
    def tier_table(self) -> dict[str, dict]:
        table = {"default": dict(DEFAULT_TIER)}
        for name, quotas in self.tiers.items():
            table[name] = {**table.get(name, DEFAULT_TIER), **quotas}
        return table

    routes = ROUTES

    def initialize_settings(self) -> None:
        db = Database(
            self.database_url,
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            pool_timeout=self.db_pool_timeout,
            connect_timeout=self.db_connect_timeout,
            retry_interval=self.db_retry_interval,
            migrate=self.migrate_on_start,
            log=self.log,
        )
        self.services = Services.build(db, parent=self, tiers=self.tier_table, price_per_gpu_hour=self.price_per_gpu_hour, storage=self.build_storage())
        self._start_upload_cleanup()
        self.settings["aistudio"] = self
        self._stopping = threading.Event()
        self.kernel_token_id: str | None = None
        self._hand_kernels_a_token()
        if self.freeze_startup_objects:
            self.serverapp.io_loop.add_callback(self._freeze_startup_objects)
        self.log.info("AI Studio %s: database %s, storage %s", __version__, db.url.render_as_string(hide_password=True), self.storage_url)

    def build_storage(self):
        """The configured Storage (DESIGN §9)."""
        import inspect

        from .storage import storage_from_url

        if self.storage_class is None:
            return storage_from_url(self.storage_url, s3_endpoint_url=self.s3_endpoint_url)
        takes_endpoint = "endpoint_url" in inspect.signature(self.storage_class).parameters
        return self.storage_class(self.storage_url, **({"endpoint_url": self.s3_endpoint_url or None} if takes_endpoint else {}))

    def _start_upload_cleanup(self) -> None:
        from tornado.ioloop import PeriodicCallback

        async def sweep() -> None:
            try:
                await self.services.uploads.clean_up()
            except Exception as exc:  # the database or storage may be down; the next sweep retries
                self.log.warning("AI Studio upload clean-up failed: %s", f"{type(exc).__name__}: {exc}"[:300])

        self._upload_cleanup = PeriodicCallback(sweep, self.upload_cleanup_interval * 1000)

        async def start() -> None:
            # on the server's running loop, which PeriodicCallback binds to when started
            self._upload_cleanup.start()
            try:
                await self.services.start()
            except Exception:
                self.log.error("AI Studio: a service failed to start", exc_info=True)
            await sweep()

        self.serverapp.io_loop.add_callback(start)

    def _freeze_startup_objects(self) -> None:
        # on the running loop: every extension has loaded, and what start-up left unreachable
        # is collected first, since a frozen object is never collected
        gc.collect()
        gc.freeze()

    def initialize_handlers(self) -> None:
        self.handlers.extend((route_pattern(t), h) for t, h in self.routes)
        self.handlers.append((API_PREFIX + "/.*", NotFoundHandler))

    # -- kernels ---------------------------------------------------------------------------

    #: the variables kernels inherit; the client reads them (see runtime/client.py)
    KERNEL_ENV = ("AISTUDIO_URL", "AISTUDIO_TOKEN", "AISTUDIO_CA_FILE")

    def kernel_api_url(self) -> str:
        """The API URL as seen from a kernel on this host."""
        app = self.serverapp
        ip = app.ip if app.ip not in ("", "0.0.0.0", "::", "*", "localhost") else "127.0.0.1"
        host = f"[{ip}]" if ":" in ip else ip
        scheme = "https" if app.certfile else "http"
        return f"{scheme}://{host}:{app.port}" + url_path_join(app.base_url, API_PREFIX)

    def _hand_kernels_a_token(self) -> None:
        """Put the API URL and a scoped token in the environment every kernel inherits.

        The token is generated now and registered (hashed) in the database as soon as the
        database answers, so a server that starts while the database is down still starts.
        """
        from .services.tokens import PREFIX

        import secrets

        token = PREFIX + secrets.token_urlsafe(32)
        # restored at stop, so a later server in the same process (tests, embedding apps)
        # never hands its kernels this server's revoked token
        self._env_before = {name: os.environ.get(name) for name in self.KERNEL_ENV}
        os.environ["AISTUDIO_TOKEN"] = token
        if self.serverapp.certfile and not os.environ.get("AISTUDIO_CA_FILE"):
            # a self-signed server certificate is its own CA; an admin's CA file wins
            os.environ["AISTUDIO_CA_FILE"] = self.serverapp.certfile
        self._publish_kernel_url()
        # the server binds its port after extensions load and moves on when the configured
        # port is taken (a second `jupyter lab` gets 8889), so publish again once it listens
        self.serverapp.io_loop.add_callback(self._publish_kernel_url)

        def register() -> None:
            attempts = 0
            while not self._stopping.is_set():
                try:
                    self.services.db.ensure_ready()
                    _, self.kernel_token_id = self.services.tokens.mint(
                        self.owner_for_kernels(), f"kernels of {self.kernel_api_url()}", "kernel", ttl=self.kernel_token_ttl, token=token
                    )
                    return
                except Conflict:
                    # an earlier attempt committed but its answer was lost: the hash is there
                    self.kernel_token_id = self.services.tokens.id_of(token)
                    return
                except Exception as exc:
                    # once, not every retry: the database logs the outage and its end itself
                    attempts += 1
                    (self.log.warning if attempts == 1 else self.log.debug)("AI Studio: kernel token not registered yet (%s); retrying", type(exc).__name__)
                    self._stopping.wait(self.db_retry_interval)

        threading.Thread(target=register, name="aistudio-kernel-token", daemon=True).start()

    def _publish_kernel_url(self) -> None:
        os.environ["AISTUDIO_URL"] = self.kernel_api_url()

    def owner_for_kernels(self) -> str:
        """Whose identity this server's kernels carry: the single user this server runs for."""
        hub_user = os.environ.get("JUPYTERHUB_USER")
        if hub_user and self.identity_mode != "owner":
            return hub_user
        return self.owner

    async def stop_extension(self) -> None:
        self._stopping.set()
        if self.freeze_startup_objects:
            gc.unfreeze()  # a process that starts servers again (tests) must not pile them up
        if getattr(self, "_upload_cleanup", None) is not None:
            self._upload_cleanup.stop()
        await self.services.stop()
        for name, value in getattr(self, "_env_before", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self.kernel_token_id:
            try:
                self.services.tokens.revoke(self.kernel_token_id)
            except Exception:  # the database may be gone at shutdown; the token expires anyway
                self.log.debug("could not revoke kernel token", exc_info=True)
        self.services.close()
