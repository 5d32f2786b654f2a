"""The server starts as a separate process with AI Studio enabled by its installed config."""


def test_live_server_serves_two_users(live_server):
    with live_server.client("alice") as alice, live_server.client("bob") as bob:
        created = alice.post("/datasets", json={"name": "iris"})
        assert created.status_code == 201
        assert bob.get(f"/datasets/{created.json()['id']}").status_code == 404
        assert [d["name"] for d in alice.get("/datasets").json()["items"]] == ["iris"]
