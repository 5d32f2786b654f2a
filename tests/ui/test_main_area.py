"""The sidebar's Monitor and Explore buttons: the notebook's training monitor and dataset
explorer in JupyterLab's main area, with no notebook and no kernel.

The job is a real script job logging metrics; the dataset is a real upload. The tab runs the
same ES module a notebook widget runs, served by ``/widget-modules/{name}``; the Lab sessions
and kernels APIs show that nothing started a kernel for it.
"""

from __future__ import annotations

import re

import httpx
import pyarrow as pa
from playwright.sync_api import expect

from ..browser.test_lab import for_docs, points, wait_for
from .test_sidebar import open_sidebar

TRAIN = """
import time
import aistudio_jupyter as ais
with ais.Run.current() as run:
    for step in range(600):
        run.log({"train/loss": 1.0 / (step + 1)}, step=step)
        print(f"tick {step}", flush=True)
        time.sleep(0.1)
"""
ROWS = 5000


def kernels(lab) -> list[dict]:
    return httpx.get(lab.url("api/kernels"), headers=lab.auth(), timeout=10).json()


def main_area_tab(page, label: str):
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=label)


def test_monitor_opens_in_a_tab_and_follows_the_running_job_without_a_kernel(lab, page, artifacts):
    (lab.root / "train_main_area.py").write_text(TRAIN)
    assert kernels(lab) == [] and lab.sessions() == []
    sidebar = open_sidebar(page, lab)
    jobs = sidebar.locator('[data-testid="ais-jobs"]')
    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        created = api.post("/jobs", json={"name": "main-area-train", "kind": "script", "spec": {"path": "train_main_area.py"}})
        assert created.status_code == 201, created.text
        job = created.json()
        try:
            row = jobs.locator(f'[data-testid="ais-job-{job["id"]}"]')
            expect(row).to_have_attribute("data-state", "running", timeout=60_000)
            row.locator('[data-testid="ais-job-monitor"]').click()

            view = page.locator(f'[data-testid="ais-hosted-monitor"][data-id="{job["id"]}"]')
            expect(view).to_be_visible()
            expect(main_area_tab(page, "Monitor: main-area-train")).to_have_count(1)
            expect(view.locator('[data-testid="ais-monitor-status"]')).to_have_text("running", timeout=30_000)
            canvas = view.locator("canvas[data-key='train/loss']")
            expect(canvas).to_be_visible(timeout=30_000)
            # the chart keeps rising while the job runs: the tab follows the events socket itself
            seen = [points(canvas)]
            for _ in range(3):
                seen.append(wait_for(lambda: points(canvas) > seen[-1] and points(canvas), 15, f"the chart stopped at {seen[-1]} points"))
            assert api.get(f"/jobs/{job['id']}").json()["state"] == "running"
            expect(view.locator('[data-testid="ais-monitor-log"]')).to_contain_text("tick", timeout=15_000)
            shot = artifacts / "ui-main-area-monitor.png"
            page.screenshot(path=str(shot))
            for_docs(shot, "sidebar-monitor.png")

            # no kernel was started for it
            assert kernels(lab) == [] and lab.sessions() == []

            # the button again activates the same tab rather than opening a second one
            row.locator('[data-testid="ais-job-monitor"]').click()
            expect(main_area_tab(page, "Monitor: main-area-train")).to_have_count(1)
            assert page.locator('[data-testid="ais-hosted-monitor"]').count() == 1

            # a page reload restores the tab, which loads its state again and keeps following
            before = points(canvas)
            page.goto(lab.url("lab"))
            view = page.locator(f'[data-testid="ais-hosted-monitor"][data-id="{job["id"]}"]')
            expect(view).to_be_visible(timeout=60_000)
            canvas = view.locator("canvas[data-key='train/loss']")
            wait_for(lambda: points(canvas) > before, 30, f"the restored monitor has {points(canvas)} points, not more than {before}")
            assert kernels(lab) == []
        finally:
            api.post(f"/jobs/{job['id']}/cancel", json={})
    assert not page.dialogs
    assert not page.console_errors, page.console_errors


def test_explore_opens_the_grid_in_a_tab_and_scrolls_to_the_last_row(lab, page, studio, artifacts):
    n = pa.array(range(ROWS), pa.int64())
    table = pa.table({"id": n, "label": pa.array([f"row-{i}" for i in range(ROWS)]), "score": pa.array([i / ROWS for i in range(ROWS)])})
    version = studio.datasets.upload(table, name="main-area-rows", progress=False)
    assert version["row_count"] == ROWS
    assert kernels(lab) == []

    sidebar = open_sidebar(page, lab)
    row = sidebar.locator('[data-testid="ais-dataset-list"] li[data-name="main-area-rows"]')
    expect(row).to_be_visible(timeout=30_000)
    row.locator('[data-testid="ais-dataset-explore"]').click()

    view = page.locator(f'[data-testid="ais-hosted-explorer"][data-id="{version["dataset_id"]}"]')
    expect(view).to_be_visible()
    expect(main_area_tab(page, "Explore: main-area-rows")).to_have_count(1)
    grid = view.locator('[data-testid="ais-explorer-grid"]')
    expect(view.locator('[data-testid="ais-explorer-title"]')).to_have_text("main-area-rows")
    expect(view.locator('[data-testid="ais-explorer-status"]')).to_contain_text("of 5,000")
    expect(grid).to_have_attribute("data-state", "ready")
    expect(grid.locator("[data-row-index='0']")).to_contain_text("row-0")
    page.screenshot(path=str(artifacts / "ui-main-area-explorer.png"))

    # to the end: the pages come from /rows, fetched by the tab itself
    grid.evaluate("(el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
    last = grid.locator(f"[data-row-index='{ROWS - 1}']")
    expect(last).to_contain_text(f"row-{ROWS - 1}", timeout=20_000)
    expect(last).to_be_in_viewport()
    # (the status counts whole rows in view: the last one may be cut by the horizontal scrollbar)
    expect(view.locator('[data-testid="ais-explorer-status"]')).to_contain_text(re.compile(r"–(4,999|5,000) of 5,000"))
    page.screenshot(path=str(artifacts / "ui-main-area-explorer-end.png"))

    assert kernels(lab) == [] and lab.sessions() == []
    assert not page.dialogs
    assert not page.console_errors, page.console_errors
