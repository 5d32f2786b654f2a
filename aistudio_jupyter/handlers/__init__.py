"""Tornado handlers, one module per resource; each module ends with its route table."""

from __future__ import annotations

from . import agents, compute, datasets, deployments, jobs, meta, models, rows, uploads, versions

#: (path template relative to {base_url}aistudio/api, handler class), in match order
ROUTES = [
    *meta.default_handlers,
    *datasets.default_handlers,
    *versions.default_handlers,
    *rows.default_handlers,
    *uploads.default_handlers,
    *models.default_handlers,
    *jobs.default_handlers,
    *agents.default_handlers,
    *deployments.default_handlers,
    *compute.default_handlers,
]
