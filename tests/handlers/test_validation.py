"""Dataset validation through HTTP, on SQLite and PostgreSQL: every rule passing on a clean file
and failing on one with known defects (exact counts and row numbers), the automatic checks
(malformed rows with their lines, mixed types, invalid UTF-8, empty columns), CSV and Parquet,
refused rules, privacy, the job's progress events, lost jobs after a restart, and the Python
client's ``Dataset.validate``."""

from __future__ import annotations

import asyncio
import io
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aistudio_jupyter.runtime.client import Client
from tests.conftest import TOKENS
from tests.runtime import in_thread

from .test_rows import dataset_with
from .test_uploads import app, s3_config  # noqa: F401 -- fixtures

N = 60
HEADER = ["id", "name", "score", "label", "when"]

#: one rule of each kind; the clean file passes them all, the defective one fails each as noted
RULES = [
    {"check": "type", "column": "id", "expected": "int"},
    {"check": "type", "column": "score", "expected": "float"},
    {"check": "type", "column": "when", "expected": "date"},
    {"check": "not_null", "column": "when"},
    {"check": "unique", "column": "id"},
    {"check": "range", "column": "score", "min": 0, "max": 100},
    {"check": "min", "column": "score", "value": 0},
    {"check": "max", "column": "score", "value": 100},
    {"check": "regex", "column": "name", "pattern": "n[0-9]+"},
    {"check": "allowed_values", "column": "label", "values": ["a", "b"]},
    {"check": "row_count", "min": 10, "max": 60},
    {"check": "duplicate_rows"},
    {"check": "class_balance", "column": "label", "min_fraction": 0.05},
    {"check": "class_balance", "column": "label", "max_ratio": 2, "severity": "warning"},
]
#: rule index → (count, example rows) on the defective file
FAILURES = {
    1: (1, [5]),
    2: (1, [15]),
    3: (2, [13, 14]),
    4: (2, [3, 61]),
    5: (2, [5, 7]),
    6: (1, [5]),
    7: (2, [5, 7]),
    8: (1, [9]),
    9: (1, [11]),
    10: (61, []),
    11: (1, [61]),
    12: (1, []),
    13: (3, []),
}


def clean_records(n: int = N) -> list[dict]:
    return [{"id": i, "name": f"n{i}", "score": i * 1.5, "label": "ab"[i % 2], "when": f"2024-01-{i % 28 + 1:02d}"} for i in range(1, n + 1)]


def defective_records() -> list[dict]:
    rows = clean_records()
    for row in rows:
        row["score"] = f"{row['score']}"  # a text column, as in a CSV
        row["empty"] = None
    defects = {5: {"score": "oops"}, 7: {"score": "150"}, 9: {"name": "bad name"}, 11: {"label": "c"}, 13: {"when": None}, 14: {"when": None}, 15: {"when": "2020-13-45"}}
    for number, change in defects.items():
        rows[number - 1].update(change)
    rows.append(dict(rows[2]))  # row 61 repeats row 3 exactly
    return rows


def csv_of(rows: list[dict], columns: list[str]) -> list[bytes]:
    return [",".join(columns).encode()] + [",".join("" if r[c] is None else str(r[c]) for c in columns).encode() for r in rows]


def defective_csv() -> bytes:
    """The defective rows, with three lines that are not rows: lines 21, 31 and 44."""
    lines = csv_of(defective_records(), [*HEADER, "empty"])
    lines.insert(20, b"1,2,3,4,5,6,7,8")  # too many fields
    lines.insert(30, b"1,2")  # too few
    lines.insert(43, b"99,n\xff99,1.0,a,2024-01-01,")  # not UTF-8
    return b"\n".join(lines) + b"\n"


def parquet_of(rows: list[dict], schema: pa.Schema | None = None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    return buf.getvalue()


def line_of(row: int) -> int:
    """Where row ``row`` of the defective CSV is: after the header and the lines that are not rows."""
    line = 1 + row
    for bad in (21, 31, 44):
        line += bad <= line
    return line


async def validate(api, ds: str, body: dict, user: str = "alice"):
    return await api("POST", f"datasets/{ds}/validate", user=user, json_body=body)


async def finished(api, ds: str, vid: str, user: str = "alice", timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        reply = await api("GET", f"datasets/{ds}/validations/{vid}", user=user)
        assert reply.status == 200, reply.body
        if reply.body["state"] in ("passed", "failed", "error"):
            return reply.body
        assert time.monotonic() < deadline, reply.body
        await asyncio.sleep(0.05)


async def run_rules(api, data: bytes, name: str, rules: list = RULES) -> tuple[dict, dict]:
    ds = await dataset_with(api, data, name)
    started = await validate(api, ds, {"rules": rules})
    assert started.status == 202, started.body
    assert started.body["validation"]["state"] == "pending" and started.body["job"]["kind"] == "validate"
    assert started.body["job"]["spec"] == {"dataset_id": ds, "version": 1, "validation_id": started.body["validation"]["id"]}
    return await finished(api, ds, started.body["validation"]["id"]), started.body["job"]


def by_rule(report: dict) -> dict:
    return {f["rule"]: f for f in report["findings"] if f["rule"] != "auto"}


def auto(report: dict, check: str) -> list[dict]:
    return [f for f in report["findings"] if f["rule"] == "auto" and f["check"] == check]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_clean_file_passes_every_rule(api, fmt):
    rows = clean_records()
    data = b"\n".join(csv_of(rows, HEADER)) + b"\n" if fmt == "csv" else parquet_of(rows)
    # a failed warning is reported but does not fail the report
    report, _ = await run_rules(api, data, f"clean-{fmt}", [*RULES, {"check": "row_count", "min": 1000, "severity": "warning"}])
    assert report["state"] == "passed" and report["passed"] is True, report
    findings = by_rule(report)
    assert all(findings[i]["passed"] and findings[i]["count"] == (N if RULES[i]["check"] == "row_count" else 0) for i in range(len(RULES))), findings
    assert not findings[len(RULES)]["passed"] and findings[len(RULES)]["severity"] == "warning"
    assert report["summary"]["rows"] == N and report["summary"]["warnings"] == 1 and report["summary"]["errors"] == 0
    expected_types = {"id": "int", "name": "string", "score": "float", "label": "string", "when": "date"}
    assert report["summary"]["inferred_types"] == expected_types
    assert all(f["passed"] for f in report["findings"] if f["rule"] == "auto")


def defective(fmt: str) -> bytes:
    if fmt == "csv":
        return defective_csv()
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.string()), ("label", pa.string()), ("when", pa.string()), ("empty", pa.float64())])
    return parquet_of(defective_records(), schema)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_defective_file_fails_each_rule_with_counts_and_rows(api, fmt):
    data = defective(fmt)
    report, _ = await run_rules(api, data, f"defective-{fmt}")
    check_defective(report, fmt, data)


# the storage and the client are what these two tests are about: one database is enough
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_s3_stored_versions_validate_as_local_ones(s3_config, api):
    for fmt in ("csv", "parquet"):
        data = defective(fmt)
        report, _ = await run_rules(api, data, f"s3-defective-{fmt}")
        check_defective(report, fmt, data)


def check_defective(report: dict, fmt: str, data: bytes) -> None:
    assert report["state"] == "failed" and report["passed"] is False
    findings = by_rule(report)
    assert findings[0]["passed"] and findings[0]["count"] == 0
    for i, (count, rows) in FAILURES.items():
        f = findings[i]
        assert (f["passed"], f["count"], [e["row"] for e in f["examples"]]) == (False, count, rows), (i, f)
        if fmt == "csv":
            assert [e["line"] for e in f["examples"]] == [line_of(r) for r in rows], (i, f)
    assert findings[5]["examples"][0]["values"] == {"score": "oops"} and findings[5]["examples"][1]["values"] == {"score": "150"}
    assert findings[4]["details"]["duplicated_values"] == 1
    assert findings[13]["severity"] == "warning" and findings[13]["details"]["smallest"] == [["c", 1], ["a", 30], ["b", 30]]
    assert report["summary"]["errors"] == len(FAILURES) - 1 + (2 if fmt == "csv" else 0)

    (mixed,) = auto(report, "mixed_types")
    assert (mixed["column"], mixed["count"], mixed["examples"][0]["row"], mixed["examples"][0]["values"]) == ("score", 1, 5, {"score": "oops"})
    (empty,) = auto(report, "empty_column")
    assert (empty["column"], empty["count"], empty["passed"]) == ("empty", 61, False)
    (schema_finding,) = auto(report, "schema")
    types = {c["name"]: c["type"] for c in schema_finding["details"]["columns"]}
    assert types == {"id": "int", "name": "string", "score": "string", "label": "string", "when": "string", "empty": "empty"}
    if fmt == "csv":
        (malformed,) = auto(report, "malformed_rows")
        assert (malformed["passed"], malformed["count"]) == (False, 3)
        assert [(e["line"], e["values"]["error"]) for e in malformed["examples"]] == [(21, "TOO MANY COLUMNS"), (31, "MISSING COLUMNS"), (44, "INVALID ENCODING")]
        (encoding,) = auto(report, "encoding")
        assert (encoding["passed"], encoding["count"]) == (False, 1)
        assert encoding["examples"][0]["line"] == 44 and encoding["examples"][0]["values"] == {"byte_offset": data.index(b"\xff"), "byte": "0xff"}
    else:
        assert not auto(report, "malformed_rows") and not auto(report, "encoding")


async def test_refused_rules_and_versions(api):
    ds = await dataset_with(api, b"a,b\n1,2\n", "refusals")
    cases = [
        ({"rules": [{"check": "unique", "column": "nope"}]}, "nope"),
        ({"rules": [{"check": "regex", "column": "a", "pattern": "(a)\\1"}]}, "RE2"),
        ({"rules": [{"check": "regex", "column": "a", "pattern": "x" * 513}]}, "at most 512"),
        ({"rules": [{"check": "range", "column": "a"}]}, "min, max"),
        ({"rules": [{"check": "sorted", "column": "a"}]}, "check"),
        ({"rules": [{"check": "not_null", "column": "a", "extra": 1}]}, "extra"),
        ({"version": 0}, "version"),
    ]
    for body, words in cases:
        reply = await validate(api, ds, body)
        assert reply.status == 422 and words in reply.error["message"] + str(reply.error["details"]), (body, reply.body)
    assert (await validate(api, ds, {"rules": [{"check": "unique", "column": "nope"}]})).error["details"]["column"] == "nope"
    assert (await validate(api, ds, {"version": 2})).status == 404
    empty = await api("POST", "datasets", json_body={"name": "no-versions"})
    assert (await validate(api, empty.body["id"], {})).status == 409
    assert (await api("GET", f"datasets/{ds}/validations/val_nothing")).status == 404


async def test_privacy_writers_validate_readers_read(api):
    private = await dataset_with(api, b"a,b\n1,2\n", "private-one")
    started = await validate(api, private, {"rules": [{"check": "not_null", "column": "a"}]})
    vid = started.body["validation"]["id"]
    await finished(api, private, vid)
    for path in (f"datasets/{private}/validations/{vid}", f"datasets/{private}/validations"):
        assert (await api("GET", path, user="bob")).status == 404
    assert (await validate(api, private, {}, user="bob")).status == 404
    assert (await api("GET", f"jobs/{started.body['job']['id']}", user="bob")).status == 404

    shared = await dataset_with(api, b"a,b\n1,2\n", "shared-one")
    assert (await api("PATCH", f"datasets/{shared}", json_body={"visibility": "team", "team": "vision"})).status == 200
    # bob reads the team's dataset but does not edit it: no validating, but reading reports
    assert (await validate(api, shared, {}, user="bob")).status == 403
    vid = (await validate(api, shared, {})).body["validation"]["id"]
    assert (await finished(api, shared, vid, user="bob"))["state"] == "passed"
    listed = await api("GET", f"datasets/{shared}/validations", user="bob")
    assert [v["id"] for v in listed.body["items"]] == [vid]
    assert (await api("GET", f"datasets/{shared}/validations/{vid}", user="carol")).status == 404


async def test_job_progress_events_and_state(api, app):  # noqa: F811
    data = b"\n".join(csv_of(clean_records(), HEADER)) + b"\n"
    report, job = await run_rules(api, data, "progress", RULES[:3])
    done = await api("GET", f"jobs/{job['id']}")
    assert done.body["state"] == "succeeded" and done.body["progress"] == 1.0
    history = await app.services.events.history(f"job:{job['id']}")
    progress = [e["data"] for e in history if e["type"] == "progress"]
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress) and progress[-1]["progress"] == 1.0
    assert "checking rule 3/3: type(when)" in [p["message"] for p in progress]
    assert [e["data"]["state"] for e in history if e["type"] == "status"] == ["queued", "running", "succeeded"]
    mine = await app.services.events.history("user:alice")
    assert [e["data"]["state"] for e in mine if e["type"] == "job" and e["data"]["id"] == job["id"]] == ["queued", "running", "succeeded"]
    # the newest report first
    again = await validate(api, report["dataset_id"], {})
    listed = await api("GET", f"datasets/{report['dataset_id']}/validations")
    assert [v["id"] for v in listed.body["items"]] == [again.body["validation"]["id"], report["id"]]
    await finished(api, report["dataset_id"], again.body["validation"]["id"])


async def test_a_canceled_validation_ends_its_report(api):
    ds = await dataset_with(api, defective_csv(), "cancel")
    started = await validate(api, ds, {"rules": RULES})
    job_id, vid = started.body["job"]["id"], started.body["validation"]["id"]
    canceled = await api("POST", f"jobs/{job_id}/cancel")
    report = await finished(api, ds, vid)
    job = (await api("GET", f"jobs/{job_id}")).body
    # whichever came first, the cancel or the end of the run, job and report agree
    if canceled.status in (200, 202):
        assert (job["state"], report["state"], report["passed"]) == ("canceled", "error", None)
        assert "canceled" in report["error"]
    else:
        assert canceled.status == 409 and (job["state"], report["state"]) == ("succeeded", "failed")


async def test_jobs_left_by_a_dead_server_are_lost_or_rerun(api, app):  # noqa: F811
    from aistudio_jupyter.store import orm

    ds = await dataset_with(api, b"a,b\n1,2\n", "restart")
    first = await validate(api, ds, {})
    await finished(api, ds, first.body["validation"]["id"])
    second = await validate(api, ds, {})
    await finished(api, ds, second.body["validation"]["id"])
    ids = [first.body["job"]["id"], second.body["job"]["id"]]

    def pretend(session):
        # the first was running under a server process that is gone; the second never started
        running, queued = session.get(orm.Job, ids[0]), session.get(orm.Job, ids[1])
        running.state, running.lease_owner, running.finished_at = "running", f"{__import__('socket').gethostname()}:999999999:dead", None
        queued.state, queued.finished_at = "queued", None
        for job in (running, queued):
            session.get(orm.ValidationReport, job.spec["validation_id"]).state = "running" if job is running else "pending"

    await app.services.db.run(pretend, write=True)
    await app.services.validation.sweep()
    lost = await api("GET", f"datasets/{ds}/validations/{first.body['validation']['id']}")
    assert (lost.body["state"], lost.body["error"]) == ("error", "server restarted during validation")
    assert (await api("GET", f"jobs/{ids[0]}")).body["state"] == "lost"
    assert (await finished(api, ds, second.body["validation"]["id"]))["state"] == "passed"
    assert (await api("GET", f"jobs/{ids[1]}")).body["state"] == "succeeded"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_client_validate_round_trip(api, app):  # noqa: F811
    ds = await dataset_with(api, defective_csv(), "client-validate")
    url = app.kernel_api_url()

    def scenario():
        with Client(url=url, token=TOKENS["alice"]) as client:
            handle = client.datasets.get(ds)
            report = handle.validate([{"check": "unique", "column": "id"}, {"check": "row_count", "max": 100}])
            assert report.passed is False and report.state == "failed"
            unique = next(f for f in report.findings if f["rule"] == 0)
            assert (unique["count"], [e["row"] for e in unique["examples"]]) == (2, [3, 61])
            frame = report.to_pandas()
            assert {"rule", "check", "severity", "column", "passed", "count", "message"} <= set(frame.columns) and len(frame) == len(report.findings)
            html = report._repr_html_()
            assert "<table" in html and "unique" in html and "<script" not in html
            # no rules: the automatic checks alone fail it (malformed lines, invalid UTF-8)
            queued = handle.validate(wait=False)
            assert queued.state in ("pending", "running", "failed") and queued.job.kind == "validate"
            return queued.wait(timeout=30).state

    assert await in_thread(scenario) == "failed"


BOUNDED = """
import json, sys
from aistudio_jupyter.schemas.validation import ValidateRequest
from aistudio_jupyter.services import validation_scan
from aistudio_jupyter.services.scan import Scannable, Source

path, work, limit, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rules = ValidateRequest.model_validate({"rules": [{"check": "unique", "column": "id"}, {"check": "duplicate_rows"}, {"check": "range", "column": "score", "min": 0, "max": 100}]}).rules
def status(field):
    # VmHWM, not getrusage: after fork and exec, ru_maxrss still counts the parent's pages
    with open("/proc/self/status") as f:
        return int(f.read().split(field + ":")[1].split()[0]) * 1024

base = status("VmRSS")
source = Source("ds", "dv", 1, "csv", {}, "0" * 64, size)
findings, summary = validation_scan.run(Scannable(source, path=path), rules, validation_scan.Limits(limit, 2, work), lambda *_: None)
peak = status("VmHWM")
print(json.dumps({"findings": findings, "summary": summary, "growth": peak - base}))
"""


def test_a_file_larger_than_the_memory_limit_validates_in_bounded_memory(tmp_path):
    """A CSV larger than DuckDB's memory_limit validates; the process grows by about the same
    ~100 MB whether the file is 50 MB or 130 MB (measured; 50 MB here to keep the test short)."""
    import json
    import subprocess
    import sys

    import duckdb

    n, path = 2_500_000, tmp_path / "large.csv"
    rows = "SELECT i AS id, 'name' || (i % 1000) AS name, (i * 7 % 10000) / 100.0 AS score FROM range(?) t(i)"
    # the last row repeats the first
    duckdb.execute(f"COPY ({rows} UNION ALL SELECT 0, 'name0', 0.0) TO '{path}' (HEADER)", [n])
    size = path.stat().st_size
    assert size > 48 * 1024**2
    out = subprocess.run([sys.executable, "-c", BOUNDED, str(path), str(tmp_path), "48MB", str(size)], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    findings = {f["rule"]: f for f in result["findings"] if f["rule"] != "auto"}
    assert (findings[0]["count"], [e["row"] for e in findings[0]["examples"]]) == (2, [1, n + 1])
    assert (findings[1]["count"], [e["row"] for e in findings[1]["examples"]]) == (1, [n + 1])
    assert findings[2]["passed"] and result["summary"]["rows"] == n + 1
    assert result["growth"] < 48 * 1024**2 + 96 * 1024**2, result["growth"]
