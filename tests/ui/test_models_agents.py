"""The Models panel's version comparison and the Agents panel in a real JupyterLab: versions
registered through the Python client are compared in a main-area tab; an agent is created
from the panel (the API's 422 shown first), listed and deleted after a confirmation."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from aistudio_jupyter.runtime.client import Client

from ..browser.test_lab import for_docs
from ..deployments.helpers import register_tabular
from ..live import JUPYTER_TOKEN
from .test_sidebar import open_sidebar


def register(api, name: str, seed: int, metrics: dict, hyperparameters: dict):
    """A small classification version with its metrics and training hyperparameters, as a kernel registers one."""
    return register_tabular(api, name, seed, metrics, lineage={"hyperparameters": hyperparameters})


def cells(row) -> list[str]:
    return row.locator('[data-testid="ais-compare-cell"]').all_inner_texts()


def test_two_versions_compare_side_by_side_in_the_main_area(lab, page, artifacts):
    with Client(lab.api(), JUPYTER_TOKEN, timeout=120) as client:
        first = register(client, "iris-compare", 1, {"acc": 0.8, "loss": 0.5}, {"lr": 0.01, "epochs": 5})
        second = register(client, "iris-compare", 2, {"acc": 0.9, "loss": 0.3}, {"lr": 0.001, "epochs": 5})
    assert (first.model_id, first.version + 1) == (second.model_id, second.version)
    sidebar = open_sidebar(page, lab)
    sidebar.locator('[data-testid="ais-section-toggle-models"]').click()
    model = sidebar.locator(f'[data-testid="ais-model-{first.model_id}"]')
    model.locator('[data-testid="ais-model-versions-toggle"]').click()
    compare = model.locator('[data-testid="ais-model-compare"]')
    expect(compare).to_be_disabled()
    for version in (first.version, second.version):
        model.locator(f'[data-testid="ais-model-version-{version}"] [data-testid="ais-model-version-select"]').check()
    expect(compare).to_be_enabled()
    compare.click()

    table = page.locator('.jp-MainAreaWidget [data-testid="ais-compare-table"]')
    expect(table).to_be_visible(timeout=15_000)
    expect(table.locator(f'[data-testid="ais-compare-column-{first.version}"]')).to_contain_text(f"v{first.version}")
    expect(table.locator(f'[data-testid="ais-compare-column-{second.version}"]')).to_contain_text(f"v{second.version}")
    acc = table.locator('[data-testid="ais-compare-row-metrics.acc"]')
    loss = table.locator('[data-testid="ais-compare-row-metrics.loss"]')
    lr = table.locator('[data-testid="ais-compare-row-hyperparameters.lr"]')
    epochs = table.locator('[data-testid="ais-compare-row-hyperparameters.epochs"]')
    assert cells(acc) == ["0.8", "0.9"] and cells(loss) == ["0.5", "0.3"]
    assert cells(lr) == ["0.01", "0.001"] and cells(epochs) == ["5", "5"]
    for row in (acc, loss, lr):
        expect(row).to_have_attribute("data-differs", "true")
    expect(epochs).to_have_attribute("data-differs", "false")
    # the best value: higher accuracy, lower loss; both v2's
    for row, best in ((acc, "0.9"), (loss, "0.3")):
        expect(row.locator('[data-testid="ais-compare-cell"][data-best="true"]')).to_have_text(best)
    shot = artifacts / "ui-models-compare.png"
    page.screenshot(path=str(shot))
    for_docs(shot, "sidebar-compare.png")

    page.locator('[data-testid="ais-compare-only-differences"]').check()
    expect(epochs).to_have_count(0)
    expect(lr).to_be_visible()

    # the same set again: the open tab, not a second one
    tabs = page.locator(".lm-DockPanel .lm-TabBar-tab", has_text="Compare iris-compare")
    expect(tabs).to_have_count(1)
    compare.click()
    expect(tabs).to_have_count(1)
    assert page.console_errors == []


def test_an_agent_is_created_from_the_panel_listed_and_deleted_after_confirming(lab, page, artifacts):
    sidebar = open_sidebar(page, lab)
    sidebar.locator('[data-testid="ais-section-toggle-agents"]').click()
    panel = sidebar.locator('[data-testid="ais-section-agents"]')
    expect(panel.locator('[data-testid="ais-agents-empty"]')).to_be_visible()

    panel.locator('[data-testid="ais-agent-new"]').click()
    panel.locator('[data-testid="ais-agent-name"]').fill("ticket triage")
    panel.locator('[data-testid="ais-agent-description"]').fill("Sorts incoming tickets")
    panel.locator('[data-testid="ais-agent-instructions"]').fill("Read each ticket.\nLabel it <urgent> or not.")
    # a tool name the schema refuses: the server's 422, under the field it names
    panel.locator('[data-testid="ais-agent-tools"]').fill("search, Web Browser")
    panel.locator('[data-testid="ais-agent-create"]').click()
    error = panel.locator('[data-testid="ais-agent-error-tools"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("tools.1")
    panel.locator('[data-testid="ais-agent-tools"]').fill("search, web.browse")
    panel.locator('[data-testid="ais-agent-create"]').click()
    expect(panel.locator('[data-testid="ais-agent-notice"]')).to_have_text("Created ticket triage")

    with httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30) as api:
        (agent,) = api.get("/agents").json()["items"]
        assert (agent["name"], agent["tools"], agent["instructions"]) == ("ticket triage", ["search", "web.browse"], "Read each ticket.\nLabel it <urgent> or not.")
        row = panel.locator(f'[data-testid="ais-agent-{agent["id"]}"]')
        expect(row).to_be_visible()
        row.locator('[data-testid="ais-agent-toggle"]').click()
        expect(row.locator('[data-testid="ais-agent-detail-instructions"]')).to_have_text("Read each ticket.\nLabel it <urgent> or not.")
        expect(row.locator('[data-testid="ais-agent-detail-planner"]')).to_have_text("react")
        page.screenshot(path=str(artifacts / "ui-agents-panel.png"))

        row.locator('[data-testid="ais-agent-delete"]').click()
        expect(row.locator('[data-testid="ais-agent-confirm"]')).to_contain_text("Delete ticket triage?")
        assert api.get(f"/agents/{agent['id']}").status_code == 200  # asking deletes nothing
        row.locator('[data-testid="ais-agent-delete-confirm"]').click()
        expect(row).to_have_count(0)
        expect(panel.locator('[data-testid="ais-agents-empty"]')).to_be_visible()
        assert api.get(f"/agents/{agent['id']}").status_code == 404
    # the browser logs the 422 it was sent on purpose; nothing else may fail
    assert [e for e in page.console_errors if "422" not in e] == []
