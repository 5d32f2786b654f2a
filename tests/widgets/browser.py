"""Headless Chromium for the widgets' JavaScript, without JupyterLab: a page on the test
server's origin (so REST and the events socket reach the real server), PageConfig with an AI
Studio token, and widgets rendered from their Python state through a minimal stand-in for the
anywidget model (get/set/on/off). The full JupyterLab flows live in tests/browser/."""

from __future__ import annotations

import contextlib
import json
from typing import Any

CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script id="jupyter-config-data" type="application/json">{config}</script></head>
<body><div id="a"></div><div id="b"></div><canvas id="c" style="width:300px;height:150px"></canvas>
<script>{script}</script></body></html>"""

#: the part of anywidget's model API the widgets use; kernel messages go nowhere
FAKE_MODEL = """
window.aisFakeModel = (state) => {
  const listeners = {};
  const sent = [];
  return {
    sent,
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; (listeners['change:' + k] || []).slice().forEach((f) => f()); },
    on: (n, f) => { (listeners[n] = listeners[n] || []).push(f); },
    off: (n, f) => { listeners[n] = (listeners[n] || []).filter((g) => g !== f); },
    save_changes: () => {},
    send: (msg) => sent.push(msg),
  };
};
window.aisRender = async (esm, state, id) => {
  const url = URL.createObjectURL(new Blob([esm], { type: 'text/javascript' }));
  const mod = await import(url);
  const el = document.createElement('div');
  el.id = id;
  document.body.appendChild(el);
  const model = aisFakeModel(state);
  (window.aisModels = window.aisModels || {})[id] = model;
  mod.default.render({ model, el });
};
"""


@contextlib.asynccontextmanager
async def widget_page(server: Any, base_url: str, *, user: str = "alice", script: str = ""):
    """A Playwright page on the server's origin; yields ``(page, errors)``."""
    from playwright.async_api import async_playwright

    token = server.services.tokens.mint(user, "browser-test", "personal")[0]
    origin = server.kernel_api_url().split(base_url)[0]
    page_url = f"{origin}{base_url}widget-test.html"
    html = PAGE.format(config=json.dumps({"baseUrl": base_url, "token": token}), script=FAKE_MODEL + script)
    async with async_playwright() as pw:
        # a page fulfilled by the test counts as outside the loopback network: Chromium's local
        # network access checks would block its WebSocket to 127.0.0.1 (a page Jupyter serves is not)
        args = ["--no-sandbox", "--headless", "--disable-background-networking", "--disable-features=LocalNetworkAccessChecks"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.route(page_url, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
            await page.goto(page_url)
            yield page, errors
        finally:
            await browser.close()


async def render(page: Any, widget: Any, element_id: str) -> None:
    """Render ``widget`` (a StudioWidget) into a new element from its current Python state."""
    state = {k: v for k, v in widget.get_state().items() if k != "_esm"}
    await page.evaluate("([esm, state, id]) => aisRender(esm, state, id)", [widget._esm, json.loads(json.dumps(state, default=str)), element_id])
