"""Every notebook under notebooks/ runs top to bottom in a real kernel against a real server.

The kernel gets what a kernel started by a Jupyter server with AI Studio gets: the API URL and
a scoped token minted for its user, and nothing else to configure.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from aistudio_jupyter.services.tokens import TokenService
from aistudio_jupyter.store.session import Database

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no tours"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"clear the outputs of cells {dirty}"


# the tours document the client, not the database: one backend (the laptop default) is enough
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, live_server, tmp_path):
    db = Database(live_server.database_url)
    try:
        token, _ = TokenService(db=db).mint("alice", "notebook-test", "kernel")
    finally:
        db.close()
    # whatever this process inherited from another server must not leak into the kernel
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISTUDIO_", "JUPYTERHUB_"))}
    env.update(AISTUDIO_URL=live_server.api(), AISTUDIO_TOKEN=token)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    # cells ran; a failing cell raises CellExecutionError above
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
