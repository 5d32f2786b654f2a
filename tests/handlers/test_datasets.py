"""Dataset metadata CRUD through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations


async def test_create_get_update_delete(api):
    created = await api("POST", "datasets", json_body={"name": "iris", "description": "flowers", "tags": ["tabular"]})
    assert created.status == 201, created.body
    ds = created.body
    assert ds["owner"] == "alice" and ds["name"] == "iris" and ds["visibility"] == "private"
    assert ds["id"].startswith("ds_")

    got = await api("GET", f"datasets/{ds['id']}")
    assert got.status == 200 and got.body == ds

    changed = await api("PATCH", f"datasets/{ds['id']}", json_body={"description": "Fisher's irises"})
    assert changed.status == 200
    assert changed.body["description"] == "Fisher's irises" and changed.body["tags"] == ["tabular"]
    assert changed.body["updated_at"] >= ds["updated_at"]

    deleted = await api("DELETE", f"datasets/{ds['id']}")
    assert deleted.status == 204
    gone = await api("GET", f"datasets/{ds['id']}")
    assert gone.status == 404 and gone.error["code"] == "not_found"


async def test_duplicate_name_conflicts(api):
    assert (await api("POST", "datasets", json_body={"name": "wine"})).status == 201
    again = await api("POST", "datasets", json_body={"name": "wine"})
    assert again.status == 409 and again.error["code"] == "conflict"
    # another user may use the same name
    assert (await api("POST", "datasets", user="bob", json_body={"name": "wine"})).status == 201


async def test_keyset_pagination_walks_everything_once(api):
    names = [f"set-{i:02d}" for i in range(23)]
    for name in names:
        assert (await api("POST", "datasets", json_body={"name": name})).status == 201
    seen, cursor = [], None
    while True:
        params = {"limit": "5", "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        page = await api("GET", "datasets", params=params)
        assert page.status == 200
        seen += [d["name"] for d in page.body["items"]]
        cursor = page.body["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(names)

    newest = await api("GET", "datasets", params={"limit": "3"})
    assert [d["name"] for d in newest.body["items"]] == names[::-1][:3]


async def test_filters(api):
    await api("POST", "datasets", json_body={"name": "mnist-train"})
    await api("POST", "datasets", json_body={"name": "mnist-test", "visibility": "public"})
    await api("POST", "datasets", json_body={"name": "cifar"})
    found = await api("GET", "datasets", params={"q": "MNIST"})
    assert sorted(d["name"] for d in found.body["items"]) == ["mnist-test", "mnist-train"]
    public = await api("GET", "datasets", params={"visibility": "public"})
    assert [d["name"] for d in public.body["items"]] == ["mnist-test"]
    # a LIKE wildcard in q is a literal character
    assert (await api("GET", "datasets", params={"q": "%"})).body["items"] == []
    status = await api("GET", "datasets", params={"status": "ready"})
    assert status.status == 422 and status.error["details"]
