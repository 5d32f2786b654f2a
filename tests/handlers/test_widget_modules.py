"""`GET /widget-modules/{name}`: the monitor's and the explorer's ES modules for the sidebar's
main-area tabs, what anywidget loads in a notebook plus the widget's trait defaults; authenticated, allowlisted,
revalidated by ETag."""

from __future__ import annotations

import json

import anywidget
import pytest

from aistudio_jupyter.widgets.explorer import DatasetExplorer
from aistudio_jupyter.widgets.monitor import TrainingMonitor


@pytest.mark.parametrize(("name", "widget"), [("monitor", TrainingMonitor), ("explorer", DatasetExplorer)])
async def test_the_module_is_the_one_anywidget_gets(api, name, widget):
    reply = await api("GET", f"widget-modules/{name}")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
    body = reply.body.decode("utf-8")
    # anywidget's module, then the traits a fresh widget has, for the tab's kernel-less model
    assert body.startswith(widget._esm)
    head, _, tail = body[len(widget._esm):].strip().partition("export const defaults = ")
    assert head == "" and tail.endswith(";")
    defaults = json.loads(tail[:-1])
    fresh = widget.__new__(widget)  # the traits' defaults, without the first load a real one makes
    anywidget.AnyWidget.__init__(fresh)
    assert defaults == {key: getattr(fresh, key) for key in defaults}
    assert {"error", "loading"} <= defaults.keys() and not any(key.startswith("_") or key == "layout" for key in defaults)
    assert reply.headers["Cache-Control"] == "private, no-cache"
    etag = reply.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')

    # a cached copy is confirmed without sending the module again
    again = await api("GET", f"widget-modules/{name}", headers={"If-None-Match": etag})
    assert again.status == 304 and not again.body
    assert again.headers["ETag"] == etag
    stale = await api("GET", f"widget-modules/{name}", headers={"If-None-Match": '"something-else"'})
    assert stale.status == 200 and stale.body.decode("utf-8") == body


async def test_monitor_and_explorer_differ(api):
    monitor = await api("GET", "widget-modules/monitor")
    explorer = await api("GET", "widget-modules/explorer")
    assert monitor.headers["ETag"] != explorer.headers["ETag"]
    assert b"renderMonitor" in monitor.body and b"renderExplorer" in explorer.body


async def test_anonymous_callers_are_refused(api):
    reply = await api("GET", "widget-modules/monitor", user=None)
    assert reply.status == 403
    assert reply.error["code"] == "unauthenticated"


@pytest.mark.parametrize("name", ["common", "builder", "monitor.js", "..%2F..%2Fapp.py", "MONITOR", "%00"])
async def test_only_the_allowlisted_modules_are_served(api, name):
    reply = await api("GET", f"widget-modules/{name}")
    assert reply.status in (400, 404), reply.body
    assert set(reply.error) == {"code", "message", "details", "request_id"}
    if reply.status == 404:
        assert reply.error["code"] == "not_found"
        assert reply.error["details"] == {"modules": ["explorer", "monitor"]}


async def test_the_route_is_in_the_openapi_document(api):
    doc = (await api("GET", "openapi.json")).body
    op = doc["paths"]["/widget-modules/{name}"]["get"]
    assert op["responses"]["200"]["content"] == {"text/javascript": {"schema": {"type": "string"}}}
    assert op["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert [p["name"] for p in op["parameters"]] == ["name"]
