"""Upload progress on the events WebSocket: every acknowledged offset, then the outcome, on
`upload:<id>`; a new dataset version on `dataset:<id>`. Replayed with `since` like any topic."""

from __future__ import annotations

from .test_events import collect, subscribe, ws  # noqa: F401 -- ws is a fixture
from .test_uploads import create, patch


async def test_progress_then_completion_are_published(api, ws):  # noqa: F811
    data = b"a,b\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(2000))
    half = len(data) // 2
    upload_id = await create(api, len(data), name="progress")
    assert (await patch(api, upload_id, 0, data[:half])).status == 204
    assert (await patch(api, upload_id, half, data[half:])).status == 204

    conn = await ws("alice")
    await subscribe(conn, f"upload:{upload_id}", since=0)
    events = await collect(conn, 3)
    assert [(e["type"], e["data"]["state"]) for e in events] == [("progress", "active"), ("progress", "active"), ("status", "completed")]
    assert [e["data"]["offset"] for e in events] == [half, len(data), len(data)]
    assert all(e["data"]["length"] == len(data) for e in events)
    completed = events[-1]["data"]
    assert completed["version"] == 1 and completed["format"] == "csv"

    await subscribe(conn, f"dataset:{completed['dataset_id']}", since=0)
    (announced,) = await collect(conn, 1)
    assert announced["type"] == "version" and announced["data"]["version_id"] == completed["version_id"]
    conn.close()


async def test_a_failed_upload_says_why(api, ws):  # noqa: F811
    data = b"PAR1 not really parquet PAR1"
    upload_id = await create(api, len(data), name="broken")
    reply = await patch(api, upload_id, 0, data)
    assert reply.status == 422, reply.body  # detected as Parquet, unreadable

    conn = await ws("alice")
    await subscribe(conn, f"upload:{upload_id}", since=0)
    progress, outcome = await collect(conn, 2)
    assert progress["data"]["offset"] == len(data)
    assert outcome["type"] == "status" and outcome["data"]["state"] == "failed"
    assert outcome["data"]["error"] == reply.body["error"]["message"]
    conn.close()
