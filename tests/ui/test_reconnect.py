"""The sidebar across a server restart: it says it is disconnected (never a blank panel), an
action shows why it failed with Retry, and once the server is back the events socket reconnects
by itself and resumes with ``since``, so a change made while the browser was away shows up
without a reload.

The module restarts its Lab, so it has a Lab of its own (the module-scoped ``lab`` fixture).
"""

from __future__ import annotations

import json
import time

import httpx
from playwright.sync_api import expect

from .test_sidebar import open_sidebar

EVENTS_PATH = "/aistudio/api/events"


class EventsFrames:
    """Every frame of the page's events sockets, as Chromium's network layer saw them."""

    def __init__(self, page):
        self.sockets: list[dict] = []
        page.on("websocket", self._opened)

    def _opened(self, ws) -> None:
        if EVENTS_PATH not in ws.url:
            return
        record = {"sent": [], "received": [], "closed": False}
        self.sockets.append(record)
        ws.on("framesent", lambda payload: record["sent"].append(_json(payload)))
        ws.on("framereceived", lambda payload: record["received"].append(_json(payload)))
        ws.on("close", lambda _ws: record.__setitem__("closed", True))

    @property
    def connected(self) -> list[dict]:
        """The sockets that opened (a failed attempt is reported too, with no frames)."""
        return [s for s in self.sockets if s["sent"] or s["received"]]

    def last_seq(self, topic: str) -> int:
        """The highest seq the page has been sent on ``topic`` (an ack's head or an event)."""
        seqs = [m["seq"] for s in self.sockets for m in s["received"] if m.get("topic") == topic and isinstance(m.get("seq"), int)]
        return max(seqs)

    def has_event(self, topic: str, **data) -> bool:
        return any(m.get("topic") == topic and m.get("type") and all((m.get("data") or {}).get(k) == v for k, v in data.items()) for s in self.sockets for m in s["received"])

    def subscribes(self, socket: dict, topic: str) -> list[dict]:
        return [m for m in socket["sent"] if m.get("op") == "subscribe" and m.get("topic") == topic]


def wait_until(page, predicate, what: str, timeout: float = 30) -> None:
    """Poll a condition on what the test recorded, letting Playwright deliver its events."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(50)


def _json(payload) -> dict:
    try:
        value = json.loads(payload)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def dismiss_lab_dialogs(page) -> None:
    """JupyterLab's own "Server Connection Error" dialog (Lab's, not ours) is modal: dismiss it
    as a user would, so the sidebar behind it can be clicked."""
    for button in page.locator(".jp-Dialog .jp-Dialog-button").all():
        if button.is_visible():
            button.click()


def test_the_sidebar_survives_a_server_restart_and_resumes_with_since(lab, page, artifacts):
    (lab.root / "sleeper.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n")
    frames = EventsFrames(page)
    sidebar = open_sidebar(page, lab)
    jobs = sidebar.locator('[data-testid="ais-jobs"]')
    indicator = sidebar.locator('[data-testid="ais-connection"]')
    api = httpx.Client(base_url=lab.api(), headers=lab.auth(), timeout=30)
    try:
        first = api.post("/jobs", json={"name": "before the outage", "kind": "script", "spec": {"path": "sleeper.py"}})
        assert first.status_code == 201, first.text
        first = first.json()
        first_row = jobs.locator(f'[data-testid="ais-job-{first["id"]}"]')
        expect(first_row).to_have_attribute("data-state", "running", timeout=60_000)
        topic = f"user:{api.get('/me').json()['username']}"
        # the row may show `running` from the listing: wait for the event itself
        wait_until(page, lambda: frames.has_event(topic, id=first["id"], state="running"), "the running event")
        seen_before = frames.last_seq(topic)
        assert len(frames.connected) == 1

        # -- the server goes away ---------------------------------------------------------
        lab.stop()
        expect(indicator).to_have_text("reconnecting…", timeout=15_000)
        assert frames.sockets[0]["closed"]
        # the panel keeps what it had and says how old it is, rather than blank or pretend
        expect(sidebar.locator('[data-testid="ais-stale-jobs"]')).to_contain_text("offline — showing data from")
        expect(first_row).to_have_attribute("data-state", "running")
        dismiss_lab_dialogs(page)
        # an action that needs the API says why it failed, and offers Retry
        first_row.locator('[data-testid="ais-job-cancel"]').click()
        failed = first_row.locator('[data-testid="ais-job-action-error"]')
        expect(failed).to_contain_text("AI Studio is unreachable")
        expect(failed.locator('[data-testid="ais-retry"]')).to_be_visible()
        # Retry while still down fails the same way, visibly, and breaks nothing
        failed.locator('[data-testid="ais-retry"]').click()
        expect(failed).to_contain_text("Could not reach AI Studio")
        # a load that fails shows the same, in place of that list only
        sidebar.locator('[data-testid="ais-dataset-search"]').fill("iris")
        list_error = sidebar.locator('[data-testid="ais-error-dataset-list"]')
        expect(list_error).to_contain_text("AI Studio is unreachable")
        expect(list_error.locator('[data-testid="ais-retry"]')).to_be_visible()
        expect(first_row).to_be_visible()
        dismiss_lab_dialogs(page)
        page.screenshot(path=str(artifacts / "ui-reconnect-disconnected.png"))

        # -- it comes back, and things change before the browser is back -------------------
        # Chromium offline, so its reconnect waits until the changes are made: they can only
        # reach the page by the replay after `since`, not as live events
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        lab.start()
        canceled = api.post(f"/jobs/{first['id']}/cancel", json={})
        assert canceled.status_code in (200, 202), canceled.text
        second = api.post("/jobs", json={"name": "queued while away", "kind": "script", "spec": {"path": "sleeper.py"}})
        assert second.status_code == 201, second.text
        second = second.json()
        assert len(frames.connected) == 1, "the browser reconnected while offline"
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

        # -- the sidebar is live again by itself, with what it missed -----------------------
        expect(indicator).to_have_text("live", timeout=30_000)
        second_row = jobs.locator(f'[data-testid="ais-job-{second["id"]}"]')
        expect(second_row).to_be_visible(timeout=30_000)
        expect(first_row).to_have_attribute("data-state", "canceled", timeout=30_000)
        expect(sidebar.locator('[data-testid="ais-stale-jobs"]')).to_have_count(0)
        # the failed action's message went with the state it was about, and the list that
        # failed for the outage loaded again by itself
        expect(failed).to_have_count(0)
        expect(list_error).to_have_count(0)
        expect(sidebar.locator('[data-testid="ais-datasets-empty"]')).to_be_visible()
        expect(sidebar.locator(".ais-error")).to_have_count(0)
        dismiss_lab_dialogs(page)
        page.screenshot(path=str(artifacts / "ui-reconnect-recovered.png"))

        # the resubscribe on the new socket carried the last seq the page had seen...
        assert len(frames.connected) == 2
        resumed = frames.connected[-1]
        assert frames.subscribes(resumed, topic)[0] == {"op": "subscribe", "topic": topic, "since": seen_before}
        # ...and what it missed came as the replay after it: contiguous seqs, no gap, none twice
        replayed = [m for m in resumed["received"] if m.get("topic") == topic and "type" in m]
        ack = next(m for m in resumed["received"] if m.get("op") == "subscribed" and m.get("topic") == topic)
        assert "pruned_through" not in ack
        assert ack["seq"] > seen_before
        assert [m["seq"] for m in replayed][: ack["seq"] - seen_before] == list(range(seen_before + 1, ack["seq"] + 1))
        assert {m["data"]["id"] for m in replayed} >= {first["id"], second["id"]}
        # no page load: the one document saw the whole outage
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        assert not page.dialogs
    finally:
        for job in api.get("/jobs").json().get("items", []) if lab.is_up() else []:
            if job["state"] in ("queued", "starting", "running"):
                api.post(f"/jobs/{job['id']}/cancel", json={})
        api.close()
