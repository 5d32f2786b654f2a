"""ValidationReportWidget: a validation report's findings by severity, pass/fail per rule, counts
and example rows, with a Re-run button.

The kernel hands over the report as the API returned it. Re-run is done by the browser itself:
it POSTs ``/datasets/{id}/validate`` with the same rules, follows the new job's ``progress`` and
``status`` events on ``job:<id>`` and reads the new report when the job has run, so it works
while the kernel is busy. ``rerun()`` does the same from Python, for scripts and tests.
"""

from __future__ import annotations

from typing import Any

import traitlets

from ..runtime.client import APIError, Client
from ..runtime.validation import FINISHED, ValidationReport, validate
from .base import StudioWidget

SEVERITIES = ("error", "warning", "info")


def group_findings(findings: list[dict]) -> dict[str, list[dict]]:
    """Findings by severity (error, warning, info), the failed ones first within each."""
    groups: dict[str, list[dict]] = {s: [] for s in SEVERITIES}
    for finding in findings:
        groups.setdefault(finding.get("severity") or "info", []).append(finding)
    for items in groups.values():
        items.sort(key=lambda f: bool(f.get("passed")))  # stable: the server's order otherwise
    return groups


def rule_results(report: dict) -> list[dict[str, Any]]:
    """One entry per rule of the request: the rule, whether all its findings passed (None while
    the report has not run) and how many rows offended."""
    findings = report.get("findings") or []
    out = []
    for index, rule in enumerate(report.get("rules") or []):
        own = [f for f in findings if f.get("rule") == index]
        passed = None if report.get("state") not in FINISHED or not own else all(f.get("passed") for f in own)
        out.append({"index": index, "rule": rule, "passed": passed, "count": sum(int(f.get("count") or 0) for f in own if not f.get("passed"))})
    return out


class ValidationReportWidget(StudioWidget):
    """One validation report, grouped by severity, with a Re-run of the same rules."""

    _module = "validation.js"

    dataset_id = traitlets.Unicode(help="The dataset validated.").tag(sync=True)
    dataset_name = traitlets.Unicode(help="Its name (the owner's text, shown as text only).").tag(sync=True)
    report = traitlets.Dict(help="The report as GET /datasets/{id}/validations/{vid} answers it.").tag(sync=True)
    job = traitlets.Dict(help="The validate job of the report last started ({} when not known).").tag(sync=True)

    def __init__(self, report: ValidationReport | dict, *, client: Client | None = None, **traits: Any) -> None:
        if not isinstance(report, dict) or "id" not in report or "dataset_id" not in report:
            raise TypeError("ValidationReportWidget takes a validation report (ds.validate(...)) or its dict.")
        own = getattr(report, "_client", None)
        job = getattr(report, "job", None)
        super().__init__(client=client or own, dataset_id=report["dataset_id"], report=dict(report), job=dict(job) if isinstance(job, dict) else {}, **traits)
        try:
            self.dataset_name = str(self.client.request("GET", f"/datasets/{self.dataset_id}").get("name") or "")
        except (APIError, ConnectionError, TimeoutError):
            pass  # only the title's name: the report itself is already here

    # -- state for scripts and tests -----------------------------------------------------------

    @property
    def groups(self) -> dict[str, list[dict]]:
        """The findings by severity, failed first (as the widget shows them)."""
        return group_findings(self.report.get("findings") or [])

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Per severity: how many checks failed and passed."""
        return {s: {"failed": sum(not f.get("passed") for f in items), "passed": sum(bool(f.get("passed")) for f in items)} for s, items in self.groups.items()}

    @property
    def rules(self) -> list[dict[str, Any]]:
        """Pass/fail per rule of the request."""
        return rule_results(self.report)

    # -- actions -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the report again."""
        fresh = self._guard(self.client.request, "GET", f"/datasets/{self.dataset_id}/validations/{self.report['id']}")
        if fresh is not None:
            self.report = fresh

    def rerun(self, *, version: int | str | None = None, wait: bool = True, timeout: float = 600) -> dict | None:
        """Validate again with the same rules (the same version unless told, e.g. ``"latest"``);
        with ``wait``, until the new report has run. Returns the new report (None on failure,
        with ``error`` set)."""
        ref = self.report.get("version", "latest") if version is None else version
        started = self._guard(validate, self.client, self.dataset_id, list(self.report.get("rules") or []), ref, False, timeout)
        if started is None:
            return None
        with self.hold_sync():
            self.job = dict(started.job)
            self.report = dict(started)
        if wait:
            done = self._guard(started.wait, timeout)
            if done is None:
                return None
            self.report = dict(done)
        return self.report

    def __repr__(self) -> str:
        return f"<ValidationReportWidget {self.report.get('id')} {self.report.get('state')}>"
