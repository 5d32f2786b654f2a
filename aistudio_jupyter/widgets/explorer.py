"""DatasetExplorer: a virtualised grid over a dataset version, with sort, filter, column picker
and per-column statistics.

The kernel loads only what the first render needs: the version's columns and row count, the
first page and the profile. Every later page is fetched by the browser itself from
``GET /datasets/{id}/rows`` (a few hundred rows at a time, cached), so scrolling ten million
rows never moves them through the kernel, and keeps working while the kernel is busy. The
query (``sort``, ``filter``, ``columns``) is shared state: the Python methods below and the
browser's controls change it the same way, and each side follows the other's changes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import traitlets

from ..runtime.client import APIError, Client
from .base import StudioWidget

#: rows per request, the grid's page both in Python and in the browser
PAGE_SIZE = 200
#: the API's own limit on one page
MAX_LIMIT = 1000
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def column_ref(name: str) -> str:
    """A column as the rows API's ``sort``/``columns``/``filter`` grammar names it: bare when it
    can be, else a JSON string (a name with a comma or a space is still one column)."""
    return name if _BARE.fullmatch(name) else json.dumps(name)


def _dataset_of(dataset: Any, client: Client | None) -> tuple[dict | str, Client | None]:
    """A Dataset record (and its client), a dict with an id, or an id/name to resolve later."""
    from ..runtime.datasets import Dataset

    own = None
    if isinstance(dataset, Dataset) and dataset._datasets is not None:
        own = dataset._datasets._client
    if isinstance(dataset, dict):
        if "id" not in dataset:
            raise ValueError("explore() needs a dataset: this record has no id.")
        return dict(dataset), client or own
    if isinstance(dataset, str) and dataset:
        return dataset, client
    raise TypeError(f"explore() takes a Dataset, a dataset record, an id or a name, not {type(dataset).__name__}.")


class DatasetExplorer(StudioWidget):
    """A dataset version as a scrollable, sortable, filterable grid with column statistics."""

    _module = "explorer.js"

    dataset_id = traitlets.Unicode(help="The dataset shown.").tag(sync=True)
    dataset_name = traitlets.Unicode(help="Its name: the owner's text, shown as text only.").tag(sync=True)
    description = traitlets.Unicode(help="Its description (the owner's text, shown as text only).").tag(sync=True)
    version = traitlets.Int(0, help="The version shown, pinned when the explorer opens (0: none loaded).").tag(sync=True)
    schema = traitlets.List(help="Every column of the version: [{name, type}].").tag(sync=True)
    columns = traitlets.List(traitlets.Unicode(), help="The columns shown, in order; [] for all.").tag(sync=True)
    sort = traitlets.Unicode("", help="The rows API's sort: 'col' ascending, '-col' descending, '' unsorted.").tag(sync=True)
    filter = traitlets.Unicode("", help="The rows API's filter expression; '' for none.").tag(sync=True)
    row_count = traitlets.Int(0, help="Rows in the version.").tag(sync=True)
    total_rows = traitlets.Int(0, help="Rows matching the filter.").tag(sync=True)
    offset = traitlets.Int(0, help="The first row of `rows` (0-based, after filter and sort); the grid scrolls to it.").tag(sync=True)
    page_size = traitlets.Int(PAGE_SIZE, help="Rows per request.").tag(sync=True)
    rows = traitlets.List(help="The page loaded by the kernel: rows at `offset`, as JSON values in `row_columns` order.").tag(sync=True)
    row_columns = traitlets.List(help="The columns of `rows`: [{name, type}].").tag(sync=True)
    profile = traitlets.Dict(help="GET /datasets/{id}/profile of the version ({} until loaded).").tag(sync=True)

    def __init__(self, dataset: Any, *, version: int | None = None, client: Client | None = None, profile: bool = True, page_size: int = PAGE_SIZE, **traits: Any) -> None:
        ref, own_client = _dataset_of(dataset, client)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError(f"A version is a positive int (or None for the latest), not {version!r}.")
        if not 1 <= page_size <= MAX_LIMIT:
            raise ValueError(f"page_size is between 1 and {MAX_LIMIT}, not {page_size}.")
        super().__init__(client=client or own_client, page_size=page_size, **traits)
        self._ref, self._wanted_version, self._with_profile = ref, version, profile
        if isinstance(ref, dict):
            self._name(ref)
        self.refresh()

    # -- loading -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """(Re)load the dataset, its columns, the current page and the profile."""
        self._guard(self._load)

    def _load(self) -> None:
        if not self.dataset_id:
            self._name(self.client.datasets.get(self._ref))
        version = self.version or self._wanted_version
        page = self._fetch(self.offset, self.page_size, version=version)
        everything = page
        if self.filter or self.columns:
            # an unfiltered page over every column gives the schema and the version's row count
            everything = self._fetch(0, 1, version=page["version"], sort="", filter="", columns=[])
        profile = self.profile
        if self._with_profile:
            try:
                profile = self._profile(everything["version"])
            except (APIError, ConnectionError, TimeoutError):
                # the rows are what the grid needs: statistics that fail or take longer than the
                # client waits are left to the browser's Statistics button
                pass
        with self.hold_sync():
            self.version = everything["version"]
            self.schema = everything["columns"]
            self.row_count = everything["total_rows"]
            self.profile = profile
            self._show(page)

    def _name(self, record: dict) -> None:
        self.dataset_id, self.dataset_name, self.description = record["id"], str(record.get("name") or ""), str(record.get("description") or "")

    def _profile(self, version: int) -> dict:
        return self.client.request("GET", f"/datasets/{self.dataset_id}/profile", params={"version": str(version)})

    def load_profile(self) -> dict:
        """Load (computing once on the server, if needed) the per-column statistics."""
        profile = self._guard(self._profile, self.version) if self.version else None
        if profile is not None:
            self.profile = profile
        return self.profile

    def _fetch(self, offset: int, limit: int, *, version: int | None = None, sort: str | None = None, filter: str | None = None, columns: list[str] | None = None) -> dict:
        sort = self.sort if sort is None else sort
        filter = self.filter if filter is None else filter
        columns = self.columns if columns is None else columns
        params: dict[str, Any] = {"offset": offset, "limit": limit, "version": str(version or self.version or "latest")}
        if sort:
            params["sort"] = sort
        if filter:
            params["filter"] = filter
        if columns:
            params["columns"] = ",".join(column_ref(c) for c in columns)
        return self.client.request("GET", f"/datasets/{self.dataset_id}/rows", params=params)

    def _show(self, page: dict) -> None:
        self.row_columns = page["columns"]
        self.total_rows = page["total_rows"]
        self.offset = page["offset"]
        self.rows = page["rows"]

    def _apply(self, offset: int, **query: Any) -> bool:
        """Fetch the page at ``offset`` under ``query`` and, only if the server takes it, make that
        the state: a refused filter leaves the grid as it was and says why in ``error``."""
        page = self._guard(self._fetch, offset, self.page_size, **query)
        if page is None:
            return False
        with self.hold_sync():
            for name, value in query.items():
                setattr(self, name, value)
            self._show(page)
        return True

    # -- the same actions as the grid's controls ----------------------------------------------

    def page(self, offset: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows ``offset`` .. ``offset + limit`` under the current sort/filter/columns, as dicts;
        the grid scrolls there."""
        if offset < 0:
            raise ValueError(f"offset is >= 0, not {offset}.")
        limit = self.page_size if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit is between 1 and {MAX_LIMIT}, not {limit}.")
        page = self._guard(self._fetch, offset, limit)
        if page is None:
            return []
        self._show(page)
        names = [c["name"] for c in page["columns"]]
        return [dict(zip(names, row)) for row in page["rows"]]

    def sort_by(self, column: str | None, desc: bool = False) -> bool:
        """Sort by ``column`` (descending with ``desc``), or unsort with None; True when applied."""
        if column is None:
            return self._apply(0, sort="")
        if not self._known(column):
            return False
        return self._apply(0, sort=("-" if desc else "") + column_ref(column))

    def set_filter(self, expression: str | None = None, **equals: Any) -> bool:
        """Filter with the rows API's expression (``'score >= 0.5 and label = "cat"'``), and/or
        ``column=value`` equalities; no arguments clears it. True when the server accepted it,
        else the grid is unchanged and ``error`` says what is wrong."""
        clauses = [expression.strip()] if expression and expression.strip() else []
        clauses += [f"{column_ref(k)} = {json.dumps(v)}" for k, v in equals.items()]
        return self._apply(0, filter=" and ".join(clauses))

    def select_columns(self, columns: list[str] | None) -> bool:
        """Show only ``columns`` (in that order); None or [] shows every column."""
        columns = list(columns or [])
        if not all(self._known(c) for c in columns):
            return False
        return self._apply(self.offset, columns=columns)

    def _known(self, column: str) -> bool:
        names = [c["name"] for c in self.schema]
        if column in names:
            return True
        shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        self.error = {"message": f"There is no column {column!r} in version {self.version}. Columns: {shown}.", "code": "invalid", "status": 422, "retryable": False, "detail": ""}
        return False

    def __repr__(self) -> str:
        return f"<DatasetExplorer {self.dataset_name or self.dataset_id!r} v{self.version}: {self.total_rows} of {self.row_count} rows>"


def explore(dataset: Any, version: int | None = None, *, client: Client | None = None, profile: bool = True) -> DatasetExplorer:
    """``ais.explore(ds)``: a grid over a dataset version (a Dataset, its id or its name)."""
    return DatasetExplorer(dataset, version=version, client=client, profile=profile)
