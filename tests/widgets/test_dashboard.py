"""The Dashboard through its widget state against a real server: the four lists, usage against
quota (GPU time of running jobs and its cost included), the seq the browser follows
``user:<you>`` from, and sections that fail on their own."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

import aistudio_jupyter as ais
from aistudio_jupyter.runtime.client import Client
from aistudio_jupyter.runtime.events import subscribe
from aistudio_jupyter.widgets.dashboard import Dashboard
from tests.handlers.test_resources import sql, submit
from tests.live import free_port
from tests.runtime import in_thread
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures

PRICE = 3.0


@pytest.fixture
def aistudio_config(aistudio_config):
    """GPU time has a price, so the cost meter has a budget."""
    return {**aistudio_config, "price_per_gpu_hour": PRICE}


async def test_lists_usage_and_live_job_status(connect, api, jp_serverapp, database_url):
    assert (await api("POST", "datasets", json_body={"name": "iris"})).status == 201
    assert (await api("POST", "models", json_body={"name": "iris-mlp"})).status == 201
    assert (await api("POST", "datasets", user="bob", json_body={"name": "bobs"})).status == 201
    queued = await submit(jp_serverapp, "alice", "queued-one", kind="script")
    running = await submit(jp_serverapp, "alice", "on-two-gpus", kind="script")
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    sql(database_url, "UPDATE jobs SET state = 'running', gpu_ids = '[0, 1]', started_at = :s WHERE id = :id", s=started, id=running["id"])

    def scenario():
        alice = connect("alice")
        dash = ais.dashboard(client=alice)
        head = dash.since["user:alice"]
        # what the browser hears after the load: the next status change, nothing before it
        alice.jobs.cancel(queued["id"])
        with subscribe("user:alice", since=head, api=alice) as stream:
            event = stream.next(timeout=10)
        return dash, head, event

    dash, head, event = await in_thread(scenario)
    assert isinstance(dash, Dashboard) and dash.error is None and dash.section_errors == {}
    assert [d["name"] for d in dash.datasets] == ["iris"], "bob's private dataset is not alice's"
    assert [m["name"] for m in dash.models] == ["iris-mlp"] and dash.deployments == []
    assert {j["name"]: j["state"] for j in dash.jobs} == {"queued-one": "queued", "on-two-gpus": "running"}
    me = dash.me
    assert me["username"] == "alice" and me["quotas"]["gpu_hours_per_month"] > 0
    usage = me["usage"]
    assert usage["price_per_gpu_hour"] == PRICE and usage["active_jobs"] == 2
    # two GPUs for an hour so far: not yet recorded (that happens when the job ends), but shown
    assert 7200 <= usage["gpu_seconds_running"] < 7200 + 600 and usage["gpu_seconds"] == 0
    assert event.seq == head + 1 and event.type == "job"
    assert (event.data["id"], event.data["state"]) == (queued["id"], "canceled")


async def test_a_failing_section_leaves_the_others(connect, server, api):
    assert (await api("POST", "datasets", json_body={"name": "still-shown"})).status == 201

    def break_models(request: httpx.Request) -> None:
        # a real refusal by the server for this one list: limit=0 is out of range (422)
        if request.url.path.endswith("/models"):
            request.url = request.url.copy_set_param("limit", "0")

    def scenario():
        partial = Dashboard(client=connect("alice", event_hooks={"request": [break_models]}))
        with Client(url=f"http://127.0.0.1:{free_port()}/aistudio/api", token="x", timeout=2) as nowhere:
            offline = Dashboard(client=nowhere)
        fixed = Dashboard(client=connect("alice"))
        return partial, offline, fixed

    partial, offline, fixed = await in_thread(scenario)
    assert set(partial.section_errors) == {"models"}
    models_error = partial.section_errors["models"]
    assert models_error["status"] == 422 and models_error["code"] == "invalid" and "limit" in models_error["message"]
    assert partial.error is None and [d["name"] for d in partial.datasets] == ["still-shown"] and partial.me["username"] == "alice"
    # nothing reachable: every section and the widget say so, and nothing raised
    assert set(offline.section_errors) == {"me", "datasets", "jobs", "models", "deployments"}
    assert offline.error["code"] == "unreachable" and offline.error["retryable"] is True and offline.since == {}
    assert fixed.section_errors == {} and fixed.models == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_dashboard_js_renders_sections_follows_jobs_and_retries_a_failed_one(connect, server, api, jp_serverapp, jp_base_url):
    from tests.widgets.browser import render, widget_page

    assert (await api("POST", "datasets", json_body={"name": "iris", "description": "<img src=x onerror=alert(1)>"})).status == 201
    queued = await submit(jp_serverapp, "alice", "queued-one", kind="script")

    def break_models(request: httpx.Request) -> None:
        if request.url.path.endswith("/models"):
            request.url = request.url.copy_set_param("limit", "0")

    dash = await in_thread(lambda: Dashboard(client=connect("alice", event_hooks={"request": [break_models]})))
    assert set(dash.section_errors) == {"models"}
    async with widget_page(server, jp_base_url) as (page, errors):
        await render(page, dash, "dash")
        root = page.locator("#dash")
        await page.wait_for_function("document.querySelector('#dash [data-testid=ais-dash-live]').dataset.state === 'open'")
        assert await root.locator("[data-testid=ais-dash-datasets] td").first.text_content() == "iris"
        assert await root.locator("[data-testid=ais-dash-usage-item]").count() == 4
        badge = root.locator(f'[data-testid=ais-dash-job-state][data-job-id="{queued["id"]}"]')
        assert await badge.get_attribute("data-state") == "queued"
        # the failed section shows its error; its Retry asks the server again, from the browser
        models = root.locator("[data-testid=ais-dash-models]")
        assert "limit" in await models.locator("[data-testid=ais-error]").text_content()
        await models.locator("[data-testid=ais-retry]").click()
        await page.wait_for_function("!document.querySelector('#dash [data-testid=ais-dash-models] [data-testid=ais-error]')")
        # a status change arrives on user:alice and moves the badge
        assert (await api("POST", f"jobs/{queued['id']}/cancel")).status == 202
        await page.wait_for_function(f"""document.querySelector('#dash [data-job-id="{queued["id"]}"]').dataset.state === 'canceled'""")
        assert await page.evaluate("document.querySelectorAll('img').length") == 0
        assert errors == []
