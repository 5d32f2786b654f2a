"""ModelCard and DeploymentCard through their widget state against a real server: versions
with stage and metrics, a deployment's state and the seq its live events resume from,
stop/start from Python, and refusals as friendly errors."""

from __future__ import annotations

import pytest

from aistudio_jupyter.runtime.events import subscribe
from aistudio_jupyter.widgets.cards import DeploymentCard, ModelCard
from tests.models.helpers import deploy, new_model, register
from tests.runtime import in_thread
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures


async def test_model_card_lists_versions_with_stage_and_metrics(connect, api):
    model = await new_model(api, "card-model", description="<b>not bold</b>")
    await register(api, model["id"], seed=1, metrics={"val/loss": 0.5, "val/accuracy": 0.8})
    await register(api, model["id"], seed=2, metrics={"val/loss": 0.25})
    staged = await api("PATCH", f"models/{model['id']}/versions/2", json_body={"stage": "staging"})
    assert staged.status == 200, staged.body

    def scenario():
        alice = connect("alice")
        return ModelCard(alice.models.get(model["id"])), ModelCard(model["id"], client=connect("bob"))

    card, hidden = await in_thread(scenario)
    assert card.error is None and card.kind == "model" and card.registry_id == model["id"]
    assert card.record["name"] == "card-model" and card.record["description"] == "<b>not bold</b>"
    assert [(v["version"], v["stage"], v["metrics"]) for v in card.versions] == [
        (2, "staging", {"val/loss": 0.25}),
        (1, "none", {"val/loss": 0.5, "val/accuracy": 0.8}),
    ]
    assert all("spec" not in v for v in card.versions), "the card does not ship the layer spec to the browser"
    assert hidden.record == {} and hidden.error["status"] == 404


async def test_deployment_card_state_live_seq_and_stop_start(connect, api):
    model = await new_model(api, "served")
    await register(api, model["id"])
    created = await deploy(api, model["id"], 1)

    def scenario():
        alice = connect("alice")
        card = DeploymentCard(created, client=alice)
        first = dict(card.deployment)
        head = card.since[card.topic]
        stopped = card.stop()
        with subscribe(card.topic, since=head, api=alice) as stream:
            event = stream.next(timeout=10)
        started = card.start()
        return card, first, head, stopped, event, started

    card, first, head, stopped, event, started = await in_thread(scenario)
    assert card.kind == "deployment" and first["id"] == created["id"] and first["model_id"] == model["id"]
    assert first["state"] in ("pending", "loading", "ready") and head >= 0
    assert stopped["state"] == "stopped" and stopped["desired_state"] == "stopped"
    # the browser, subscribed from the card's seq, hears the stop first
    assert event.seq == head + 1 and event.type == "status" and event.data["state"] == "stopped"
    assert started["desired_state"] == "running" and card.deployment["desired_state"] == "running" and card.error is None


async def test_deployment_card_refusals_are_friendly(connect, api):
    def scenario():
        missing = DeploymentCard("dep_aaaaaaaaaaaaaaaaaaaaaaaaa", client=connect("alice"))
        return missing

    missing = await in_thread(scenario)
    assert missing.deployment == {} and missing.error["status"] == 404 and missing.error["retryable"] is False
    with pytest.raises(TypeError):
        DeploymentCard(3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cards_js_stops_and_starts_from_the_browser(connect, server, api, jp_base_url):
    from tests.widgets.browser import render, widget_page

    model = await new_model(api, "served-js", description="<script>alert(1)</script>")
    await register(api, model["id"], metrics={"val/loss": 0.5})
    created = await deploy(api, model["id"], 1)
    card, model_card = await in_thread(lambda: (DeploymentCard(created["id"], client=connect()), ModelCard(model["id"], client=connect())))
    async with widget_page(server, jp_base_url) as (page, errors):
        await render(page, card, "dep")
        await render(page, model_card, "mdl")
        assert await page.locator("#mdl [data-testid=ais-model-stage]").get_attribute("data-stage") == "none"
        assert "val/loss 0.5" in await page.locator("#mdl [data-testid=ais-model-version]").text_content()
        assert "<script>alert(1)</script>" in await page.locator("#mdl").text_content()
        state = page.locator("#dep [data-testid=ais-deployment-state]")
        await page.locator("#dep [data-testid=ais-deployment-stop]").click()
        await page.wait_for_function("document.querySelector('#dep [data-testid=ais-deployment-state]').dataset.state === 'stopped'")
        assert await page.locator("#dep [data-testid=ais-deployment-start]").is_enabled()
        await page.locator("#dep [data-testid=ais-deployment-start]").click()
        await page.wait_for_function("document.querySelector('#dep [data-testid=ais-deployment-state]').dataset.state !== 'stopped'")
        assert await state.get_attribute("data-state") in ("pending", "loading", "ready")
        assert errors == []
    assert (await api("GET", f"deployments/{created['id']}")).body["desired_state"] == "running"
