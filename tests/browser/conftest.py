"""Browser fixtures: one JupyterLab process and one headless Debian Chromium per test module.

Chromium is the system's (``/usr/bin/chromium``, Debian's package), never a browser that
Playwright downloads: CI installs it with apt (.ci/run), and in CI its absence fails the
tests; on a laptop without it they are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from ..live import JUPYTER_TOKEN
from .lab import LabServer

CHROMIUM = os.environ.get("AISTUDIO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("AISTUDIO_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
VIEWPORT = {"width": 1280, "height": 900}


def _require_chromium() -> None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set AISTUDIO_TEST_CHROMIUM)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# pytest-jupyter's autouse fixtures assume an in-process server and the thread's event loop;
# here the server is a process and the thread's loop is Playwright's, running while the browser
# is open, which they would try to drive and close
@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup():
    yield


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (``$AISTUDIO_TEST_ARTIFACTS`` or tests/browser/artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sqlite_template):
    """A ``jupyter lab`` process with AI Studio on its own SQLite database."""
    _require_chromium()
    workdir = tmp_path_factory.mktemp("lab")
    database = workdir / "aistudio.db"
    shutil.copy(sqlite_template, database)
    server = LabServer(workdir, f"sqlite:///{database}")
    with server:
        yield server


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def studio(lab):
    """The runtime client a user holds, against the Lab server (the owner, alice)."""
    from aistudio_jupyter.runtime.client import Client

    with Client(lab.api(), JUPYTER_TOKEN) as client:
        yield client


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict]()


@pytest.fixture
def page(request, browser, lab, artifacts):
    """A fresh browser context and page; a screenshot of it is kept when the test fails.

    Every page dialog (``alert`` and friends) is recorded in ``page.dialogs`` and dismissed, so
    a test can assert that none fired.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.console_errors = []
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    yield page
    reports = request.node.stash.get(_REPORTS, {})
    if any(r.failed for r in reports.values()):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(artifacts / f"FAILED-{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"no failure screenshot: {exc}")
    context.close()
    # a test's kernel (and any training loop in it) ends with the test
    lab.shutdown_kernels()
