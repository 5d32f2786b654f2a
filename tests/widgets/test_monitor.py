"""The TrainingMonitor through its widget state against a real server: history, status, log
tail, the seqs the browser resumes from (nothing missed, nothing repeated), cancel, downsampled
reopening of a finished run, and every way of naming the job."""

from __future__ import annotations

import pytest

import aistudio_jupyter as ais
from aistudio_jupyter.runtime.events import subscribe
from aistudio_jupyter.runtime.training import Job
from aistudio_jupyter.widgets.monitor import TrainingMonitor
from tests.runtime import in_thread
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures


def logged_run(client, name: str, steps: int, **extra):
    run = ais.track(name, client=client, **extra)
    for i in range(steps):
        run.log({"train/loss": 1.0 / (i + 1), "val/acc": i / steps, "samples_per_s": 100.0 + i}, step=i)
    assert run.flush(30)
    return run


async def test_history_status_and_the_seq_the_browser_resumes_from(connect):
    def scenario():
        client = connect()
        run = logged_run(client, "watched", 50)
        mon = ais.monitor(run)
        assert mon.error is None and mon.loading is False
        assert mon.job_id == run.id and mon.state == "running" and mon.job["name"] == "watched"
        assert sorted(mon.series) == ["samples_per_s", "train/loss", "val/acc"]
        assert [(p["step"], p["value"]) for p in mon.series["train/loss"]] == [(i, 1.0 / (i + 1)) for i in range(50)]
        topic = f"job:{run.id}"
        head = mon.since[topic]
        assert head > 0
        # what the browser gets when it subscribes with `since`: only what came after the load
        run.log({"train/loss": 0.001}, step=50)
        assert run.flush(30)
        with subscribe(topic, since=head, api=client) as stream:
            first = stream.next(timeout=10)
            assert first.seq == head + 1 and first.type == "metrics"
            assert [(p["key"], p["step"]) for p in first.data["points"]] == [("train/loss", 50)]
        run.finish()
        mon.refresh()
        return mon, head

    mon, head = await in_thread(scenario)
    assert mon.state == "succeeded" and mon.since[f"job:{mon.job_id}"] > head and mon.revision == 2
    assert mon.series["train/loss"][-1]["step"] == 50


async def test_cancel_ends_the_job_and_the_run_hears_it(connect):
    def scenario():
        client = connect()
        run = logged_run(client, "to-cancel", 3)
        mon = TrainingMonitor(run.id, client=client)
        job = mon.cancel()
        assert job["state"] == "canceled" and mon.state == "canceled" and mon.error is None
        run.log({"train/loss": 0.5})
        run.flush(10)
        assert run.canceled
        run.finish()
        # a second cancel is refused by the server: a friendly error, not an exception
        assert mon.cancel() is None
        return mon

    mon = await in_thread(scenario)
    assert mon.state == "canceled"
    assert mon.error["status"] == 409 and mon.error["code"] == "conflict" and mon.error["retryable"] is False
    assert "already ended" in mon.error["message"]


async def test_a_finished_run_reopens_with_its_whole_history_downsampled(connect):
    def scenario():
        client = connect()
        run = logged_run(client, "long", 3000)
        run.finish()
        return TrainingMonitor(run, max_points=100), run

    mon, run = await in_thread(scenario)
    assert mon.state == "succeeded" and mon.max_points == 100
    loss = mon.series["train/loss"]
    assert 0 < len(loss) <= 100
    # the whole range, its first and last point and its extremes survive the downsampling
    assert loss[0]["step"] == 0 and loss[-1]["step"] == 2999
    assert max(p["value"] for p in loss) == 1.0 and min(p["value"] for p in loss) == 1.0 / 3000


async def test_every_way_of_naming_the_job(connect):
    def scenario():
        client = connect()
        run = logged_run(client, "named", 2)
        record = client.jobs.get(run.id)
        assert isinstance(record, Job)
        monitors = [TrainingMonitor(run), TrainingMonitor(record), TrainingMonitor(run.id, client=client), TrainingMonitor(dict(record), client=client), record.monitor()]
        run.finish()
        return run, monitors

    run, monitors = await in_thread(scenario)
    for mon in monitors:
        assert mon.error is None and mon.job_id == run.id and len(mon.series["train/loss"]) == 2
    with pytest.raises(TypeError):
        TrainingMonitor(42)
    with pytest.raises(ValueError):
        TrainingMonitor({"name": "no id"})


async def test_a_job_you_cannot_see_is_a_friendly_error(connect):
    def scenario():
        run = logged_run(connect("alice"), "private", 1)
        mon = TrainingMonitor(run.id, client=connect("bob"))
        run.finish()
        return mon

    mon = await in_thread(scenario)
    assert mon.job == {} and mon.series == {}
    assert mon.error["status"] == 404 and mon.error["code"] == "not_found"
    assert mon.error["message"].startswith("Not found")


IN_A_KERNEL = """
import aistudio_jupyter as ais
run = ais.track("in-a-kernel")
run.log({"loss": 1.0}, step=0)
assert run.flush(10)
job = ais.jobs.get(run.id)
job
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_job_displays_as_a_monitor_in_a_kernel(jp_serverapp, jp_fetch):
    from tests.runtime.test_kernel_client import started_kernel

    async with started_kernel(jp_serverapp, jp_fetch) as kc:
        shown: list[dict] = []

        def hook(msg):
            if msg["msg_type"] in ("execute_result", "display_data"):
                shown.append(msg["content"]["data"])

        reply = await kc.execute_interactive(IN_A_KERNEL, output_hook=hook, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        finished = await kc.execute_interactive("run.finish(); print(repr(job))", timeout=60)
        assert finished["content"]["status"] == "ok"
    [data] = shown
    # the widget, with the record's own repr as its text
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"].startswith("<job_") and "in-a-kernel" in data["text/plain"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_monitor_js_follows_the_run_and_cancels_it_without_the_kernel(connect, server, jp_base_url):
    from tests.widgets.browser import render, widget_page

    run = await in_thread(lambda: logged_run(connect(), "in-a-browser", 20))
    mon = await in_thread(lambda: TrainingMonitor(run))
    async with widget_page(server, jp_base_url) as (page, errors):
        await render(page, mon, "mon")
        root = page.locator("#mon")
        chart = root.locator('[data-testid=ais-monitor-chart][data-key="train/loss"]')
        await page.wait_for_function("document.querySelector('#mon [data-testid=ais-monitor-live]').dataset.state === 'open'")
        assert await chart.get_attribute("data-points") == "20"
        assert await root.locator("[data-testid=ais-monitor-status]").get_attribute("data-state") == "running"
        assert await root.locator("[data-testid=ais-monitor-eta]").text_content() != ""
        # points logged after the Python side loaded reach the chart straight from the server
        await in_thread(lambda: (run.log({"train/loss": 0.01}, step=20), run.flush(10)))
        await page.wait_for_function("""document.querySelector('#mon [data-testid=ais-monitor-chart][data-key="train/loss"]').dataset.points === '21'""")
        # Cancel calls the REST API from the browser; the status badge follows the event
        await root.locator("[data-testid=ais-monitor-cancel]").click()
        await page.wait_for_function("document.querySelector('#mon [data-testid=ais-monitor-status]').dataset.state === 'canceled'")
        assert await root.locator("[data-testid=ais-monitor-cancel]").is_disabled()
        assert await page.evaluate("window.aisModels.mon.sent") == [], "nothing went through the kernel"
        assert errors == []
    assert (await in_thread(lambda: connect().jobs.get(run.id))).state == "canceled"
    await in_thread(run.finish)


TRAINING_SCRIPT = """
import sys, time
import aistudio_jupyter as ais
for i in range(2000):
    print(f"line {i} " + "x" * 20)
print("ready", flush=True)
with ais.Run.current() as run:
    step = 0
    while True:  # until canceled: SIGTERM ends the process
        run.log({"train/loss": 1.0 / (step + 1)}, step=step)
        print(f"tick {step}", flush=True)
        step += 1
        time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def jobs_srv(tmp_path_factory, sqlite_template):
    import shutil

    from tests.jobs.helpers import job_server

    workdir = tmp_path_factory.mktemp("monitor-jobs")
    shutil.copy(sqlite_template, workdir / "aistudio.db")
    with job_server(workdir, f"sqlite:///{workdir / 'aistudio.db'}") as srv:
        yield srv


def test_a_script_jobs_log_tail_joins_its_live_log_and_cancel_ends_the_process(jobs_srv):
    from aistudio_jupyter.runtime.client import Client
    from tests.conftest import TOKENS
    from tests.jobs.helpers import log_text, submit, wait_for, wait_state, write

    write(jobs_srv, "train_loop.py", TRAINING_SCRIPT)
    with jobs_srv.client("alice") as http, Client(jobs_srv.api(), TOKENS["alice"]) as alice:
        created = submit(http, {"path": "train_loop.py"})
        wait_for(lambda: "tick 3" in log_text(http, created["id"]), timeout=60, what="the loop to run")
        mon = TrainingMonitor(created["id"], client=alice)
        assert mon.error is None and mon.state == "running" and mon.series["train/loss"]
        tail, end = mon.log_text["stdout"], mon.log_offsets["stdout"]
        lines = tail.splitlines()
        assert len(tail.encode()) <= 16 * 1024 and lines[0].startswith("line ") and lines[0].endswith("x" * 20)
        assert "ready" in lines and lines[-1].startswith("tick ")
        # the browser's rule (monitor.js addLog): drop what ends at or before the tail's end,
        # trim what overlaps it; the tail then continues without a gap or a repeat
        shown = tail.encode()
        with subscribe(mon.topic, since=mon.since[mon.topic], api=alice) as stream:
            while b"tick" not in shown[len(tail.encode()):] or shown.count(b"\n") < len(lines) + 5:
                event = stream.next(timeout=10)
                if event.type != "log" or event.data["stream"] != "stdout":
                    continue
                data = event.data["text"].encode()
                if event.data["end"] <= end:
                    continue
                start = event.data["end"] - len(data)
                shown += data[max(0, end - start):]
                end = event.data["end"]
        whole = http.get(f"/jobs/{created['id']}/logs", params={"offset": mon.log_offsets["stdout"] - len(tail.encode()), "limit": 1 << 20}).json()["text"]
        assert whole.startswith(shown.decode())
        assert mon.cancel()["cancel_requested_at"]
        done = wait_state(http, created["id"], ("canceled", "failed", "succeeded"), timeout=20)
        assert done["state"] == "canceled"
        mon.refresh()
        assert mon.state == "canceled" and mon.log_text["stdout"].rstrip().splitlines()[-1].startswith("tick ")
