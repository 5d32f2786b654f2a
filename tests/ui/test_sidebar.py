"""The AI Studio sidebar in a real JupyterLab, driven by headless Debian Chromium.

One Lab process and one browser serve the module. Everything the tests change goes through
the real server (jobs are real processes, uploads go through tus, validations run as jobs) and
every assertion reads the sidebar's DOM as a user sees it, without reloading the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[2]
DOCS_SHOT = REPO / "docs" / "screenshots" / "sidebar.png"
CSV = "sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n6.2,3.4,virginica\n5.9,3.0,virginica\n"


def open_sidebar(page, lab):
    # ?reset: the default layout, not the one an earlier test left (where the sidebar may be open)
    page.goto(lab.login_url("lab?reset"))
    tab = page.locator('.lm-TabBar-tab[data-id="aistudio-sidebar"]')
    expect(tab).to_be_visible(timeout=60_000)
    sidebar = page.locator('[data-testid="ais-sidebar"]')
    # Lab may still be activating its default panel: click until ours is the one shown (a click
    # on the current tab would collapse it, so never click when it is already visible)
    for _ in range(5):
        if sidebar.is_visible():
            break
        tab.click()
        page.wait_for_timeout(500)
    expect(sidebar).to_be_visible()
    expect(sidebar.locator('[data-testid="ais-connection"]')).to_have_text("live", timeout=30_000)
    return sidebar


def for_docs(shot: Path) -> None:
    """The README's picture: refreshed on request (AISTUDIO_UPDATE_SCREENSHOTS=1) or when missing,
    so a test run does not dirty the checkout."""
    if os.environ.get("AISTUDIO_UPDATE_SCREENSHOTS") == "1" or not DOCS_SHOT.exists():
        DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)


def test_a_job_appears_changes_state_live_and_is_canceled_from_the_panel(lab, page, artifacts):
    (lab.root / "sleeper.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n")
    sidebar = open_sidebar(page, lab)
    jobs = sidebar.locator('[data-testid="ais-jobs"]')
    expect(jobs).to_be_visible()

    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        created = api.post("/jobs", json={"name": "sleeper", "kind": "script", "spec": {"path": "sleeper.py"}})
        assert created.status_code == 201, created.text
        job = created.json()
        row = jobs.locator(f'[data-testid="ais-job-{job["id"]}"]')
        # listed and then moved through its states by events alone: the page is never reloaded
        expect(row).to_be_visible()
        expect(row).to_have_attribute("data-state", "running", timeout=60_000)
        expect(row.locator('[data-testid="ais-job-state"]')).to_have_text("running")

        row.locator('[data-testid="ais-job-logs"]').click()
        expect(row.locator('[data-testid="ais-job-log-text"]')).to_contain_text("sleeping", timeout=30_000)
        page.screenshot(path=str(artifacts / "ui-jobs-running.png"))

        row.locator('[data-testid="ais-job-cancel"]').click()
        expect(row).to_have_attribute("data-state", "canceled", timeout=60_000)
        expect(row.locator('[data-testid="ais-job-cancel"]')).to_have_count(0)
        assert api.get(f"/jobs/{job['id']}").json()["state"] == "canceled"

    # the state filter hides it among active jobs and shows it among canceled ones
    jobs.locator('[data-testid="ais-job-filter"]').select_option("active")
    expect(row).to_have_count(0)
    jobs.locator('[data-testid="ais-job-filter"]').select_option("canceled")
    expect(row).to_be_visible()
    assert not page.dialogs
    assert not page.console_errors


def test_a_dropped_file_is_uploaded_listed_and_validated(lab, page, artifacts):
    sidebar = open_sidebar(page, lab)
    drop = sidebar.locator('[data-testid="ais-dropzone"]')
    expect(drop).to_be_visible()
    # what a drag from the desktop delivers: a drop event whose DataTransfer holds a File
    transfer = page.evaluate_handle(
        """(csv) => { const t = new DataTransfer();
                     t.items.add(new File([csv], 'iris <b>flowers</b>.csv', {type: 'text/csv'}));
                     return t; }""",
        CSV,
    )
    drop.dispatch_event("dragover", {"dataTransfer": transfer})
    drop.dispatch_event("drop", {"dataTransfer": transfer})

    upload = sidebar.locator('[data-testid="ais-upload"]').first
    expect(upload).to_have_attribute("data-state", "completed", timeout=60_000)
    # the file name is shown as text, never parsed as markup
    expect(upload).to_contain_text("iris <b>flowers</b>.csv")
    assert sidebar.locator("b", has_text="flowers").count() == 0

    row = sidebar.locator('[data-testid="ais-dataset-list"] li[data-name="iris <b>flowers<-b>"]')
    expect(row).to_be_visible(timeout=30_000)
    # validation starts on completion and its result arrives as a dataset event
    expect(row.locator('[data-testid="ais-dataset-validation"]')).to_have_text("valid", timeout=120_000)

    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        datasets = api.get("/datasets", params={"q": "iris"}).json()["items"]
        assert [d["name"] for d in datasets] == ["iris <b>flowers<-b>"]
        assert datasets[0]["size_bytes"] == len(CSV)
        validations = api.get(f"/datasets/{datasets[0]['id']}/validations").json()["items"]
        assert validations and validations[0]["passed"] is True

    # search narrows the list through the API's q
    search = sidebar.locator('[data-testid="ais-dataset-search"]')
    search.fill("no-such-dataset")
    expect(sidebar.locator('[data-testid="ais-datasets-empty"]')).to_be_visible()
    search.fill("iris")
    expect(row).to_be_visible()

    sidebar.locator('[data-testid="ais-section-toggle-usage"]').click()
    expect(sidebar.locator('[data-testid="ais-usage-storage"]')).to_contain_text("of")
    shot = artifacts / "ui-sidebar.png"
    page.screenshot(path=str(shot))
    for_docs(shot)
    assert not page.dialogs
    assert not page.console_errors


def test_a_failing_api_call_shows_the_servers_message_and_recovers(lab, page, artifacts):
    sidebar = open_sidebar(page, lab)
    search = sidebar.locator('[data-testid="ais-dataset-search"]')
    expect(search).to_be_visible()
    # a search longer than the API accepts: a real 422 from the real server, in its envelope
    too_long = "x" * 250
    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        refused = api.get("/datasets", params={"q": too_long, "limit": 100})
        assert refused.status_code == 422
        message = refused.json()["error"]["message"]
    search.fill(too_long)
    error = sidebar.locator('[data-testid="ais-error-dataset-list"]')
    expect(error).to_be_visible()
    expect(error.locator('[data-testid="ais-error-message"]')).to_have_text(message)
    expect(error.locator('[data-testid="ais-retry"]')).to_be_visible()
    # only that list failed: the rest of the sidebar still works
    expect(sidebar.locator('[data-testid="ais-jobs"]')).to_be_visible()
    expect(sidebar.locator('[data-testid="ais-dropzone"]')).to_be_visible()
    page.screenshot(path=str(artifacts / "ui-error-boundary.png"))

    search.fill("")
    expect(error).to_have_count(0)
    expect(sidebar.locator('[data-testid="ais-dataset-list"], [data-testid="ais-datasets-empty"]').first).to_be_visible()
    assert not page.dialogs


def test_insert_snippet_puts_working_code_into_the_active_cell(lab, page, studio, tmp_path):
    from ..browser.notebook import Notebook

    source = tmp_path / "penguins.csv"
    source.write_text("bill_length,species\n39.1,Adelie\n46.5,Chinstrap\n")
    studio.datasets.upload(source, name="penguins", progress=False)
    name = lab.write_notebook("snippet", "import aistudio_jupyter as ais", "")
    nb = Notebook.open(page, lab, name)
    # make the empty second cell the active one, as a user clicking it does
    nb.cell(1).locator(".jp-InputArea-prompt").click()

    page.locator('.lm-TabBar-tab[data-id="aistudio-sidebar"]').click()
    sidebar = page.locator('[data-testid="ais-sidebar"]')
    row = sidebar.locator('[data-testid="ais-dataset-list"] li[data-name="penguins"]')
    expect(row).to_be_visible(timeout=30_000)
    row.locator('[data-testid="ais-dataset-insert"]').click()
    expect(nb.cell(1).locator(".jp-InputArea-editor")).to_have_text('ais.datasets.get("penguins")')

    # and the inserted code runs in the notebook's kernel
    nb.run_cell(0)
    nb.run_cell(1)
    output = nb.output(1)
    expect(output).not_to_be_empty()
    expect(output).not_to_contain_text("Error")
    assert not page.dialogs


def test_an_upload_pauses_and_resumes_where_it_stopped(lab, page):
    sidebar = open_sidebar(page, lab)
    # a slow uplink (Chromium's own network emulation), so there is time to press Pause
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 512 * 1024})
    rows = 60_000
    transfer = page.evaluate_handle(
        """(rows) => { const lines = ['a,b,c'];
                      for (let i = 0; i < rows; i++) lines.push(`${i},${i * 2},row${i % 7}`);
                      const t = new DataTransfer();
                      t.items.add(new File([lines.join('\\n') + '\\n'], 'slow.csv', {type: 'text/csv'}));
                      return t; }""",
        rows,
    )
    size = page.evaluate("(t) => t.files[0].size", transfer)
    drop = sidebar.locator('[data-testid="ais-dropzone"]')
    drop.dispatch_event("drop", {"dataTransfer": transfer})
    upload = sidebar.locator('[data-testid="ais-upload"]', has_text="slow.csv")
    progress = upload.locator('[data-testid="ais-upload-progress"]')

    def sent() -> float:
        return float(progress.get_attribute("value") or 0)

    expect(upload).to_have_attribute("data-state", "uploading")
    page.wait_for_function("(el) => Number(el.value) > 0", arg=progress.element_handle(), timeout=30_000)
    upload.locator('[data-testid="ais-upload-pause"]').click()
    expect(upload).to_have_attribute("data-state", "paused")
    paused_at = sent()
    assert 0 < paused_at < size
    page.wait_for_timeout(1000)
    assert sent() == paused_at  # nothing moves while paused
    # the server kept the bytes that arrived before the pause: Resume continues from there
    upload_id = upload.get_attribute("data-upload-id")
    with httpx.Client(base_url=lab.api(), headers={**lab.auth(), "Tus-Resumable": "1.0.0"}, timeout=30) as tus:
        kept = int(tus.head(f"/uploads/{upload_id}").headers["Upload-Offset"])
    print(f"paused at {paused_at:.0f} of {size} bytes; the server kept {kept}")
    assert 0 < kept < size

    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    upload.locator('[data-testid="ais-upload-resume"]').click()
    expect(upload).to_have_attribute("data-state", "completed", timeout=60_000)
    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        (dataset,) = api.get("/datasets", params={"q": "slow"}).json()["items"]
        assert dataset["size_bytes"] == size
        version = api.get(f"/datasets/{dataset['id']}/versions").json()["items"][0]
        assert version["row_count"] == rows
