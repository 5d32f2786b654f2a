"""Hostile and malformed input on every create, patch and list route: always a clear 4xx in the
JSON error envelope, never a 500 and never a traceback."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

WRITABLE = ["datasets", "models", "agents", "deployments"]
LISTABLE = [*WRITABLE, "jobs"]
MiB = 1024 * 1024
#: a float field per resource, for non-finite and out-of-range numbers
_serial = itertools.count()
FLOAT_FIELD = {"agents": ("limits", "max_cost_usd"), "deployments": ("resources", "cpus")}


def assert_rejected(reply, status: int | tuple[int, ...], where: str = "") -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert reply.status in statuses, (where, reply.status, reply.body)
    assert 400 <= reply.status < 500
    raw = reply.body if isinstance(reply.body, (bytes, str)) else json.dumps(reply.body)
    assert "Traceback" not in (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
    assert isinstance(reply.body, dict), (where, reply.body)
    error = reply.body["error"]
    assert error["code"] and error["message"] and isinstance(error["details"], dict), where
    assert reply.headers.get("Content-Type", "").startswith("application/json")


class Target:
    """One write route: ``POST /kind`` or ``PATCH /kind/{id}`` of an existing row."""

    def __init__(self, api, kind: str, method: str):
        self.api, self.kind, self.method = api, kind, method
        self.path = kind

    async def prepare(self) -> Target:
        self.base = {"name": f"bad-input-{self.kind}"}
        if self.kind == "deployments":
            model = await self.api("POST", "models", json_body={"name": f"target-model-{next(_serial)}"})
            assert model.status == 201, model.body
            self.base["model_id"] = model.body["id"]
        if self.method == "PATCH":
            created = await self.api("POST", self.kind, json_body=self.base)
            assert created.status == 201, created.body
            self.row = created.body
            self.path = f"{self.kind}/{created.body['id']}"
            self.base = {"description": "fine"}
        return self

    def valid(self, **changes) -> dict:
        return {**self.base, **changes}

    async def send(self, body: bytes | str, content_type: str = "application/json"):
        return await self.api(self.method, self.path, body=body, headers={"Content-Type": content_type})

    async def send_json(self, value) -> object:
        return await self.send(json.dumps(value))

    async def unchanged(self) -> None:
        """After a refused write, nothing was created or changed."""
        if self.method == "PATCH":
            now = await self.api("GET", self.path)
            assert now.body == self.row
        else:
            listed = await self.api("GET", self.kind)
            assert all(item["name"] != self.base["name"] for item in listed.body["items"])


@pytest.fixture(params=[f"{m} {k}" for k in WRITABLE for m in ("POST", "PATCH")])
def target(request, api):
    method, kind = request.param.split()
    return Target(api, kind, method)


# -- bodies ------------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_BODIES = {
    "malformed": (lambda t: '{"name": "x", ', 400),
    "trailing-garbage": (lambda t: json.dumps(t.valid()) + " {}", 400),
    "array": (lambda t: json.dumps([t.valid()]), 422),
    "string": (lambda t: '"just a string"', 422),
    "null": (lambda t: "null", 422),
    "number-name": (lambda t: json.dumps(t.valid(name=5)), 422),
    "bool-name": (lambda t: json.dumps(t.valid(name=True)), 422),
    "list-name": (lambda t: json.dumps(t.valid(name=["a"])), 422),
    "object-description": (lambda t: json.dumps(t.valid(description={"a": 1})), 422),
    "number-visibility": (lambda t: json.dumps(t.valid(visibility=1)), 422),
    "bad-visibility": (lambda t: json.dumps(t.valid(visibility="secret")), 422),
    "unknown-field": (lambda t: json.dumps(t.valid(bogus=1)), 422),
    "owner-field": (lambda t: json.dumps(t.valid(owner="carol")), 422),
    "id-field": (lambda t: json.dumps(t.valid(id="ds_mine")), 422),
    "name-with-slash": (lambda t: json.dumps(t.valid(name="../etc/passwd")), 422),
    "empty-name": (lambda t: json.dumps(t.valid(name="")), 422),
    "name-200kB": (lambda t: json.dumps(t.valid(name="n" * 200_000)), 422),
    "description-10MB": (lambda t: json.dumps(t.valid(description="d" * (10 * MiB))), 413),
    "NaN": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": NaN}', (400, 422)),
    "Infinity": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": Infinity}', (400, 422)),
    "-Infinity": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": -Infinity}', (400, 422)),
    "huge-integer": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": ' + "9" * 5000 + "}", (400, 422)),
    "deep-nesting": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": ' + _nested(100_000) + "}", (400, 422)),
    "nul-in-description": (lambda t: json.dumps(t.valid(description="a\x00b")), 422),
    "lone-surrogate": (lambda t: json.dumps(t.valid()).rstrip("}") + ', "description": "\\ud800"}', (400, 422)),
    "tags-not-a-list": (lambda t: json.dumps(t.valid(tags="abc")), 422),
}


NON_UTF8 = {"ff-fe": b'{"name": "\xff\xfe"}', "latin-1": b'{"description": "caf\xe9"}', "invalid-lead": b"\xc3\x28{}"}
NON_JSON_TYPES = ["text/html", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]


async def test_bad_bodies_are_refused(target):
    """Every bad body on one route; the cases share a server, so a failure names its case."""
    await target.prepare()
    failures = []

    async def check(case: str, body, status, content_type: str = "application/json") -> None:
        try:
            assert_rejected(await target.send(body, content_type), status, case)
            await target.unchanged()
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")

    for case, (make, status) in BAD_BODIES.items():
        if case == "tags-not-a-list" and target.kind in ("agents", "deployments"):
            continue  # they have no tags
        await check(case, make(target), status)
    for case, body in NON_UTF8.items():
        await check(f"non-utf8 {case}", body, 400)
    for content_type in NON_JSON_TYPES:
        body = json.dumps(target.valid())
        if content_type.startswith("multipart/"):
            # well-formed, so tornado's own form parsing passes it on and the handler must refuse it
            body = f'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\n{target.valid().get("name", "n")}\r\n--x--\r\n'
        await check(content_type, body, 415, content_type)
    assert not failures, "\n".join(failures)


async def test_non_finite_and_out_of_range_numbers(api):
    for kind, (outer, field) in FLOAT_FIELD.items():
        t = await Target(api, kind, "POST").prepare()
        for value in ("1e999", "-1e999", "1e308", "-1", "0"):
            if kind == "agents" and value == "0":
                continue  # a zero budget is a legal (if strict) agent limit
            body = json.dumps(t.valid()).rstrip("}") + f', "{outer}": {{"{field}": {value}}}}}'
            assert_rejected(await t.send(body), 422, f"{kind} {field}={value}")
        await t.unchanged()
    agent = await Target(api, "agents", "POST").prepare()
    for limits in ({"max_steps": 0}, {"max_steps": 10**9}, {"max_steps": "many"}, {"max_steps": 2.5}, {"bogus": 1}):
        assert_rejected(await agent.send_json(agent.valid(limits=limits)), 422, str(limits))
    for tools in ("search", ["Not A Tool Name"], [""], ["t"] * 65, [1]):
        assert_rejected(await agent.send_json(agent.valid(tools=tools)), 422, str(tools)[:40])
    assert_rejected(await agent.send_json(agent.valid(planner="chaos")), 422, "planner")
    deployment = await Target(api, "deployments", "POST").prepare()
    for changes in ({"replicas": 0}, {"replicas": 10**30}, {"model_version": 0}, {"model_id": ""}, {"model_id": "m" * 41}, {"resources": {"gpus": -1}}):
        assert_rejected(await deployment.send_json(deployment.valid(**changes)), 422, str(changes))


async def test_empty_create_body_names_the_missing_field(api):
    for kind in WRITABLE:
        reply = await api("POST", kind, body=b"", headers={"Content-Type": "application/json"})
        assert_rejected(reply, 422, kind)
        assert "name" in reply.error["message"]


# -- query strings -----------------------------------------------------------------------------


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_QUERIES = {
    "limit-negative": ({"limit": "-1"}, 422),
    "limit-zero": ({"limit": "0"}, 422),
    "limit-too-large": ({"limit": "501"}, 422),
    "limit-huge": ({"limit": "9" * 400}, 422),
    "limit-text": ({"limit": "ten"}, 422),
    "limit-float": ({"limit": "1.5"}, 422),
    "limit-nan": ({"limit": "nan"}, 422),
    "cursor-garbage": ({"cursor": "!!!not-base64!!!"}, 422),
    "cursor-not-json": ({"cursor": base64.urlsafe_b64encode(b"\x00\x01\x02").decode()}, 422),
    "cursor-wrong-shape": ({"cursor": _cursor({"a": 1})}, 422),
    "cursor-id-not-string": ({"cursor": _cursor(["2024-01-01", 5])}, 422),
    "cursor-number-for-date": ({"cursor": _cursor([5, "ds_x"])}, 422),
    "cursor-text-for-date": ({"cursor": _cursor(["yesterday", "ds_x"])}, 422),
    "cursor-bad-date": ({"cursor": _cursor([{"t": "not a date"}, "ds_x"])}, 422),
    "cursor-date-for-name": ({"cursor": _cursor([{"t": "2024-01-01T00:00:00+00:00"}, "ds_x"]), "sort": "name"}, 422),
    "cursor-too-long": ({"cursor": "a" * 600}, 422),
    "unknown-argument": ({"foo": "1"}, 422),
    "bad-sort": ({"sort": "owner; DROP TABLE datasets"}, 422),
    "bad-visibility": ({"visibility": "secret"}, 422),
    "q-too-long": ({"q": "q" * 201}, 422),
    "q-empty": ({"q": ""}, 422),
    "q-not-utf8": ({"q": b"\xff\xfe"}, 400),
    "unknown-not-utf8": ({b"\xff": b"1"}, (400, 422)),
}


@pytest.mark.parametrize("kind", LISTABLE)
async def test_bad_list_queries_are_refused(api, kind):
    failures = []
    for case, (params, status) in BAD_QUERIES.items():
        try:
            assert_rejected(await api("GET", kind, params=params), status, f"{kind} {case}")
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n".join(failures)


async def test_a_good_cursor_still_works_after_refusals(api):
    for i in range(3):
        assert (await api("POST", "datasets", json_body={"name": f"page-{i}"})).status == 201
    first = await api("GET", "datasets", params={"limit": "2"})
    assert first.status == 200 and first.body["next_cursor"]
    second = await api("GET", "datasets", params={"limit": "2", "cursor": first.body["next_cursor"]})
    assert [d["name"] for d in second.body["items"]] == ["page-0"]


# -- ids and paths -----------------------------------------------------------------------------

ODD_IDS = ["..", "...", "%2e%2e", "a b", "ü-ñ-日本", "'; DROP TABLE datasets; --", "x" * 5000, "%00", "a%2Fb", "\\", "ds_%", "*", "null", "<script>"]


#: sent percent-escaped as they are, so the server itself decodes NUL, slashes and bad UTF-8
RAW_IDS = ["", "x/", "%00", "a%00b", "a%2Fb", "%FF%FE", "%C3%28", "%E2%80%AE", "%2e%2e%2f%2e%2e"]


@pytest.mark.parametrize("kind", LISTABLE)
async def test_odd_ids_answer_404(api, http_server_client, jp_base_url, kind):
    methods = ("GET", "PATCH", "DELETE") if kind in WRITABLE else ("GET",)
    for odd in ODD_IDS:
        for method in methods:  # the api helper escapes the path: "%00" arrives as a literal "%00"
            body = {"description": "x"} if method == "PATCH" else None
            assert_rejected(await api(method, f"{kind}/{odd}", json_body=body), 404, f"{method} {kind}/{odd[:20]}")
    for raw in RAW_IDS:
        for method in methods:
            response = await http_server_client.fetch(
                f"{jp_base_url}aistudio/api/{kind}/{raw}",
                method=method,
                body='{"description": "x"}' if method == "PATCH" else None,
                headers={"Authorization": "token alice-token", "Content-Type": "application/json"},
                raise_error=False,
            )
            assert response.code in (400, 404), (method, raw, response.code, response.body)
            assert json.loads(response.body)["error"]["code"] and b"Traceback" not in response.body


UNKNOWN_PATHS = [
    ("GET", "nope"),
    ("GET", "datasets/x/y/z"),
    ("POST", "nope"),
    ("PATCH", "datasets/x/versions/9/zzz"),
    ("DELETE", "nowhere/at/all"),
    ("GET", "DATASETS"),
    ("PUT", "nope"),
]
UNSUPPORTED_METHODS = [("PUT", "datasets"), ("DELETE", "datasets"), ("PUT", "jobs"), ("PATCH", "jobs/job_x"), ("POST", "me")]


async def test_unknown_paths_and_methods_answer_in_the_envelope(api):
    for expected, cases in ((404, UNKNOWN_PATHS), (405, UNSUPPORTED_METHODS)):
        for method, path in cases:
            body = "{}" if method in ("POST", "PATCH", "PUT") else None
            reply = await api(method, path, body=body, headers={"Content-Type": "application/json"})
            assert_rejected(reply, expected, f"{method} {path}")
