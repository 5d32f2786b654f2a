"""The OpenAPI 3.1 document, generated from the route table and the pydantic models that
validate the same requests, so the document cannot drift from what the server enforces."""

from __future__ import annotations

import copy
import functools
import inspect
import re
from typing import Any

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from tornado.web import RequestHandler

from . import __version__
from .schemas.common import ErrorEnvelope

HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
PATH_PARAM = re.compile(r"{(\w+)}")
REF = "#/components/schemas/{model}"
#: every operation can answer these (authentication, routing, validation, outages)
ERRORS = {
    "400": "Malformed request",
    "403": "Not authenticated or not allowed",
    "404": "Not found (or not visible to the caller)",
    "422": "Invalid input",
    "429": "Rate limit or quota reached; retry after Retry-After seconds",
    "503": "Database unavailable; retry after Retry-After seconds",
}
#: changes can collide with existing rows (a duplicate name, a row in use)
WRITE_ERRORS = {"409": "Conflicts with existing data"}
#: a JSON body can be too big or not JSON at all
BODY_ERRORS = {"413": "Body too large", "415": "Body is not application/json"}
#: the body cap applies to every request that may carry one, whether the route reads it or not
SENT_BODY_ERRORS = {"413": "Body too large"}


class UndocumentedOperation(LookupError):
    """A handler implements an HTTP method that has no ``Operation`` to document it."""


def implemented_methods(handler: type[RequestHandler]) -> list[str]:
    """HTTP methods a handler class really implements: not tornado's 405 defaults, and not
    the CORS ``OPTIONS`` every Jupyter ``APIHandler`` inherits."""
    inherited = {m: {getattr(RequestHandler, m), getattr(APIHandler, m)} for m in HTTP_METHODS}
    return [m for m in HTTP_METHODS if getattr(handler, m) not in inherited[m]]


def operations_of(handler) -> dict:
    return handler.openapi_operations() if hasattr(handler, "openapi_operations") else dict(getattr(handler, "operations", {}))


def build_document(routes: list[tuple[str, type]], server_url: str = "/aistudio/api") -> dict[str, Any]:
    """The document for ``routes``; raises ``UndocumentedOperation`` for a method without one."""
    # a copy, so a caller that edits its document cannot change the cached one
    spec = copy.deepcopy(_cached_document(tuple(routes)))
    return {**spec, "servers": [{"url": server_url}]}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One parameter per field; an optional ``X | None`` is just ``X`` in a query string,
    where leaving the argument out is the only way to say None."""
    qschema = model.model_json_schema()
    params = []
    for name, prop in qschema.get("properties", {}).items():
        prop = dict(prop)
        branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
        if "anyOf" in prop and len(branches) == 1:
            del prop["anyOf"]
            prop = {**branches[0], **prop}
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        params.append({"name": name, "in": "query", "required": name in qschema.get("required", ()), "schema": prop})
    return params


@functools.lru_cache(maxsize=4)
def _cached_document(routes: tuple[tuple[str, type], ...]) -> dict[str, Any]:
    models: list[type[BaseModel]] = [ErrorEnvelope]
    planned = []
    for template, handler in routes:
        ops = operations_of(handler)
        # {method: {status: (description, model)}}: answers that are not the error envelope
        extra = getattr(handler, "openapi_responses", {})
        for method in implemented_methods(handler):
            if method not in ops:
                raise UndocumentedOperation(f"{handler.__module__}.{handler.__name__} implements {method.upper()} {template} but has no Operation for it")
            op = ops[method]
            models += [m for m in (op.body, op.response, op.query) if m is not None and inspect.isclass(m)]
            models += [model for _, model in extra.get(method, {}).values()]
            planned.append((template, method, handler, op, extra.get(method, {})))
    unique = list(dict.fromkeys(models))
    keys = [(m, "validation") for m in unique] + [(m, "serialization") for m in unique]
    refs, defs = models_json_schema(keys, ref_template=REF)

    def json_content(model, mode="serialization"):
        return {"application/json": {"schema": refs[(model, mode)]}}

    paths: dict[str, dict] = {}
    for template, method, handler, op, extra in planned:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
            for name in PATH_PARAM.findall(template)
        ]
        if op.query is not None:
            params += _query_parameters(op.query)
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            ok["content"] = json_content(op.response)
        # {method: media type}: a success body that is text, not JSON (a widget's ES module)
        media = getattr(handler, "openapi_media", {}).get(method)
        if media is not None:
            ok["content"] = {media: {"schema": {"type": "string"}}}
        responses[str(op.status)] = ok
        writes = method in ("post", "put", "patch", "delete")
        errors = {**ERRORS, **(WRITE_ERRORS if writes else {}), **(SENT_BODY_ERRORS if method != "delete" and writes else {}), **(BODY_ERRORS if op.body is not None else {})}
        for status, text in sorted(errors.items()):
            responses[status] = {"description": text, "content": json_content(ErrorEnvelope)}
        for status, (text, model) in extra.items():
            responses[str(status)] = {"description": text, "content": json_content(model)}
        operation: dict[str, Any] = {
            "operationId": f"{method}{handler.__name__.removesuffix('Handler')}",
            "summary": op.summary,
            "description": inspect.getdoc(handler) or "",
            "tags": [op.tag] if op.tag else [],
            "parameters": params,
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": json_content(op.body, "validation")}
        paths.setdefault(template, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "AI Studio for Jupyter", "version": __version__, "description": "REST API of the aistudio Jupyter server extension. Authenticate as with any Jupyter API: `Authorization: token <jupyter token>` or an AI Studio token (`Bearer aist_…`)."},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"jupyterToken": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`token <token>` or `Bearer <token>`"}},
        },
        "security": [{"jupyterToken": []}],
    }
