"""AI Studio for Jupyter.

In a Jupyter server this package is a server extension (``aistudio``); in a kernel it is the
Python client: ``import aistudio_jupyter as ais; ais.datasets.list()``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .runtime.client import (  # noqa: E402
    APIError,
    Client,
    Record,
    agents,
    client,
    datasets,
    deployments,
    health,
    jobs,
    me,
    models,
)
from .runtime.datasets import Dataset  # noqa: E402
from .runtime.deployments import Deployment  # noqa: E402
from .runtime import events  # noqa: E402 -- ais.events.subscribe(...)
from .runtime.tracking import Run, track  # noqa: E402
from .runtime.training import Job, TrainJob, train  # noqa: E402

__all__ = [
    "APIError",
    "Client",
    "Dataset",
    "Deployment",
    "Job",
    "Record",
    "Run",
    "TrainJob",
    "__version__",
    "agents",
    "builder",
    "client",
    "dashboard",
    "datasets",
    "deployments",
    "events",
    "explore",
    "health",
    "jobs",
    "me",
    "models",
    "monitor",
    "track",
    "train",
]


# the widgets import anywidget and ipywidgets only when one is asked for
def monitor(job_or_run, **options):
    """A live TrainingMonitor of a job (a TrainJob, a job record or id, or an ``ais.track`` run)."""
    from .widgets.monitor import monitor as make

    return make(job_or_run, **options)


def dashboard(**options):
    """Your datasets, jobs, models, deployments and usage against quota, live."""
    from .widgets.dashboard import dashboard as make

    return make(**options)


def explore(dataset, **options):
    """A DatasetExplorer: page, sort, filter and profile a dataset without loading it here."""
    from .widgets.explorer import explore as make

    return make(dataset, **options)


def builder(spec=None, **options):
    """A ModelBuilder: compose layers with shape inference, cost estimate and export."""
    from .widgets.builder import builder as make

    return make(spec, **options)


def _jupyter_server_extension_points() -> list[dict]:
    from .app import AIStudio

    return [{"module": "aistudio_jupyter", "app": AIStudio}]
