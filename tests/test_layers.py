"""The layering of DESIGN §2, checked on the source: data flows one way.

In a JupyterHub the services run in one central hub service and users' servers reach them over
the API, so nothing but ``services/`` and ``store/`` may touch the database, and services must
not know about tornado.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aistudio_jupyter"

#: layer → module prefixes it must never import (absolute names after resolving relative imports)
FORBIDDEN = {
    "handlers": ("sqlalchemy", "alembic", "aistudio_jupyter.store"),
    "services": ("tornado", "jupyter_server", "aistudio_jupyter.handlers"),
    "store": ("tornado", "jupyter_server", "aistudio_jupyter.handlers", "aistudio_jupyter.services"),
    "storage": ("tornado", "jupyter_server", "sqlalchemy", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers"),
    "schemas": ("sqlalchemy", "tornado", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers"),
    "executors": ("tornado", "jupyter_server", "sqlalchemy", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers"),
    "runtime": ("sqlalchemy", "tornado", "jupyter_server", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers"),
    # notebook widgets talk to the server only through the API (DESIGN §2)
    "widgets": ("sqlalchemy", "tornado", "jupyter_server", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers"),
    # model specs are shared by the server (estimates) and job processes (the trainer)
    # replicas hold no credentials and never reach the database; the supervisor is no handler
    "serving": ("jupyter_server", "aistudio_jupyter.handlers"),
    "modelspec": ("sqlalchemy", "tornado", "jupyter_server", "aistudio_jupyter.store", "aistudio_jupyter.services", "aistudio_jupyter.handlers", "aistudio_jupyter.runtime"),
}


def imports_of(path: Path, module: str | None = None) -> set[str]:
    module = module or ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def layer_files():
    for layer in FORBIDDEN:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            yield pytest.param(layer, path, id=str(path.relative_to(PACKAGE)))


@pytest.mark.parametrize("layer,path", list(layer_files()))
def test_layer_imports_only_downwards(layer, path):
    bad = sorted(i for i in imports_of(path) for prefix in FORBIDDEN[layer] if i == prefix or i.startswith(prefix + "."))
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {bad}"


def test_the_checker_sees_a_violation(tmp_path):
    # a checker that never fires proves nothing: feed it a handler importing the store
    fake = tmp_path / "probe.py"
    fake.write_text("from ..store.orm import Dataset\nimport sqlalchemy\n")
    assert {"aistudio_jupyter.store.orm", "sqlalchemy"} <= imports_of(fake, "aistudio_jupyter.handlers.probe")
