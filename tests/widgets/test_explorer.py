"""The DatasetExplorer through its widget state, without a browser, against a real server: what
the kernel loads for the first render (first page, counts, schema, profile; nothing more), the
Python methods that sort, filter, page and pick columns the way the grid does, a refused filter
as a friendly error, the owner's text carried as text, and ``Dataset._repr_mimebundle_``."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import aistudio_jupyter as ais
from aistudio_jupyter.widgets import base
from aistudio_jupyter.widgets.explorer import PAGE_SIZE, DatasetExplorer, column_ref, explore
from aistudio_jupyter.widgets.validation import ValidationReportWidget
from tests.runtime import in_thread
from tests.widgets.fixtures import connect, server  # noqa: F401 -- fixtures

# the widget, not the database, is under test here: one database is enough
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

N = 1234
XSS = "<img src=x onerror=alert(1)>"


def table(n: int = N) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(n),
            "score": [((i * 7919) % 1000) / 10 for i in range(n)],
            "label": [("cat", "dog", "bird")[i % 3] for i in range(n)],
            "my col": [f"v{i % 5}" for i in range(n)],
            "note": [XSS if i % 2 else None for i in range(n)],
        }
    )


def upload(client, name: str, df: pd.DataFrame | None = None):
    version = client.datasets.upload(table() if df is None else df, name=name, progress=False)
    return client.datasets.get(version.dataset_id)


@SQLITE
async def test_the_kernel_loads_the_first_page_counts_schema_and_profile(connect):
    def scenario():
        alice = connect()
        ds = upload(alice, "explored")
        return ds, DatasetExplorer(ds)

    ds, w = await in_thread(scenario)
    assert w.error is None and w.loading is False
    assert (w.dataset_id, w.dataset_name, w.version) == (ds.id, "explored", 1)
    assert [c["name"] for c in w.schema] == ["id", "score", "label", "my col", "note"]
    assert w.schema[0]["type"] == "BIGINT" and w.schema[2]["type"] == "VARCHAR"
    assert w.row_count == w.total_rows == N
    # only the first page is in the kernel; the browser fetches the rest itself
    assert w.offset == 0 and len(w.rows) == PAGE_SIZE and w.page_size == PAGE_SIZE
    assert [r[0] for r in w.rows] == list(range(PAGE_SIZE)) and w.row_columns == w.schema
    assert w.rows[1][4] == XSS and w.rows[0][4] is None
    assert w.profile["row_count"] == N and w.profile["version"] == 1
    assert [c["name"] for c in w.profile["columns"]] == [c["name"] for c in w.schema]
    assert w.profile["columns"][1]["histogram"] and w.profile["columns"][2]["top_values"]
    assert (w.sort, w.filter, w.columns) == ("", "", [])
    # the state is what the browser receives: JSON as it is
    json.dumps(w.get_state())


@SQLITE
async def test_every_way_of_naming_the_dataset_and_a_pinned_version(connect):
    def scenario():
        alice = connect()
        ds = upload(alice, "named-ds")
        alice.datasets.upload(table(10), dataset=ds.id, progress=False)
        ds.refresh()
        return ds, [
            explore(ds),
            explore(ds.id, client=alice),
            explore("named-ds", client=alice),
            explore(dict(ds), client=alice, profile=False),
            explore(ds, version=1),
        ]

    ds, (by_record, by_id, by_name, by_dict, pinned) = await in_thread(scenario)
    for w in (by_record, by_id, by_name, by_dict):
        assert w.error is None and w.dataset_id == ds.id and w.version == 2 and w.row_count == 10 and len(w.rows) == 10
    assert by_dict.profile == {} and by_name.profile["row_count"] == 10
    assert pinned.version == 1 and pinned.row_count == N and pinned.profile["version"] == 1
    with pytest.raises(TypeError):
        explore(42)
    with pytest.raises(ValueError):
        explore({"name": "no id"})
    with pytest.raises(ValueError):
        explore(ds, version=0)


@SQLITE
async def test_sort_filter_page_and_columns_change_the_state_as_the_grid_does(connect):
    df = table()

    def scenario():
        w = DatasetExplorer(upload(connect(), "ops"), profile=False)
        steps = {}
        assert w.sort_by("score", desc=True) is True
        steps["sorted"] = (w.sort, w.offset, [r[1] for r in w.rows])
        page = w.page(500, 10)
        steps["page"] = (page, w.offset, len(w.rows))
        assert w.set_filter('label = "dog" and score >= 50') is True
        steps["filtered"] = (w.filter, w.total_rows, w.offset, w.rows)
        assert w.set_filter(label="bird") is True
        steps["equals"] = (w.filter, w.total_rows)
        assert w.select_columns(["my col", "id"]) is True
        steps["columns"] = (w.columns, [c["name"] for c in w.row_columns], w.rows[:3])
        assert w.sort_by("my col") is True
        steps["quoted"] = (w.sort, [r[0] for r in w.rows])
        assert w.set_filter() and w.select_columns(None) and w.sort_by(None)
        steps["reset"] = (w.sort, w.filter, w.columns, w.total_rows, [r[0] for r in w.rows[:3]])
        return w, steps

    w, steps = await in_thread(scenario)
    assert w.error is None
    sort, offset, scores = steps["sorted"]
    assert sort == "-score" and offset == 0 and scores == sorted(df["score"], reverse=True)[:PAGE_SIZE]
    page, offset, kept = steps["page"]
    expected = df.sort_values(["score", "id"], ascending=[False, True]).iloc[500:510]
    assert offset == 500 and kept == 10 and [r["score"] for r in page] == list(expected["score"])
    assert set(page[0]) == {"id", "score", "label", "my col", "note"}
    flt, total, offset, rows = steps["filtered"]
    want = df[(df.label == "dog") & (df.score >= 50)]
    assert flt == 'label = "dog" and score >= 50' and total == len(want) and offset == 0
    assert all(r[2] == "dog" and r[1] >= 50 for r in rows) and [r[1] for r in rows] == sorted(want["score"], reverse=True)[:PAGE_SIZE]
    flt, total = steps["equals"]
    assert flt == 'label = "bird"' and total == (df.label == "bird").sum()
    columns, names, rows = steps["columns"]
    assert columns == ["my col", "id"] and names == ["my col", "id"] and all(len(r) == 2 for r in rows)
    sort, firsts = steps["quoted"]
    assert sort == '"my col"' and firsts == sorted(firsts)
    assert steps["reset"] == ("", "", [], N, [0, 1, 2])


@SQLITE
async def test_a_refused_filter_is_a_friendly_error_and_the_grid_keeps_its_rows(connect):
    def scenario():
        w = DatasetExplorer(upload(connect(), "bad-filter"), profile=False)
        w.set_filter('label = "cat"')
        before = (w.filter, w.total_rows, list(w.rows))
        results = {
            "syntax": (w.set_filter("score >>> 1"), dict(w.error)),
            "column": (w.set_filter("nope = 1"), dict(w.error)),
            "type": (w.set_filter('score > "high"'), dict(w.error)),
            "sort": (w.sort_by("nope"), dict(w.error)),
            "columns": (w.select_columns(["id", "nope"]), dict(w.error)),
        }
        after = (w.filter, w.total_rows, list(w.rows))
        results["recovered"] = (w.page(0, 5) != [], w.error)
        return before, after, results

    before, after, results = await in_thread(scenario)
    assert before == after and before[0] == 'label = "cat"'
    ok, err = results["syntax"]
    assert ok is False and err["status"] == 422 and err["retryable"] is False and "position" in err["message"]
    ok, err = results["column"]
    assert ok is False and err["status"] == 422 and "'nope'" in err["message"]
    ok, err = results["type"]
    assert ok is False and err["status"] == 422
    for key in ("sort", "columns"):
        ok, err = results[key]
        assert ok is False and err["status"] == 422 and "no column 'nope'" in err["message"] and "my col" in err["message"]
    assert results["recovered"] == (True, None)


@SQLITE
async def test_a_dataset_you_cannot_see_is_a_friendly_error(connect):
    def scenario():
        ds = upload(connect("alice"), "private-ds")
        return DatasetExplorer(ds.id, client=connect("bob"))

    w = await in_thread(scenario)
    assert w.error["status"] == 404 and w.error["message"].startswith("Not found")
    assert w.rows == [] and w.row_count == 0 and w.profile == {}


@SQLITE
async def test_names_that_look_like_markup_are_carried_as_text(connect):
    # the API keeps dataset names to letters, digits and " ._-", but a record may come from
    # elsewhere, and column names and values are the uploader's own text
    df = pd.DataFrame({XSS: [XSS, "<b>bold</b>"], "id": [1, 2]})

    def scenario():
        client = connect()
        version = client.datasets.upload(df, name="markup", description=XSS, progress=False)
        by_id = DatasetExplorer(version.dataset_id, client=client, profile=False)
        w = DatasetExplorer({**client.datasets.get(version.dataset_id), "name": XSS}, client=client)
        assert w.sort_by(XSS, desc=True)
        return by_id, w

    by_id, w = await in_thread(scenario)
    assert by_id.dataset_name == "markup" and by_id.get_state()["description"] == XSS
    state = w.get_state()
    assert w.error is None and state["dataset_name"] == XSS and state["description"] == XSS
    assert state["schema"][0]["name"] == XSS and state["sort"] == "-" + json.dumps(XSS)
    assert [r[0] for r in state["rows"]] == [XSS, "<b>bold</b>"]


@pytest.mark.parametrize("widget", [DatasetExplorer, ValidationReportWidget])
def test_the_javascript_never_turns_data_into_markup(widget):
    # comments may name the sinks (to forbid them): the code may not use them
    source = re.sub(r"(^|\s)//[^\n]*", "", re.sub(r"/\*.*?\*/", "", widget._esm, flags=re.S))
    assert source.rstrip().endswith(f"export default {{ render: aisMount({'renderExplorer' if widget is DatasetExplorer else 'renderValidation'}) }};")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "DOMParser"):
        assert sink not in source, sink
    # handlers are functions (aisEl drops strings), never attributes built from text
    assert not re.search(r"setAttribute\(\s*['\"]on", source)


def test_column_refs_follow_the_rows_grammar():
    assert column_ref("score") == "score" and column_ref("a.b-c_1") == "a.b-c_1"
    assert column_ref("my col") == '"my col"' and column_ref('x,"y"') == '"x,\\"y\\""' and column_ref("1st") == '"1st"'


@SQLITE
async def test_a_dataset_displays_as_the_explorer_in_a_kernel_and_as_text_elsewhere(connect, monkeypatch):
    ds = await in_thread(lambda: upload(connect(), "shown"))
    assert ds._repr_mimebundle_() == {"text/plain": repr(ds)}
    monkeypatch.setattr(base, "in_kernel", lambda: True)
    bundle = await in_thread(ds._repr_mimebundle_)
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) from anywidget
    assert bundle["text/plain"] == repr(ds) and bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    # a record the widget cannot be built from still displays
    broken = ais.Dataset(None, {"name": "no id"})
    assert broken._repr_mimebundle_() == {"text/plain": repr(broken)}
