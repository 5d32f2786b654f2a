"""The widgets in a real JupyterLab, driven by headless Debian Chromium.

One Lab process and one browser serve the whole module (starting them is most of the cost).
Each test writes its notebook into Lab's root, opens it by URL, runs its cells with
Shift+Enter and watches the widget's DOM, as a user would.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect

from aistudio_jupyter.runtime.client import Client

from ..live import JUPYTER_TOKEN
from .notebook import Notebook

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
XSS = "<img src=x onerror=alert(1)>"

PROBE = '''
import anywidget, traitlets

class Probe(anywidget.AnyWidget):
    _esm = """
    export default { render({ model, el }) {
        const span = document.createElement("span");
        span.dataset.testid = "probe";
        const show = () => { span.textContent = "count " + model.get("n"); };
        model.on("change:n", show); show(); el.appendChild(span);
    } };
    """
    n = traitlets.Int(1).tag(sync=True)

probe = Probe()
probe
'''


def for_docs(shot: Path, name: str) -> None:
    """Keep a screenshot as the README's picture of the widget.

    Only on request (AISTUDIO_UPDATE_SCREENSHOTS=1) or when the picture is missing: every run
    takes a slightly different picture, and a test run should not dirty the checkout."""
    target = DOCS_SCREENSHOTS / name
    if os.environ.get("AISTUDIO_UPDATE_SCREENSHOTS") == "1" or not target.exists():
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def points(canvas) -> int:
    return int(canvas.get_attribute("data-points") or 0)


def wait_for(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(message)


def test_an_anywidget_renders_and_syncs_in_lab(lab, page):
    """The toolchain: Lab serves anywidget's labextension; a kernel's widget renders and syncs."""
    name = lab.write_notebook("probe", PROBE, "probe.n = 41 + 1")
    nb = Notebook.open_from_file_browser(page, lab, name)
    nb.run_cell(0)
    expect(nb.widget("probe", cell=0)).to_have_text("count 1")
    nb.run_cell(1)
    expect(nb.widget("probe", cell=0)).to_have_text("count 42")


# -- the training monitor, while the kernel is busy ------------------------------------------

MONITOR_SETUP = """
import time
import aistudio_jupyter as ais
run = ais.track("{name}", config={{"lr": 0.01}})
m = ais.monitor(run)
m
"""

# a training loop that keeps the kernel busy; it stops early when the job is canceled
TRAINING_LOOP = """
step = 0
for step in range({steps}):
    if run.canceled:
        break
    run.log({{"loss": 1.0 / (step + 1), "accuracy": step / {steps}}}, step=step)
    time.sleep({pause})
print("canceled at" if run.canceled else "finished at", step)
run.finish()
"""


def test_monitor_chart_gains_points_while_the_training_cell_runs(lab, page, artifacts):
    name = lab.write_notebook("monitor-live", MONITOR_SETUP.format(name="browser-live"), TRAINING_LOOP.format(steps=60, pause=0.2))
    nb = Notebook.open(page, lab, name)
    nb.run_cell(0)
    status = nb.widget("ais-monitor-status", cell=0)
    expect(status).to_be_visible()

    nb.run_cell(1, wait=False)
    nb.wait_cell_running(1)
    nb.wait_kernel_busy()
    canvas = nb.output(0).locator("canvas[data-key='loss']")
    seen = [points(canvas)]
    # three rises while the cell is still running: the chart follows the events WebSocket,
    # not the kernel, which cannot answer anything until the loop ends
    for _ in range(3):
        seen.append(wait_for(lambda: points(canvas) > seen[-1] and points(canvas), 10, f"the chart stopped at {seen[-1]} points"))
        assert nb.execution_count(1) == "[*]:", "the training cell ended before the chart was seen to move"
        assert nb.kernel_state() == "busy"
    # a picture with a curve in it, still mid-training
    wait_for(lambda: points(canvas) >= 25, 15, f"the chart stopped at {points(canvas)} points")
    assert nb.execution_count(1) == "[*]:"
    shot = nb.screenshot(artifacts, "monitor-mid-training", nb.output(0))
    for_docs(shot, "monitor.png")
    expect(status).to_contain_text("running", ignore_case=True)

    nb.wait_cell_done(1, timeout=60_000)
    expect(nb.output(1)).to_contain_text("finished at 59")
    expect(status).to_contain_text("succeeded", ignore_case=True, timeout=15_000)
    # every point reaches the chart
    wait_for(lambda: points(canvas) >= 60, 10, f"the chart holds {points(canvas)} points, not 60")


def test_cancel_in_the_monitor_ends_the_job_while_the_kernel_is_busy(lab, page, studio):
    name = lab.write_notebook("monitor-cancel", MONITOR_SETUP.format(name="browser-cancel"), TRAINING_LOOP.format(steps=1200, pause=0.1))
    nb = Notebook.open(page, lab, name)
    nb.run_cell(0)
    nb.run_cell(1, wait=False)
    nb.wait_cell_running(1)
    canvas = nb.output(0).locator("canvas[data-key='loss']")
    wait_for(lambda: points(canvas) >= 3, 15, "no points reached the chart")

    nb.widget("ais-monitor-cancel", cell=0).click()
    # the monitor may ask first; a confirm step inside the widget is a button, never a dialog
    confirm = nb.widget("ais-monitor-cancel-confirm", cell=0)
    if confirm.count():
        confirm.click()
    expect(nb.widget("ais-monitor-status", cell=0)).to_contain_text("cancel", ignore_case=True, timeout=15_000)
    # the loop in the busy kernel saw the cancel and stopped long before its 1200 steps (2 min)
    nb.wait_cell_done(1, timeout=30_000)
    expect(nb.output(1)).to_contain_text("canceled at", timeout=10_000)
    [job] = [j for j in studio.jobs.list() if j.name == "browser-cancel"]
    assert job.state == "canceled"
    assert not page.dialogs


# -- the dataset explorer ---------------------------------------------------------------------

ROWS = 1_000_000


@pytest.fixture(scope="module")
def million(lab, tmp_path_factory):
    """A 1,000,000-row dataset, uploaded before the notebook opens."""
    path = tmp_path_factory.mktemp("million") / "million.parquet"
    n = pa.array(range(ROWS), pa.int64())
    table = pa.table({"id": n, "value": pc.multiply(n, 0.5), "label": pc.binary_join_element_wise("row-", pc.cast(n, pa.string()), "")})
    pq.write_table(table, path, row_group_size=100_000)
    with Client(lab.api(), JUPYTER_TOKEN, timeout=120) as client:
        version = client.datasets.upload(path, name="million", progress=False)
    assert version["row_count"] == ROWS
    return version


EXPLORE = """
import aistudio_jupyter as ais
ais.explore(ais.datasets.get("{name}"))
"""


def grid_rows(nb):
    return nb.output(0).locator("[data-testid='ais-explorer-grid'] [data-row-index]")


def row_indexes(nb) -> list[int]:
    return [int(i) for i in grid_rows(nb).evaluate_all("rows => rows.map(r => r.dataset.rowIndex)")]


def test_explorer_pages_through_a_million_rows(lab, page, million, artifacts):
    name = lab.write_notebook("explore", EXPLORE.format(name="million"))
    nb = Notebook.open(page, lab, name)
    nb.run_cell(0)
    grid = nb.widget("ais-explorer-grid", cell=0)
    expect(grid).to_be_visible()
    expect(nb.widget("ais-explorer-title", cell=0)).to_contain_text("million")
    expect(nb.widget("ais-explorer-status", cell=0)).to_contain_text("1,000,000")
    expect(grid_rows(nb).first).to_contain_text("row-0")
    shot = nb.screenshot(artifacts, "explorer", nb.output(0))
    for_docs(shot, "explorer.png")

    # the middle, then the end: the grid fetches those pages from /rows, the kernel is idle
    for target in (ROWS // 2, ROWS - 1):
        grid.evaluate("(el, frac) => { el.scrollTop = frac * (el.scrollHeight - el.clientHeight); el.dispatchEvent(new Event('scroll')); }", target / (ROWS - 1))
        wait_for(lambda: any(abs(i - target) < 2_000 for i in row_indexes(nb)), 20, f"the grid never showed rows near {target}: {row_indexes(nb)[:3]}…")
        shown = min(row_indexes(nb), key=lambda i: abs(i - target))
        # rows render the data itself, as text
        expect(grid.locator(f"[data-row-index='{shown}']")).to_contain_text(f"row-{shown}", timeout=20_000)
    assert max(row_indexes(nb)) == ROWS - 1
    expect(nb.widget("ais-explorer-status", cell=0)).to_contain_text(re.compile(r"–1,000,000 of 1,000,000"))
    # the kernel did none of it
    assert nb.execution_count(0) == "[1]:"
    nb.screenshot(artifacts, "explorer-end", nb.output(0))
    assert not page.dialogs


# -- user strings are text ---------------------------------------------------------------------


def test_a_dataset_named_like_markup_shows_as_text(lab, page, studio, artifacts):
    """A dataset's strings are plain text on the page: no element made from them, no script run.
    The markup is the dataset's name, a column name and a value."""
    table = pa.table({XSS: [XSS, "<b>bold</b>"], "n": [1, 2]})
    version = studio.datasets.upload(table, name=XSS, progress=False)
    dataset = studio.datasets.get(version["dataset_id"])
    assert dataset.name == XSS
    name = lab.write_notebook("xss", f"import aistudio_jupyter as ais\nais.explore(ais.datasets.get({dataset.id!r}))")
    nb = Notebook.open(page, lab, name)
    nb.run_cell(0)
    out = nb.output(0)
    expect(nb.widget("ais-explorer-grid", cell=0)).to_be_visible()
    expect(nb.widget("ais-explorer-title", cell=0)).to_have_text(XSS)
    # the cell value and the column header arrive as text
    expect(out.get_by_text(XSS, exact=True).first).to_be_visible()
    expect(out).to_contain_text("<b>bold</b>")
    nb.screenshot(artifacts, "markup-as-text", out)
    assert out.locator("img").count() == 0
    assert out.locator("b").count() == 0
    page.wait_for_timeout(500)  # a broken image's onerror fires right after insertion
    assert not page.dialogs, page.dialogs


# -- the tour ----------------------------------------------------------------------------------

TOUR_WIDGETS = ["ais-dashboard", "ais-explorer-grid", "ais-validation-groups", "ais-builder-layers", "ais-monitor", "ais-model-card", "ais-deployment-card"]


def test_the_tour_renders_every_widget_in_lab(lab, page, artifacts):
    """notebooks/00-tour.ipynb, Run All in Lab: every widget renders, none shows an error."""
    shutil.copyfile(REPO / "notebooks" / "00-tour.ipynb", lab.root / "00-tour.ipynb")
    nb = Notebook.open(page, lab, "00-tour.ipynb")
    nb.run_all(timeout=240_000)
    for testid in TOUR_WIDGETS:
        expect(nb.widget(testid).first, testid).to_be_attached()
    nb.page.screenshot(path=str(artifacts / "tour.png"), full_page=True)
    errors = nb.panel.locator("[data-testid='ais-error']")
    assert errors.count() == 0, errors.all_inner_texts()
    assert not page.dialogs
