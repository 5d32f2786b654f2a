"""The OpenAPI 3.1 document, generated from the route table and the pydantic models that
validate the same requests, so the document cannot drift from what the server enforces."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from tornado.web import RequestHandler

from . import __version__
from .schemas.common import ErrorEnvelope

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
PATH_PARAM = re.compile(r"{(\w+)}")
REF = "#/components/schemas/{model}"
ERRORS = {
    "400": "Malformed request",
    "403": "Not authenticated or not allowed",
    "404": "Not found (or not visible to the caller)",
    "422": "Invalid input",
    "503": "Database unavailable; retry after Retry-After seconds",
}


def implemented_methods(handler: type[RequestHandler]) -> list[str]:
    """HTTP methods a handler class really implements (not tornado's 405 defaults)."""
    return [m for m in HTTP_METHODS if getattr(handler, m) is not getattr(RequestHandler, m)]


def operations_of(handler) -> dict:
    return handler.openapi_operations() if hasattr(handler, "openapi_operations") else dict(handler.operations)


def build_document(routes: list[tuple[str, type]], server_url: str = "/aistudio/api") -> dict[str, Any]:
    spec = _cached_document(tuple(routes))
    return {**spec, "servers": [{"url": server_url}]}


@functools.lru_cache(maxsize=4)
def _cached_document(routes: tuple[tuple[str, type], ...]) -> dict[str, Any]:
    models: list[type[BaseModel]] = [ErrorEnvelope]
    planned = []
    for template, handler in routes:
        ops = operations_of(handler)
        for method in implemented_methods(handler):
            op = ops[method]  # KeyError here means an undocumented route: tests catch it
            models += [m for m in (op.body, op.response, op.query) if m is not None and inspect.isclass(m)]
            planned.append((template, method, handler, op))
    unique = list(dict.fromkeys(models))
    keys = [(m, "validation") for m in unique] + [(m, "serialization") for m in unique]
    refs, defs = models_json_schema(keys, ref_template=REF)

    def ref(model, mode):
        return refs[(model, mode)]

    paths: dict[str, dict] = {}
    for template, method, handler, op in planned:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
            for name in PATH_PARAM.findall(template)
        ]
        if op.query is not None:
            qschema = op.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in qschema.get("required", ()), "schema": prop})
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": ref(op.response, "serialization")}}
        responses[str(op.status)] = ok
        for status, text in ERRORS.items():
            responses[status] = {"description": text, "content": {"application/json": {"schema": ref(ErrorEnvelope, "serialization")}}}
        operation: dict[str, Any] = {
            "operationId": f"{method}{handler.__name__.removesuffix('Handler')}",
            "summary": op.summary,
            "description": inspect.getdoc(handler) or "",
            "tags": [op.tag] if op.tag else [],
            "parameters": params,
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(op.body, "validation")}}}
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
