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
from .runtime import events  # noqa: E402 -- ais.events.subscribe(...)
from .runtime.tracking import Run, track  # noqa: E402
from .runtime.training import TrainJob, train  # noqa: E402

__all__ = [
    "APIError",
    "Client",
    "Dataset",
    "Record",
    "Run",
    "TrainJob",
    "__version__",
    "agents",
    "client",
    "datasets",
    "deployments",
    "events",
    "health",
    "jobs",
    "me",
    "models",
    "track",
    "train",
]


def _jupyter_server_extension_points() -> list[dict]:
    from .app import AIStudio

    return [{"module": "aistudio_jupyter", "app": AIStudio}]
