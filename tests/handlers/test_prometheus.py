"""`aistudio_*` metrics on Jupyter's own `/metrics`: request latency by handler, upload bytes,
jobs by state and queue depth — read back through the scrape endpoint, as Prometheus would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ..conftest import TOKENS
from .test_uploads import create, patch


async def scrape(jp_fetch, user: str = "alice") -> dict[tuple[str, tuple], float]:
    response = await jp_fetch("metrics", headers={"Authorization": f"token {TOKENS[user]}"})
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_uploads_and_jobs_are_counted(api, jp_fetch, jp_serverapp):
    before = await scrape(jp_fetch)
    for _ in range(3):
        assert (await api("GET", "datasets")).status == 200
    assert (await api("GET", "datasets/ds_nope")).status == 404
    data = b"a,b\n" + b"1,2\n" * 500
    upload_id = await create(api, len(data), name="counted")
    assert (await patch(api, upload_id, 0, data)).status == 204
    run = await api("POST", "jobs/interactive", json_body={"name": "gauged"})
    assert run.status == 201
    await jp_serverapp.web_app.settings["aistudio"].services.job_gauges.sample()

    after = await scrape(jp_fetch)
    count = "aistudio_api_request_duration_seconds_count"
    assert value(after, count, handler="DatasetsHandler", method="GET", status="2xx") - value(before, count, handler="DatasetsHandler", method="GET", status="2xx") == 3
    assert value(after, count, handler="DatasetHandler", method="GET", status="4xx") - value(before, count, handler="DatasetHandler", method="GET", status="4xx") == 1
    assert value(after, "aistudio_upload_bytes_total") - value(before, "aistudio_upload_bytes_total") == len(data)
    assert value(after, "aistudio_jobs", state="running") >= 1
    assert ("aistudio_job_queue_depth", ()) in after


async def test_metrics_need_authentication(jp_fetch):
    from tornado.httpclient import HTTPClientError

    try:
        response = await jp_fetch("metrics", headers={"Authorization": ""})
    except HTTPClientError as exc:
        assert exc.code in (302, 401, 403)
    else:
        assert b"aistudio_" not in response.body
