"""The widget base: server failures become a friendly, retryable ``error`` trait; user strings
stay data (never markup) on the Python side and in every ES module; each widget's module is
common.js plus its own; and common.js itself in headless Chromium against a real server (REST
with the error envelope, the shared events socket resuming after a drop, text-only DOM,
charts, one failing widget isolated)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import aistudio_jupyter.widgets as widgets_pkg
from aistudio_jupyter.runtime.client import APIError, Client
from aistudio_jupyter.widgets.base import STATIC, StudioWidget, esm_source, friendly_error, repr_bundle
from aistudio_jupyter.widgets.dashboard import Dashboard
from aistudio_jupyter.widgets.monitor import TrainingMonitor
from tests.conftest import TOKENS
from tests.runtime import in_thread
from tests.tcp_proxy import TcpProxy
from tests.widgets.browser import widget_page
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures

EVIL = "<img src=x onerror=alert(1)>"

#: DOM sinks that parse a string as markup or code
UNSAFE_SINKS = re.compile(
    r"\.(innerHTML|outerHTML)\s*\+?=|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser|srcdoc"
    r"|\beval\s*\(|new\s+Function\s*\(|setAttribute\(\s*['\"]on|setTimeout\(\s*['\"`]|setInterval\(\s*['\"`]"
)


# -- no markup anywhere ----------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(STATIC.glob("*.js")), ids=lambda p: p.name)
def test_no_widget_module_parses_strings_as_markup_or_code(path: Path):
    source = path.read_text(encoding="utf-8")
    found = [(source.count("\n", 0, m.start()) + 1, m.group(0)) for m in UNSAFE_SINKS.finditer(source)]
    assert not found, f"{path.name}: markup/code sinks at lines {found}; build DOM with aisEl (text nodes)"


def widget_classes() -> list[type[StudioWidget]]:
    for info in pkgutil.iter_modules(widgets_pkg.__path__):
        importlib.import_module(f"{widgets_pkg.__name__}.{info.name}")
    seen, todo = [], [StudioWidget]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__dict__.get("_module"):
                seen.append(sub)
    return seen


def test_each_widget_module_is_common_js_then_its_own():
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    classes = widget_classes()
    assert {TrainingMonitor, Dashboard} <= set(classes)
    for cls in classes:
        own = (STATIC / cls._module).read_text(encoding="utf-8")
        assert cls._esm == esm_source(cls._module)
        assert cls._esm.startswith(common) and cls._esm.endswith(own), cls
        assert cls._esm.count("export default") == 1, f"{cls._module}: one default export (anywidget's render)"
    # concatenated, so common.js neither imports (blob URLs resolve nothing) nor exports
    assert not re.search(r"^\s*(import|export)\b", common, re.M)


# -- friendly, retryable errors from real failures --------------------------------------------


async def test_an_unreachable_server_is_a_friendly_retryable_error_until_it_is_back(connect, server, jp_base_url):
    port = int(server.kernel_api_url().split(":")[2].split("/")[0])
    with TcpProxy(port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}{jp_base_url}aistudio/api"

        def scenario():
            alice = connect("alice", url=url, timeout=5)
            run = __import__("aistudio_jupyter").track("through-a-proxy", client=alice)
            run.log({"loss": 1.0}, step=0)
            assert run.flush(10)
            proxy.down()
            mon = TrainingMonitor(run.id, client=alice)  # never raises
            down = dict(mon.error)
            proxy.up()
            mon.refresh()  # what the Retry button of the Python-side error does
            run.finish()
            return mon, down

        mon, down = await in_thread(scenario)
    assert down["status"] == 0 and down["code"] == "unreachable" and down["retryable"] is True
    assert down["message"].startswith("Cannot reach the AI Studio server") and "Traceback" not in down["message"]
    assert mon.error is None and mon.loading is False and [p["step"] for p in mon.series["loss"]] == [0]


def test_friendly_errors_keep_the_server_message_as_plain_text():
    err = friendly_error(APIError(503, "unavailable", f"The database {EVIL} is restarting.", request_id="req-1"))
    assert err["status"] == 503 and err["retryable"] is True and err["request_id"] == "req-1"
    assert err["message"] == f"The AI Studio server is busy or unavailable right now. Retry in a moment. The database {EVIL} is restarting."
    assert err["detail"] == f"The database {EVIL} is restarting."  # verbatim: neither escaped nor markup
    for status, retryable in ((400, False), (401, False), (404, False), (409, False), (429, True), (500, True), (504, True)):
        assert friendly_error(APIError(status, "x", "m"))["retryable"] is retryable
    assert friendly_error(ConnectionError("refused"))["code"] == "unreachable"


async def test_user_strings_reach_the_widgets_as_data_and_reprs_carry_no_html(connect, api):
    # names have a strict pattern; descriptions are free text
    for kind in ("datasets", "models"):
        created = await api("POST", kind, json_body={"name": "plain", "description": EVIL})
        assert created.status == 201, created.body

    dash = await in_thread(lambda: Dashboard(client=connect("alice")))
    assert dash.datasets[0]["description"] == EVIL and dash.models[0]["description"] == EVIL
    # every synced value is the raw string; no trait holds markup built from it
    state = json.dumps(dash.get_state())
    assert "&lt;img" not in state and EVIL in state
    data, _meta = dash._repr_mimebundle_()
    assert set(data) == {"text/plain", "application/vnd.jupyter.widget-view+json"}
    # outside a kernel a record's repr is its plain text, and it never raises
    bundle = repr_bundle(lambda: 1 / 0, "<job_x>")
    assert bundle == {"text/plain": "<job_x>"}


# -- common.js in a real browser ------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_common_js_in_chromium_against_the_server(server, api, jp_base_url):
    run = (await api("POST", "jobs/interactive", json_body={"name": "in-the-browser"})).body
    origin = server.kernel_api_url().split(jp_base_url)[0]

    async with widget_page(server, jp_base_url, script=(STATIC / "common.js").read_text(encoding="utf-8")) as (page, errors):
        cfg = await page.evaluate("aisConfig()")
        assert cfg["apiUrl"] == f"{origin}{jp_base_url}aistudio/api"
        assert cfg["wsUrl"].startswith(f"ws://{origin.split('//')[1]}{jp_base_url}aistudio/api/events?token=")

        # REST: auth from PageConfig, the error envelope as AisError, a friendly box with Retry
        assert (await page.evaluate("aisApi('/me').then((me) => me.username)")) == "alice"
        missing = await page.evaluate("""aisApi('/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaa').catch((e) => {
            const box = aisErrorBox(e, () => {});
            return {name: e.name, status: e.status, code: e.code, retryable: e.retryable, text: box.textContent,
                    retry: Boolean(box.querySelector('[data-testid=ais-retry]'))};
        })""")
        assert missing["name"] == "AisError" and (missing["status"], missing["code"], missing["retryable"]) == (404, "not_found", False)
        assert missing["text"].startswith("Not found") and missing["retry"]

        # text only: a name that is markup stays text
        shown = await page.evaluate("""(name) => {
            const el = aisEl('div', {title: name, onclick: 'alert(1)'}, name, aisBadge(name));
            document.getElementById('a').appendChild(el);
            return {text: el.textContent, imgs: document.querySelectorAll('img').length, onclick: el.getAttribute('onclick')};
        }""", EVIL)
        assert shown == {"text": EVIL + EVIL, "imgs": 0, "onclick": None}

        # events: one shared socket; after a dropped connection the topic resumes after the
        # last seq seen, so the seqs stay contiguous: nothing missed, nothing repeated
        topic = f"job:{run['id']}"
        await page.evaluate("""(topic) => {
            window.got = []; window.hub = aisEvents();
            window.sub = hub.subscribe(topic, 0, (m) => got.push([m.seq, m.type]));
        }""", topic)
        await page.wait_for_function("got.length >= 1 && hub.state === 'open'")
        assert await page.evaluate("aisEvents() === hub")
        for step in range(3):
            assert (await api("POST", f"jobs/{run['id']}/metrics", json_body={"points": [{"key": "loss", "step": step, "value": 1.0}]})).status == 200
        await page.wait_for_function("got.length >= 4")
        await page.evaluate("hub.ws.close()")
        await page.wait_for_function("hub.state !== 'open'")
        for step in range(3, 6):  # published while the browser is disconnected
            await api("POST", f"jobs/{run['id']}/metrics", json_body={"points": [{"key": "loss", "step": step, "value": 0.5}]})
        cancel = await page.evaluate("aisApi(`/jobs/${%s}/cancel`, {method: 'POST'}).then((j) => j.state)" % json.dumps(run["id"]))
        assert cancel == "canceled"
        await page.wait_for_function("got.length >= 8 && got[got.length - 1][1] === 'status'", timeout=20000)
        got = await page.evaluate("got")
        assert [seq for seq, _ in got] == list(range(1, len(got) + 1))
        assert [t for _, t in got].count("metrics") == 6 and got[-1][1] == "status"
        await page.evaluate("sub.close()")

        # charts: the canvas reports the points it drew; smoothing is TensorBoard's debiased EMA
        points = await page.evaluate("""() => {
            const s = (n, f) => Array.from({length: n}, (_, i) => ({step: i, value: f(i), wall_time: 1000 + i}));
            const chart = aisLineChart(document.getElementById('c'), [{name: 'a', points: s(50, (i) => 1 / (i + 1))}, {name: 'b', points: s(10, (i) => i)}], {smoothing: 0.6, logY: true});
            const first = document.getElementById('c').dataset.points;
            chart.update([{name: 'a', points: s(70, (i) => i + 1)}], {xKey: 'time'});
            return [first, document.getElementById('c').dataset.points, aisSmooth([1, 1, 1], 0.9)];
        }""")
        assert points[0] == "60" and points[1] == "70" and points[2] == pytest.approx([1, 1, 1])

        # one failing widget shows its own error box; its neighbour renders untouched
        isolated = await page.evaluate("""() => {
            const a = document.getElementById('a'); const b = document.getElementById('b');
            aisMount(() => { throw new Error('broken widget'); })({model: null, el: a});
            aisMount(({el}) => { el.appendChild(aisEl('span', {}, 'fine')); })({model: null, el: b});
            return [a.querySelector('[data-testid=ais-error]').textContent, b.textContent];
        }""")
        assert "broken widget" in isolated[0] and isolated[1] == "fine"
        assert errors == []
