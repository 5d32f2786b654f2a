"""The served OpenAPI document is valid OpenAPI 3.1 and documents every route the server
really mounts under the API, read from tornado's handler table rather than a list kept by hand."""

from __future__ import annotations

import inspect
import re

import pytest
from jupyter_server.base.handlers import APIHandler
from openapi_spec_validator import validate
from tornado import web
from tornado.routing import PathMatches, Router
from tornado.web import RequestHandler

from aistudio_jupyter.handlers.base import AIStudioHandler, NotFoundHandler, Operation
from aistudio_jupyter.openapi import UndocumentedOperation, build_document
from aistudio_jupyter.schemas.common import StrictModel

API = "/aistudio/api"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def mounted_routes(web_app) -> list[tuple[str, type]]:
    """(path template, handler class) for every rule under the API in the live handler table."""
    found: list[tuple[str, type]] = []

    def walk(router: Router) -> None:
        for rule in getattr(router, "rules", ()):
            if isinstance(rule.target, Router):
                walk(rule.target)
            elif isinstance(rule.target, type) and issubclass(rule.target, RequestHandler) and isinstance(rule.matcher, PathMatches):
                pattern = rule.matcher.regex.pattern.removesuffix("$")
                if API in pattern:
                    found.append((GROUP.sub(r"{\1}", pattern.split(API, 1)[1]), rule.target))

    walk(web_app.default_router)
    walk(web_app.wildcard_router)
    return list(dict.fromkeys(found))


def methods_of(handler: type) -> list[str]:
    """Methods the class answers itself: not tornado's 405 stubs nor Jupyter's CORS OPTIONS."""
    return [m for m in METHODS if getattr(handler, m) not in (getattr(RequestHandler, m), getattr(APIHandler, m))]


def reads_json_body(function) -> bool:
    """Whether the method (under its auth decorators) parses a JSON body."""
    return "parse_body" in inspect.unwrap(function).__code__.co_names


def undocumented(document: dict, routes: list[tuple[str, type]]) -> list[str]:
    """What ``document`` fails to say about ``routes``: each problem as one line."""
    problems = []
    for template, handler in routes:
        item = document["paths"].get(template)
        if item is None:
            problems.append(f"{template}: missing")
            continue
        for method in methods_of(handler):
            op = item.get(method)
            where = f"{method.upper()} {template}"
            if op is None:
                problems.append(f"{where}: method missing")
                continue
            if not any(code.startswith("2") or code == "101" for code in op.get("responses", {})):  # 101: a WebSocket
                problems.append(f"{where}: no success response")
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            if declared != set(re.findall(r"{(\w+)}", template)):
                problems.append(f"{where}: path parameters {sorted(declared)}")
            if reads_json_body(getattr(handler, method)) and "schema" not in op.get("requestBody", {}).get("content", {}).get("application/json", {}):
                problems.append(f"{where}: reads a JSON body that has no requestBody schema")
    return problems


# -- the served document ------------------------------------------------------------------


async def test_served_document_is_valid_openapi_31(api, jp_base_url):
    reply = await api("GET", "openapi.json")
    assert reply.status == 200, reply.body
    doc = reply.body
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any structural error, unresolved $ref included
    assert doc["servers"] == [{"url": jp_base_url.rstrip("/") + API}]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


async def test_every_mounted_route_is_documented(api, jp_serverapp):
    routes = mounted_routes(jp_serverapp.web_app)
    catch_all = [t for t, h in routes if h is NotFoundHandler]
    assert catch_all == ["/.*"], "the catch-all 404 route moved; update this test"
    routes = [(t, h) for t, h in routes if h is not NotFoundHandler]
    # the walk must really see the table, not an empty list that passes vacuously
    assert {"/openapi.json", "/datasets", "/datasets/{id}"} <= {t for t, _ in routes}

    reply = await api("GET", "openapi.json")
    assert reply.status == 200, reply.body  # the generator refuses undocumented methods
    doc = reply.body
    assert undocumented(doc, routes) == []
    # and nothing is documented that the server does not serve
    served = {(t, m) for t, h in routes for m in methods_of(h)}
    assert {(t, m) for t, item in doc["paths"].items() for m in item} == served


async def test_bodies_forbid_unknown_fields_and_errors_use_the_envelope(api):
    doc = (await api("GET", "openapi.json")).body
    schemas = doc["components"]["schemas"]
    checked = 0
    for template, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody")
            if body:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                assert schemas[name].get("additionalProperties") is False, f"{method} {template}: {name} accepts unknown fields"
                assert {"413", "415"} <= set(op["responses"]), f"{method} {template}"
                checked += 1
            for code, response in op["responses"].items():
                if int(code) >= 400 and not (template == "/health" and code == "503"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert checked >= 8  # POST and PATCH of datasets, models, agents, deployments


# -- the checks fail when something is left out -------------------------------------------


class Thing(StrictModel):
    name: str


class UndocumentedPutHandler(AIStudioHandler):
    """Documents GET but also answers PUT."""

    operations = {"get": Operation("A thing", Thing)}

    @web.authenticated
    def get(self) -> None:
        self.reply({"name": "x"})

    @web.authenticated
    def put(self) -> None:
        self.reply(self.parse_body(Thing))


class BodyWithoutSchemaHandler(AIStudioHandler):
    """Reads a JSON body its Operation does not declare."""

    operations = {"post": Operation("Make a thing", Thing, status=201)}

    @web.authenticated
    def post(self) -> None:
        self.reply(self.parse_body(Thing), status=201)


def test_generator_refuses_a_method_without_an_operation():
    with pytest.raises(UndocumentedOperation, match="PUT /things"):
        build_document([("/things", UndocumentedPutHandler)])


def test_completeness_check_reports_what_a_document_leaves_out(jp_serverapp):
    routes = [(t, h) for t, h in mounted_routes(jp_serverapp.web_app) if h is not NotFoundHandler]
    doc = build_document(routes)
    assert undocumented(doc, routes) == []

    extra = [("/things/{id}", UndocumentedPutHandler), ("/makers", BodyWithoutSchemaHandler)]
    assert undocumented(doc, routes + extra) == ["/things/{id}: missing", "/makers: missing"]

    doc = build_document([*routes, ("/makers", BodyWithoutSchemaHandler)])
    assert undocumented(doc, routes + [("/makers", BodyWithoutSchemaHandler)]) == ["POST /makers: reads a JSON body that has no requestBody schema"]

    del doc["paths"]["/datasets/{id}"]["patch"]
    doc["paths"]["/datasets/{id}"]["get"]["parameters"] = []
    assert undocumented(doc, routes) == ["GET /datasets/{id}: path parameters []", "PATCH /datasets/{id}: method missing"]
