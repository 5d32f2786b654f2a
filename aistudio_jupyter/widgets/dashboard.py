"""Dashboard: your datasets, jobs (live), models and deployments, and usage against quota.

Each section loads on its own: one that fails shows its error and a Retry while the others
render. Job states stay live in the browser through ``user:<you>`` events (a ``job`` event on
every status change of any of your jobs), without the kernel.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..runtime.client import APIError, Client
from .base import StudioWidget, friendly_error

#: section → the list route it shows
SECTIONS = {"datasets": "/datasets", "jobs": "/jobs", "models": "/models", "deployments": "/deployments"}


class Dashboard(StudioWidget):
    """Datasets, jobs, models, deployments and usage against quota, in one widget."""

    _module = "dashboard.js"

    me = traitlets.Dict(help="GET /me: identity, tier, quotas and usage.").tag(sync=True)
    datasets = traitlets.List(help="Most recently updated datasets.").tag(sync=True)
    jobs = traitlets.List(help="Most recently updated jobs.").tag(sync=True)
    models = traitlets.List(help="Most recently updated models.").tag(sync=True)
    deployments = traitlets.List(help="Most recently updated deployments.").tag(sync=True)
    section_errors = traitlets.Dict(help="Section (me, datasets, jobs, models, deployments) → its error, for those that failed.").tag(sync=True)
    since = traitlets.Dict(help="Topic → the last event seq already reflected in ``jobs``.").tag(sync=True)
    limit = traitlets.Int(20, help="Rows per section.").tag(sync=True)
    revision = traitlets.Int(0, help="Bumped by every load.").tag(sync=True)

    def __init__(self, *, client: Client | None = None, limit: int = 20, **traits: Any) -> None:
        super().__init__(client=client, limit=limit, **traits)
        self.refresh()

    def refresh(self) -> None:
        """Load every section again; each one that fails gets its own error."""
        self.loading = True
        try:
            self._load()
        finally:
            self.loading = False

    def _load(self) -> None:
        errors: dict[str, dict] = {}
        loaded: dict[str, Any] = {}
        me = self._section("me", errors, lambda: self.client.request("GET", "/me"))
        since: dict[str, int] = {}
        if me is not None:
            # before the job list: status changes after this seq are replayed to the browser
            since = self._heads([f"user:{me['username']}"])
        for name, path in SECTIONS.items():
            page = self._section(name, errors, lambda path=path: self.client.request("GET", path, params={"limit": self.limit, "sort": "-updated_at"}))
            loaded[name] = page["items"] if page is not None else []
        with self.hold_sync():
            self.me = me or {}
            for name, items in loaded.items():
                setattr(self, name, items)
            self.section_errors = errors
            self.since = since
            self.revision += 1
            # the widget-wide error: only when nothing at all could be loaded
            self.error = errors["me"] if len(errors) == len(SECTIONS) + 1 else None

    def _section(self, name: str, errors: dict, load: Any) -> Any:
        try:
            return load()
        except (APIError, ConnectionError, TimeoutError) as exc:
            errors[name] = friendly_error(exc)
            return None


def dashboard(**options: Any) -> Dashboard:
    """``ais.dashboard()``: datasets, jobs (live), models, deployments and usage against quota."""
    return Dashboard(**options)
