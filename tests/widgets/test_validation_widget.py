"""The ValidationReportWidget through its widget state, without a browser, against a real server:
findings grouped by severity with pass/fail per rule, counts and example rows; a re-run of the
same rules (same version or the latest) from Python; a re-run the server refuses as a friendly
error; a pending report; and ``ValidationReport._repr_mimebundle_``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from aistudio_jupyter.widgets import base
from aistudio_jupyter.widgets.validation import ValidationReportWidget, group_findings
from tests.runtime import in_thread
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures

# the widget, not the database, is under test here: one database is enough
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

N = 60
RULES = [
    {"check": "unique", "column": "id"},
    {"check": "range", "column": "age", "min": 0, "max": 120, "severity": "warning"},
    {"check": "not_null", "column": "email"},
    {"check": "allowed_values", "column": "label", "values": ["a", "b"]},
]


def people(fixed: bool = False) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [i if fixed or i != 7 else 3 for i in range(N)],  # row 8 repeats row 4's id
            "age": [30 if fixed or i % 20 else 200 for i in range(N)],  # rows 1, 21, 41
            "email": [None if not fixed and i in (5, 6) else f"<b>u{i}</b>@x" for i in range(N)],
            "label": ["a" if i % 2 else "b" for i in range(N)],
        }
    )


@SQLITE
async def test_findings_are_grouped_by_severity_with_rules_counts_and_examples(connect):
    def scenario():
        alice = connect()
        version = alice.datasets.upload(people(), name="people", progress=False)
        report = alice.datasets.get(version.dataset_id).validate(RULES)
        return report, ValidationReportWidget(report)

    report, w = await in_thread(scenario)
    assert w.error is None and w.dataset_id == report["dataset_id"] and w.dataset_name == "people"
    assert w.report["id"] == report["id"] and w.report["state"] == "failed" and w.report["passed"] is False
    groups = w.groups
    assert set(groups) == {"error", "warning", "info"}
    failed_errors = [(f["rule"], f["check"]) for f in groups["error"] if not f["passed"]]
    assert failed_errors == [(0, "unique"), (2, "not_null")]
    # failed first, then passed, in each group
    assert [f["passed"] for f in groups["error"]] == sorted(f["passed"] for f in groups["error"])
    assert any(f["rule"] == 3 and f["passed"] for f in groups["error"])
    assert [(f["rule"], f["passed"], f["count"]) for f in groups["warning"] if f["rule"] != "auto"] == [(1, False, 3)]
    assert w.counts["error"]["failed"] == 2 and w.counts["warning"]["failed"] >= 1
    assert [(r["index"], r["passed"], r["count"]) for r in w.rules] == [(0, False, 2), (1, False, 3), (2, False, 2), (3, True, 0)]
    (unique,) = [f for f in groups["error"] if f["rule"] == 0]
    assert [e["row"] for e in unique["examples"]] and unique["examples"][0]["values"]
    (nulls,) = [f for f in groups["error"] if f["rule"] == 2]
    assert [e["row"] for e in nulls["examples"]] == [6, 7]
    json.dumps(w.get_state())
    assert group_findings([{"severity": "info", "passed": True}, {"severity": "info", "passed": False}])["info"] == [
        {"severity": "info", "passed": False}, {"severity": "info", "passed": True}]


@SQLITE
async def test_rerun_from_python_on_the_same_and_the_latest_version(connect):
    def scenario():
        alice = connect()
        version = alice.datasets.upload(people(), name="rerun", progress=False)
        ds = alice.datasets.get(version.dataset_id)
        w = ValidationReportWidget(ds.validate(RULES))
        first = w.report["id"]
        same = w.rerun()
        same_job = dict(w.job)
        ds.upload(people(fixed=True), progress=False)
        latest = w.rerun(version="latest")
        return first, same, same_job, latest, w

    first, same, same_job, latest, w = await in_thread(scenario)
    assert same["id"] != first and same["version"] == 1 and same["state"] == "failed" and same["rules"] == w.report["rules"]
    assert same_job["id"] == same["job_id"] and same_job["kind"] == "validate"
    assert latest["version"] == 2 and latest["state"] == "passed" and latest["passed"] is True
    assert w.report == latest and w.job["id"] == latest["job_id"] and w.error is None
    assert all(r["passed"] for r in w.rules) and w.counts["error"]["failed"] == 0


@SQLITE
async def test_a_refused_rerun_is_a_friendly_error_and_the_report_stays(connect):
    def scenario():
        alice = connect()
        version = alice.datasets.upload(people(), name="refused", progress=False)
        ds = alice.datasets.get(version.dataset_id)
        w = ValidationReportWidget(ds.validate(RULES))
        before = dict(w.report)
        ds.upload(pd.DataFrame({"id": [1, 2]}), progress=False)  # no "age" any more
        return before, w.rerun(version="latest"), w

    before, result, w = await in_thread(scenario)
    assert result is None and w.report == before
    assert w.error["status"] == 422 and "no column 'age'" in w.error["message"] and w.error["retryable"] is False


@SQLITE
async def test_a_pending_report_shows_pending_and_refreshes_to_its_result(connect):
    def scenario():
        alice = connect()
        version = alice.datasets.upload(people(fixed=True), name="pending", progress=False)
        report = alice.datasets.get(version.dataset_id).validate(RULES, wait=False)
        w = ValidationReportWidget(report)
        shown = (w.report["state"], dict(w.job), [r["passed"] for r in w.rules])
        report.wait(60)
        w.refresh()
        return report, shown, w

    report, (state, job, passed), w = await in_thread(scenario)
    assert state in ("pending", "running") and job["id"] == report["job_id"] and passed == [None] * len(RULES)
    assert w.report["state"] == "passed" and w.report["id"] == report["id"]


@SQLITE
async def test_a_report_displays_as_the_widget_in_a_kernel_and_as_its_html_table_elsewhere(connect, monkeypatch):
    def scenario():
        alice = connect()
        version = alice.datasets.upload(people(), name="shown-report", progress=False)
        return alice.datasets.get(version.dataset_id).validate(RULES)

    report = await in_thread(scenario)
    plain = report._repr_mimebundle_()
    assert plain == {"text/plain": repr(report), "text/html": report._repr_html_()}
    monkeypatch.setattr(base, "in_kernel", lambda: True)
    bundle = await in_thread(report._repr_mimebundle_)
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) from anywidget
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert bundle["text/plain"] == repr(report) and bundle["text/html"] == plain["text/html"]
