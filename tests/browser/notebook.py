"""Driving a notebook in JupyterLab through Playwright: open, run cells, wait, find widgets."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from .lab import LabServer

#: a prompt that shows an execution count: the cell ran
_RAN = re.compile(r"^\[\d+\]:$")


class Notebook:
    """One notebook open in Lab: ``nb = Notebook.open(page, lab, "x.ipynb"); nb.run_cell(0)``."""

    def __init__(self, page: Page, lab: LabServer, name: str):
        self.page = page
        self.lab = lab
        self.name = name
        self.panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    @classmethod
    def open(cls, page: Page, lab: LabServer, name: str, timeout: float = 60_000) -> Notebook:
        """Open ``name`` by URL (``/lab/tree/<name>``) and wait for its kernel to be idle."""
        # ?reset: a fresh workspace, not the tabs an earlier test left open
        page.goto(lab.login_url(f"lab/tree/{name}?reset"))
        nb = cls(page, lab, name)
        expect(nb.cells.first).to_be_visible(timeout=timeout)
        nb.wait_kernel_idle(timeout)
        return nb

    @classmethod
    def open_from_file_browser(cls, page: Page, lab: LabServer, name: str, timeout: float = 60_000) -> Notebook:
        """Open ``name`` the way a user does: double-click it in Lab's file browser."""
        page.goto(lab.login_url("lab?reset"))
        item = page.locator(f".jp-DirListing-item[title^='Name: {name}']")
        item.dblclick(timeout=timeout)
        nb = cls(page, lab, name)
        expect(nb.cells.first).to_be_visible(timeout=timeout)
        nb.wait_kernel_idle(timeout)
        return nb

    # -- cells ------------------------------------------------------------------------------

    @property
    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        """The cell's whole output area (all its outputs)."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    def run_cell(self, index: int, wait: bool = True, timeout: float = 60_000) -> Locator:
        """Select cell ``index`` (command mode) and press Shift+Enter; by default wait until it ran."""
        prompt = self.cell(index).locator(".jp-InputArea-prompt")
        prompt.click()
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.wait_cell_done(index, timeout)
        return self.cell(index)

    def run_all(self, timeout: float = 120_000) -> None:
        """Run > Run All Cells, then wait until every cell has an execution count."""
        self.page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
        self.page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        code = self.cells.evaluate_all("cells => cells.flatMap((c, i) => c.classList.contains('jp-CodeCell') ? [i] : [])")
        for i in code:
            self.wait_cell_done(i, timeout)

    def execution_count(self, index: int) -> str:
        """What the prompt holds: ``"[3]:"``, ``"[*]:"`` while running or queued, ``"[ ]:"``."""
        return self.cell(index).locator(".jp-InputArea-prompt").inner_text().strip()

    def wait_cell_running(self, index: int, timeout: float = 30_000) -> None:
        expect(self.cell(index).locator(".jp-InputArea-prompt")).to_have_text("[*]:", timeout=timeout)

    def wait_cell_done(self, index: int, timeout: float = 60_000) -> None:
        expect(self.cell(index).locator(".jp-InputArea-prompt")).to_have_text(_RAN, timeout=timeout)
        # stderr (warnings, progress bars) is not a failure; a traceback is
        tracebacks = self.output(index).locator("[data-mime-type='application/vnd.jupyter.error']")
        if tracebacks.count():
            raise AssertionError(f"cell {index} raised:\n{tracebacks.first.inner_text()}")

    # -- kernel -----------------------------------------------------------------------------

    def kernel_state(self) -> str | None:
        """The notebook's kernel's execution state as the server sees it (the page may lag)."""
        for session in self.lab.sessions():
            if session["path"] == self.name:
                return session["kernel"]["execution_state"]
        return None

    def wait_kernel(self, state: str, timeout: float = 60_000) -> None:
        deadline = time.monotonic() + timeout / 1000
        while time.monotonic() < deadline:
            if self.kernel_state() == state:
                return
            time.sleep(0.2)
        raise AssertionError(f"the kernel is {self.kernel_state()!r}, not {state!r}, after {timeout / 1000:.0f}s")

    def wait_kernel_idle(self, timeout: float = 60_000) -> None:
        # the page shows the kernel's status once it is connected to it
        expect(self.panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(timeout=timeout)
        self.wait_kernel("idle", timeout)

    def wait_kernel_busy(self, timeout: float = 30_000) -> None:
        self.wait_kernel("busy", timeout)

    # -- widgets ----------------------------------------------------------------------------

    def widget(self, testid: str, cell: int | None = None) -> Locator:
        """An element of a rendered widget by its ``data-testid`` (in one cell's output, or anywhere)."""
        scope = self.output(cell) if cell is not None else self.panel
        return scope.locator(f"[data-testid='{testid}']")

    def widget_views(self, cell: int) -> Locator:
        """The widget views a cell rendered (ipywidgets/anywidget output)."""
        return self.output(cell).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.widget-view+json']")

    def screenshot(self, artifacts: Path, name: str, target: Locator | None = None) -> Path:
        path = artifacts / f"{name}.png"
        (target or self.page).screenshot(path=str(path))
        return path

