"""UI fixtures: H7's browser fixtures (tests/browser) plus a Lab that loads the sidebar.

The sidebar is the prebuilt extension in ``aistudio_jupyter/labextension`` (what the wheel
ships). It is linked into the Lab process's own JUPYTER_DATA_DIR, so the test sees exactly
this checkout's build whatever is installed in the venv. When the build is missing it is made
here (npm ci + production build, a few minutes); without Node that fails in CI and skips on a
laptop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# the browser, page, artifacts fixtures and the failure-screenshot hook, shared with tests/browser
from ..browser.conftest import (  # noqa: F401
    _require_chromium,
    artifacts,
    browser,
    jp_asyncio_loop,
    jp_server_cleanup,
    page,
    studio,
    pytest_runtest_makereport,
)
from ..browser.lab import LabServer

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "labextension"
BUILT = REPO / "aistudio_jupyter" / "labextension"


def require_node() -> str:
    npm = shutil.which("npm")
    if npm and shutil.which("node"):
        return npm
    reason = "Node.js/npm not on PATH: the sidebar's JavaScript cannot be built or tested"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def npm_ci(npm: str) -> None:
    if not (LABEXTENSION / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=LABEXTENSION, check=True, timeout=900)


@pytest.fixture(scope="session")
def built_labextension() -> Path:
    """The production build of the sidebar, built now when the checkout has none."""
    if not (BUILT / "package.json").exists():
        npm = require_node()
        npm_ci(npm)
        subprocess.run([npm, "run", "build:prod"], cwd=LABEXTENSION, check=True, timeout=900)
    return BUILT


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sqlite_template, built_labextension):
    """``jupyter lab`` with AI Studio on its own SQLite database and the sidebar extension."""
    _require_chromium()
    workdir = tmp_path_factory.mktemp("lab")
    database = workdir / "aistudio.db"
    shutil.copy(sqlite_template, database)
    server = LabServer(workdir, f"sqlite:///{database}")
    target = server.workdir / "data" / "labextensions" / "aistudio-jupyter"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(built_labextension, target_is_directory=True)
    with server:
        yield server
