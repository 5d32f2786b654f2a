"""Ownership and sharing across users, for every owned resource, through HTTP.

alice and bob are in team "vision" (alice edits it); carol is in no team. A row someone cannot
read answers 404 exactly like a missing one, a row they can read but not change answers 403,
and every change leaves an audit row carrying the request's X-Request-Id.
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import create_engine, text

from aistudio_jupyter.errors import InvalidInput
from aistudio_jupyter.identity import Principal, teams_for
from aistudio_jupyter.schemas.jobs import JobSubmit
from tests.conftest import TEAMS

WRITABLE = ["datasets", "models", "agents", "deployments"]
ALL_KINDS = [*WRITABLE, "jobs"]
#: the resource_type each collection writes into the audit trail
RESOURCE_TYPE = {"datasets": "dataset", "models": "model", "agents": "agent", "deployments": "deployment", "jobs": "job"}
_names = itertools.count()


def principal(username: str, request_id: str = "") -> Principal:
    teams, editor = teams_for(username, (), TEAMS)
    return Principal(username=username, teams=teams, editor_teams=editor, request_id=request_id)


class Rows:
    """Creates rows of any kind as any user, and reads the audit trail."""

    def __init__(self, api, jp_serverapp, database_url):
        self.api = api
        self.services = jp_serverapp.web_app.settings["aistudio"].services
        self.database_url = database_url

    async def create(self, kind: str, user: str, visibility: str = "private", team: str | None = None, expect: int = 201):
        """Create a row; returns (status, body, request id)."""
        name = f"{kind}-{user}-{next(_names)}"
        if kind == "jobs":  # no create route yet: the scheduler's service door, as the API will call it
            request_id = uuid.uuid4().hex[:16]
            body = JobSubmit(name=name, kind="script", visibility=visibility, team=team)
            if expect != 201:
                with pytest.raises(InvalidInput):
                    await self.services.jobs.submit(principal(user, request_id), body)
                return expect, None, request_id
            job = await self.services.jobs.submit(principal(user, request_id), body)
            return 201, job.model_dump(mode="json"), request_id
        payload = {"name": name, "visibility": visibility}
        if team is not None:
            payload["team"] = team
        if kind == "deployments":
            model = await self.api("POST", "models", user=user, json_body={"name": f"for-{name}"})
            assert model.status == 201, model.body
            payload["model_id"] = model.body["id"]
        reply = await self.api("POST", kind, user=user, json_body=payload)
        assert reply.status == expect, reply.body
        return reply.status, reply.body, reply.headers.get("X-Request-Id")

    async def row(self, kind: str, user: str, visibility: str = "private", team: str | None = None) -> dict:
        _, body, request_id = await self.create(kind, user, visibility, team)
        self.assert_audited(request_id, user, "submit" if kind == "jobs" else "create", kind, body["id"])
        return body

    async def listed_ids(self, kind: str, user: str, **params) -> set[str]:
        reply = await self.api("GET", kind, user=user, params=params or None)
        assert reply.status == 200, reply.body
        return {item["id"] for item in reply.body["items"]}

    def audit_rows(self, request_id: str) -> list[dict]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT actor, action, resource_type, resource_id, request_id FROM audit_events WHERE request_id = :r"), {"r": request_id}
                )
                return [dict(r._mapping) for r in rows]
        finally:
            engine.dispose()

    def assert_audited(self, request_id: str | None, actor: str, action: str, kind: str, resource_id: str) -> None:
        assert request_id, "the response carries no X-Request-Id"
        expected = {"actor": actor, "action": action, "resource_type": RESOURCE_TYPE[kind], "resource_id": resource_id, "request_id": request_id}
        assert self.audit_rows(request_id) == [expected]


@pytest.fixture
def rows(api, jp_serverapp, database_url) -> Rows:
    return Rows(api, jp_serverapp, database_url)


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.error["code"] == code and reply.error["message"]


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_private_rows_are_invisible_to_others(rows, api, kind):
    mine = await rows.row(kind, "alice")
    for other in ("bob", "carol"):
        # 404 exactly like a missing id, so ids of private rows never leak
        hidden = await api("GET", f"{kind}/{mine['id']}", user=other)
        assert_error(hidden, 404, "not_found")
        missing_id = mine["id"][:-4] + "zzzz"
        missing = await api("GET", f"{kind}/{missing_id}", user=other)
        assert hidden.error["message"].replace(mine["id"], "ID") == missing.error["message"].replace(missing_id, "ID")
        assert mine["id"] not in await rows.listed_ids(kind, other)
        assert await rows.listed_ids(kind, other, owner="alice") == set()
        if kind in WRITABLE:
            assert_error(await api("PATCH", f"{kind}/{mine['id']}", user=other, json_body={"description": "mine now"}), 404, "not_found")
            assert_error(await api("DELETE", f"{kind}/{mine['id']}", user=other), 404, "not_found")
    still = await api("GET", f"{kind}/{mine['id']}", user="alice")
    assert still.status == 200 and still.body == mine
    assert await rows.listed_ids(kind, "alice", owner="alice") == {mine["id"]}


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_team_rows_are_read_only_for_members_and_hidden_from_outsiders(rows, api, kind):
    shared = await rows.row(kind, "alice", "team", "vision")
    private = await rows.row(kind, "alice")
    got = await api("GET", f"{kind}/{shared['id']}", user="bob")
    assert got.status == 200 and got.body["team"] == "vision"
    assert await rows.listed_ids(kind, "bob") == {shared["id"]}
    assert await rows.listed_ids(kind, "bob", owner="alice") == {shared["id"]}
    assert await rows.listed_ids(kind, "bob", team="vision") == {shared["id"]}
    assert_error(await api("GET", f"{kind}/{shared['id']}", user="carol"), 404, "not_found")
    assert await rows.listed_ids(kind, "carol") == set()
    assert await rows.listed_ids(kind, "alice") == {shared["id"], private["id"]}
    if kind in WRITABLE:
        # bob may read but not change: 403, since the row's existence is no secret to him
        assert_error(await api("PATCH", f"{kind}/{shared['id']}", user="bob", json_body={"description": "bob was here"}), 403, "forbidden")
        assert_error(await api("DELETE", f"{kind}/{shared['id']}", user="bob"), 403, "forbidden")
        assert_error(await api("PATCH", f"{kind}/{shared['id']}", user="carol", json_body={"description": "x"}), 404, "not_found")
        assert_error(await api("DELETE", f"{kind}/{shared['id']}", user="carol"), 404, "not_found")
        after = await api("GET", f"{kind}/{shared['id']}", user="alice")
        assert after.body["description"] == shared["description"] and after.body["updated_at"] == shared["updated_at"]


@pytest.mark.parametrize("kind", WRITABLE)
async def test_team_editor_changes_a_members_row_but_not_who_sees_it(rows, api, kind):
    bobs = await rows.row(kind, "bob", "team", "vision")
    edited = await api("PATCH", f"{kind}/{bobs['id']}", user="alice", json_body={"description": "reviewed by alice"})
    assert edited.status == 200, edited.body
    assert edited.body["description"] == "reviewed by alice" and edited.body["owner"] == "bob"
    rows.assert_audited(edited.headers.get("X-Request-Id"), "alice", "update", kind, bobs["id"])

    # only the owner decides who sees a row, not the team editor
    for change in ({"visibility": "public"}, {"visibility": "private"}, {"team": "vision", "visibility": "team"}):
        assert_error(await api("PATCH", f"{kind}/{bobs['id']}", user="alice", json_body=change), 422, "invalid")
    assert (await api("GET", f"{kind}/{bobs['id']}", user="bob")).body["visibility"] == "team"
    made_private = await api("PATCH", f"{kind}/{bobs['id']}", user="bob", json_body={"visibility": "private", "team": None})
    assert made_private.status == 200, made_private.body
    assert made_private.body["visibility"] == "private" and made_private.body["team"] is None
    rows.assert_audited(made_private.headers.get("X-Request-Id"), "bob", "update", kind, bobs["id"])
    assert_error(await api("GET", f"{kind}/{bobs['id']}", user="alice"), 404, "not_found")

    other = await rows.row(kind, "bob", "team", "vision")
    deleted = await api("DELETE", f"{kind}/{other['id']}", user="alice")
    assert deleted.status == 204
    rows.assert_audited(deleted.headers.get("X-Request-Id"), "alice", "delete", kind, other["id"])
    assert_error(await api("GET", f"{kind}/{other['id']}", user="bob"), 404, "not_found")


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_public_rows_are_visible_to_all_and_writable_by_owner_and_editors(rows, api, kind):
    public = await rows.row(kind, "bob", "public")
    team_public = await rows.row(kind, "bob", "public", "vision")
    for reader in ("alice", "bob", "carol"):
        assert (await api("GET", f"{kind}/{public['id']}", user=reader)).status == 200
        assert await rows.listed_ids(kind, reader, visibility="public") == {public["id"], team_public["id"]}
    if kind not in WRITABLE:
        return
    for outsider in ("alice", "carol"):  # alice edits team "vision", but this row has no team
        assert_error(await api("PATCH", f"{kind}/{public['id']}", user=outsider, json_body={"description": "x"}), 403, "forbidden")
        assert_error(await api("DELETE", f"{kind}/{public['id']}", user=outsider), 403, "forbidden")
    assert_error(await api("PATCH", f"{kind}/{team_public['id']}", user="carol", json_body={"description": "x"}), 403, "forbidden")
    by_editor = await api("PATCH", f"{kind}/{team_public['id']}", user="alice", json_body={"description": "edited by the team editor"})
    assert by_editor.status == 200, by_editor.body
    rows.assert_audited(by_editor.headers.get("X-Request-Id"), "alice", "update", kind, team_public["id"])
    by_owner = await api("PATCH", f"{kind}/{public['id']}", user="bob", json_body={"description": "mine"})
    assert by_owner.status == 200 and by_owner.body["description"] == "mine"
    rows.assert_audited(by_owner.headers.get("X-Request-Id"), "bob", "update", kind, public["id"])
    gone = await api("DELETE", f"{kind}/{public['id']}", user="bob")
    assert gone.status == 204
    rows.assert_audited(gone.headers.get("X-Request-Id"), "bob", "delete", kind, public["id"])
    assert_error(await api("GET", f"{kind}/{public['id']}", user="carol"), 404, "not_found")


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_sharing_needs_membership_of_the_team(rows, api, kind):
    await rows.create(kind, "carol", "team", "vision", expect=422)
    await rows.create(kind, "bob", "team", "robotics", expect=422)
    await rows.create(kind, "alice", "team", None, expect=422)
    await rows.create(kind, "carol", "public", "vision", expect=422)
    assert await rows.listed_ids(kind, "alice") == set()
    assert await rows.listed_ids(kind, "carol") == set()
    if kind in WRITABLE:
        mine = await rows.row(kind, "bob")
        for change in ({"visibility": "team", "team": "robotics"}, {"visibility": "team"}, {"team": "robotics"}):
            assert_error(await api("PATCH", f"{kind}/{mine['id']}", user="bob", json_body=change), 422, "invalid")
        unchanged = await api("GET", f"{kind}/{mine['id']}", user="bob")
        assert unchanged.body["visibility"] == "private" and unchanged.body["team"] is None
