"""Tornado handlers, one module per resource; each module ends with its route table."""

from __future__ import annotations

from . import agents, checkpoints, compute, datasets, deployments, events, jobs, meta, metrics, model_versions, models, profiles, rows, runs, training, uploads, validation, versions, widget_modules

#: (path template relative to {base_url}aistudio/api, handler class), in match order
ROUTES = [
    *meta.default_handlers,
    *datasets.default_handlers,
    *versions.default_handlers,
    *rows.default_handlers,
    *profiles.default_handlers,
    *validation.default_handlers,
    *uploads.default_handlers,
    # before /models/{id}, which would match /models/train
    *training.default_handlers,
    *model_versions.default_handlers,
    *models.default_handlers,
    # before jobs: /jobs/interactive is not a job id
    *runs.default_handlers,
    *metrics.default_handlers,
    *jobs.default_handlers,
    *checkpoints.default_handlers,
    *agents.default_handlers,
    *deployments.default_handlers,
    *events.default_handlers,
    *compute.default_handlers,
    *widget_modules.default_handlers,
]
