"""Validation reports in the client: ``ais.datasets.get("iris").validate([...])``.

The server runs a validation as a background job; the report starts ``pending`` and is polled
until it has run. In a notebook a report shows as a table of its findings (``_repr_html_``:
every string from the data is escaped), and ``to_pandas()`` gives the same rows as a DataFrame.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

from .client import Record

if TYPE_CHECKING:
    import pandas

    from .client import Client

FINISHED = ("passed", "failed", "error")
_COLUMNS = ("rule", "check", "severity", "column", "passed", "count", "message")


class ValidationReport(Record):
    """One validation report as the API returned it (``state``, ``passed``, ``findings``, ``summary``)."""

    def __init__(self, client: Client | None, data: dict):
        super().__init__(data)
        object.__setattr__(self, "_client", client)

    def __reduce__(self):
        return (ValidationReport, (None, dict(self)))

    @property
    def done(self) -> bool:
        return self.get("state") in FINISHED

    def refresh(self) -> ValidationReport:
        """Read the report again from the server."""
        if self._client is None:
            raise RuntimeError("This report is not bound to a client (it was unpickled); fetch it again.")
        fresh = self._client.request("GET", f"/datasets/{self['dataset_id']}/validations/{self['id']}")
        self.clear()
        self.update(fresh)
        return self

    def wait(self, timeout: float = 600) -> ValidationReport:
        """Poll until the validation has run (passed, failed or error); TimeoutError after ``timeout`` seconds."""
        deadline, delay = time.monotonic() + timeout, 0.05
        while not self.done:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Validation {self['id']} is still {self['state']} after {timeout:g} s; call .wait() again to keep waiting.")
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)
            self.refresh()
        return self

    def to_pandas(self) -> pandas.DataFrame:
        """The findings as a DataFrame: one row per check, with the first offending row numbers."""
        import pandas

        rows = [{**{k: f.get(k) for k in _COLUMNS}, "rows": [e.get("row") if e.get("row") is not None else e.get("line") for e in f.get("examples", [])]} for f in self.get("findings", [])]
        return pandas.DataFrame(rows, columns=[*_COLUMNS, "rows"])

    def __repr__(self) -> str:
        return f"<ValidationReport {self.get('id')} {self.get('state')}: {len(self.get('findings') or [])} findings>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook, a report shows as a ValidationReportWidget (with the escaped HTML table
        kept for front ends without widgets); elsewhere as text. Never raises."""
        try:
            fallback = {"text/plain": repr(self), "text/html": self._repr_html_()}
        except Exception:
            fallback = {"text/plain": repr(self)}
        try:
            from ..widgets.base import repr_bundle
            from ..widgets.validation import ValidationReportWidget
        except Exception:  # anywidget missing
            return fallback
        bundle = repr_bundle(lambda: ValidationReportWidget(self, client=self._client), fallback["text/plain"], **kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        for mime, value in fallback.items():
            data.setdefault(mime, value)
        return bundle

    def _repr_html_(self) -> str:
        e = html.escape
        summary = self.get("summary") or {}
        head = f"<b>Validation {e(str(self.get('id')))}</b>: {e(str(self.get('state')))}"
        if summary:
            head += f" — {e(str(summary.get('rows')))} rows, {e(str(summary.get('columns')))} columns, {e(str(summary.get('errors')))} errors, {e(str(summary.get('warnings')))} warnings"
        if self.get("error"):
            head += f"<br>{e(str(self['error']))}"
        cells = []
        for f in self.get("findings") or []:
            mark = "✔" if f.get("passed") else ("✖" if f.get("severity") == "error" else "⚠")
            rows = ", ".join(str(x.get("row") if x.get("row") is not None else x.get("line")) for x in f.get("examples", []))
            values = [mark, f.get("rule"), f.get("check"), f.get("column") or "", f.get("severity"), f.get("count"), f.get("message"), rows]
            cells.append("<tr>" + "".join(f"<td style='text-align:left'>{e(str(v))}</td>" for v in values) + "</tr>")
        header = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("", "rule", "check", "column", "severity", "count", "message", "rows"))
        return f"<div>{head}<table><thead><tr>{header}</tr></thead><tbody>{''.join(cells)}</tbody></table></div>"


def validate(client: Client, dataset_id: str, rules: list[dict[str, Any]] | None, version: int | str, wait: bool, timeout: float) -> ValidationReport:
    """Start a validation of ``dataset_id`` and, with ``wait``, poll until it has run."""
    started = client.request("POST", f"/datasets/{dataset_id}/validate", json={"version": version, "rules": list(rules or [])})
    report = ValidationReport(client, started["validation"])
    object.__setattr__(report, "job", Record(started["job"]))
    return report.wait(timeout) if wait else report
