"""The Deployments panel in a real JupyterLab: a real model version served by real replica
processes (the server's deployment supervisor), followed live, tested and stopped from the panel."""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import expect

from aistudio_jupyter.runtime.client import Client

from ..deployments.helpers import LABELS, register_tabular, replica_processes, wait_for
from ..live import JUPYTER_TOKEN
from .test_sidebar import open_sidebar


def test_a_deployment_turns_ready_live_answers_the_test_form_and_stops_from_the_panel(lab, page, artifacts):
    with Client(lab.api(), JUPYTER_TOKEN, timeout=120) as client:
        version = register_tabular(client, "iris-panel", seed=3)
    sidebar = open_sidebar(page, lab)
    sidebar.locator('[data-testid="ais-section-toggle-models"]').click()
    sidebar.locator('[data-testid="ais-section-toggle-deployments"]').click()
    panel = sidebar.locator('[data-testid="ais-section-deployments"]')
    expect(panel.locator('[data-testid="ais-deployments-empty"]')).to_be_visible()

    # deployed from the Models panel: the version's row, its stage and metrics, its Deploy button
    model = sidebar.locator(f'[data-testid="ais-model-{version.model_id}"]')
    model.locator('[data-testid="ais-model-versions-toggle"]').click()
    listed = model.locator(f'[data-testid="ais-model-version-{version.version}"]')
    expect(listed.locator('[data-testid="ais-model-version-metrics"]')).to_have_text("acc 0.5")
    listed.locator('[data-testid="ais-model-deploy"]').click()
    expect(listed.locator('[data-testid="ais-model-deploy-notice"]')).to_have_text(f"Deploying as iris-panel-v{version.version}")

    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        (dep,) = api.get("/deployments").json()["items"]
        try:
            assert (dep["name"], dep["model_id"], dep["model_version"]) == (f"iris-panel-v{version.version}", version.model_id, version.version)
            row = panel.locator(f'[data-testid="ais-deployment-{dep["id"]}"]')
            expect(row).to_be_visible()
            # ready arrives as a deployment event: the page is never reloaded
            expect(row).to_have_attribute("data-state", "ready", timeout=60_000)
            expect(row.locator('[data-testid="ais-deployment-replicas"]')).to_have_text("1/1 ready")

            row.locator('[data-testid="ais-deployment-test"]').click()
            body = row.locator('[data-testid="ais-predict-body"]')
            example = json.loads(body.input_value())
            assert list(example) == ["records"] and set(example["records"][0]) == {"a", "b", "c", "d"}
            row.locator('[data-testid="ais-predict-send"]').click()
            result = row.locator('[data-testid="ais-predict-result"]')
            expect(result).to_have_text(re.compile(r'^\["(%s)"\]$' % "|".join(LABELS)), timeout=30_000)
            assert json.loads(result.inner_text())[0] in LABELS

            # a wrong payload shows the server's 422, naming the field
            body.fill('{"records": [{"a": 1}]}')
            row.locator('[data-testid="ais-predict-send"]').click()
            error = row.locator('[data-testid="ais-predict-error"]')
            expect(error).to_be_visible()
            expect(error).to_contain_text("records[0].b")
            page.screenshot(path=str(artifacts / "ui-deployment-ready.png"))

            row.locator('[data-testid="ais-deployment-stop"]').click()
            expect(row).to_have_attribute("data-state", "stopped", timeout=30_000)
            expect(row.locator('[data-testid="ais-deployment-start"]')).to_be_visible()
            assert api.get(f"/deployments/{dep['id']}").json()["state"] == "stopped"
            assert wait_for(lambda: not replica_processes(lab.workdir, dep["id"]), 15, "the replica to exit")
        finally:
            api.delete(f"/deployments/{dep['id']}")
    # the browser logs the 422 it was sent on purpose; nothing else may fail
    assert [e for e in page.console_errors if "422" not in e] == []
