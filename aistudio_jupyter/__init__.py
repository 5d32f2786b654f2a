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

__all__ = [
    "APIError",
    "Client",
    "Dataset",
    "Record",
    "__version__",
    "agents",
    "client",
    "datasets",
    "deployments",
    "health",
    "jobs",
    "me",
    "models",
]


def _jupyter_server_extension_points() -> list[dict]:
    from .app import AIStudio

    return [{"module": "aistudio_jupyter", "app": AIStudio}]
