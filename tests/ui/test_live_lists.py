"""The sidebar's Datasets, Models and Deployments lists follow `user:<me>` live: with the timer
refresh turned off (refreshInterval 0, through Lab's settings API), what the Python client and
the REST API create, change and delete shows in the open panels without reloading the page."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from aistudio_jupyter.runtime.client import Client

from ..deployments.helpers import register_tabular, replica_processes, wait_for
from ..live import JUPYTER_TOKEN
from .test_sidebar import CSV, open_sidebar

PLUGIN = "aistudio-jupyter:plugin"
#: well under the 30 s default refresh: only an event can have brought the change this fast
LIVE = 10_000


def test_created_changed_and_deleted_things_show_in_the_open_panels_without_a_refresh(lab, page, artifacts):
    # the fallback timer off: from here on, only events change the lists
    with httpx.Client(base_url=lab.url(), headers=lab.auth(), timeout=30) as lab_api:
        put = lab_api.put(f"lab/api/settings/{PLUGIN}", json={"raw": '{"refreshInterval": 0}'})
        assert put.status_code == 204, put.text
        assert lab_api.get(f"lab/api/settings/{PLUGIN}").json()["settings"]["refreshInterval"] == 0

    sidebar = open_sidebar(page, lab)
    for name in ("models", "deployments"):
        sidebar.locator(f'[data-testid="ais-section-toggle-{name}"]').click()
    datasets = sidebar.locator('[data-testid="ais-section-datasets"]')
    models = sidebar.locator('[data-testid="ais-section-models"]')
    deployments = sidebar.locator('[data-testid="ais-section-deployments"]')
    expect(models.locator('[data-testid="ais-models-empty"]')).to_be_visible()
    expect(deployments.locator('[data-testid="ais-deployments-empty"]')).to_be_visible()

    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=60) as api:
        # a dataset created and given a file over HTTP, then validated: listed, then its verdict
        created = api.post("/datasets", json={"name": "live-iris"})
        assert created.status_code == 201, created.text
        ds = created.json()["id"]
        row = datasets.locator(f'[data-testid="ais-dataset-{ds}"]')
        expect(row).to_be_visible(timeout=LIVE)
        expect(row.locator(".ais-row-meta")).to_contain_text("v0")
        sent = api.post(f"/datasets/{ds}/files", files={"file": ("iris.csv", CSV.encode())})
        assert sent.status_code == 201, sent.text
        expect(row.locator(".ais-row-meta")).to_contain_text("v1", timeout=LIVE)
        started = api.post(f"/datasets/{ds}/validate", json={"rules": [{"check": "not_null", "column": "species"}]})
        assert started.status_code == 202, started.text
        expect(row.locator('[data-testid="ais-dataset-validation"]')).to_have_text("valid", timeout=LIVE)

        # a model version registered through the Python client: the model appears, and its
        # second version shows in its row
        with Client(lab.api(), JUPYTER_TOKEN, timeout=120) as client:
            version = register_tabular(client, "live-model", seed=1)
            model = models.locator(f'[data-testid="ais-model-{version.model_id}"]')
            expect(model).to_be_visible(timeout=LIVE)
            toggle = model.locator('[data-testid="ais-model-versions-toggle"]')
            expect(toggle).to_have_text("Versions (1)")
            register_tabular(client, "live-model", seed=2)
            expect(toggle).to_have_text("Versions (2)", timeout=LIVE)

        # a deployment created over HTTP is listed, and goes when deleted
        made = api.post("/deployments", json={"name": "live-dep", "model_id": version.model_id, "model_version": version.version})
        assert made.status_code == 201, made.text
        dep = made.json()["id"]
        try:
            listed = deployments.locator(f'[data-testid="ais-deployment-{dep}"]')
            expect(listed).to_be_visible(timeout=LIVE)
            page.screenshot(path=str(artifacts / "ui-live-lists.png"))
        finally:
            assert api.delete(f"/deployments/{dep}").status_code == 204
        expect(listed).to_have_count(0, timeout=LIVE)
        expect(deployments.locator('[data-testid="ais-deployments-empty"]')).to_be_visible()
        assert wait_for(lambda: not replica_processes(lab.workdir, dep), 15, "the replica to exit")

        assert api.delete(f"/datasets/{ds}").status_code == 204
        expect(row).to_have_count(0, timeout=LIVE)
    assert page.console_errors == []
