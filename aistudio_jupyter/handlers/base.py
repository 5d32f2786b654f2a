"""The base of every AI Studio handler: auth, parsing, serialisation and the error envelope.

A handler parses with a pydantic model, calls one service method and serialises the result.
Every failure, including unexpected ones, leaves as ``{"error": {code, message, details,
request_id}}`` with the right status; tracebacks go to the server log under the request id,
never to the client.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any, ClassVar, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web
from tornado.web import HTTPError

from ..errors import STATUS_CODES, AIStudioError, BadRequest, Forbidden, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..identity import ANONYMOUS_PROVIDERS, Principal, teams_for, tier_for
from ..observability import observe_request
from ..services.tokens import SCOPE_API
from .auth import TokenAuthorizer, TokenIdentityProvider

M = TypeVar("M", bound=BaseModel)
AUTH_RESOURCE = "aistudio"
#: query arguments Jupyter clients add to any URL; never part of an operation's query model
IGNORED_QUERY_ARGS = frozenset({"token", "_xsrf", "no_track_activity", "_"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
# PostgreSQL refuses NUL in text and UTF-8 cannot encode a lone surrogate (JSON's "\ud800"),
# so either would fail deep in the store as a 500 instead of a 4xx here
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _unstorable_string(value: Any) -> bool:
    """Whether parsed JSON holds a string (key or value) with NUL or a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@dataclasses.dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one method of one route."""

    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    tag: str = ""


class AIStudioHandler(APIHandler):
    """Authenticated JSON handler with AI Studio's identity, parsing and error envelope."""

    auth_resource = AUTH_RESOURCE
    #: method name → Operation, read by the OpenAPI generator
    operations: ClassVar[dict[str, Operation]] = {}
    #: whether a job's token may change things through this handler (metrics, checkpoints,
    #: model-version registration); elsewhere a job token only reads (contract 2)
    job_token_allowed: ClassVar[bool] = False

    def initialize(self, **kwargs: Any) -> None:
        super().initialize(**kwargs)
        self.request_id = self._request_id()
        self.set_header("X-Request-Id", self.request_id)

    async def prepare(self) -> None:
        await super().prepare()
        grant = getattr(self, "_aistudio_grant", None)
        if grant is not None and grant.job_id is not None and not self.job_token_allowed and self.request.method not in ("GET", "HEAD", "OPTIONS"):
            raise Forbidden("A job's token cannot make this change; it may report metrics, checkpoints and model versions of its own job.", {"job_id": grant.job_id})
        # unauthenticated requests are refused by @web.authenticated, not counted
        if self.current_user is not None and (grant is None or grant.job_id is None):
            self.services.rate_limits.check(self.principal)

    def on_finish(self) -> None:
        super().on_finish()
        observe_request(type(self).__name__, self.request.method or "", self.get_status(), self.request.request_time())

    def _request_id(self) -> str:
        given = self.request.headers.get("X-Request-Id", "")
        return given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Path arguments (``/datasets/%00``) are refused before they reach the store."""
        text = super().decode_argument(value, name)
        if _UNSTORABLE.search(text):
            raise BadRequest("The URL contains a NUL character.")
        return text

    @property
    def aistudio(self):
        """The AIStudio extension app (configuration and services)."""
        return self.settings["aistudio"]

    @property
    def services(self):
        return self.aistudio.services

    @property
    def identity_provider(self):
        return TokenIdentityProvider(super().identity_provider, self.services.tokens)

    @property
    def authorizer(self):
        return TokenAuthorizer(super().authorizer)

    # -- identity --------------------------------------------------------------------------

    @property
    def principal(self) -> Principal:
        """The person this request acts for (see ``identity`` for the anonymous-user trap)."""
        cached = getattr(self, "_principal", None)
        if cached is not None:
            return cached
        app = self.aistudio
        user = self.current_user
        grant = getattr(self, "_aistudio_grant", None)
        groups: tuple[str, ...] = ()
        scopes = None
        if grant is not None:
            username = grant.owner
            scopes = None if SCOPE_API in grant.scopes else grant.scopes
        elif app.identity_mode == "owner" or (app.identity_mode == "auto" and type(self.settings["identity_provider"]) in ANONYMOUS_PROVIDERS):
            username = app.owner
            user = None  # the invented anonymous name means nothing
        else:
            username = user.username
            hub_user = getattr(user, "hub_user", None) or {}
            groups = tuple(hub_user.get("groups", ()) if isinstance(hub_user, dict) else ())
        teams, editor = teams_for(username, groups, app.teams)
        self._principal = Principal(
            username=username,
            display_name=getattr(user, "display_name", "") or username,
            groups=groups,
            teams=teams,
            editor_teams=editor,
            tier=tier_for(username, groups, app.user_tiers, app.group_tiers, app.tier_table),
            scopes=scopes,
            request_id=self.request_id,
            job_id=grant.job_id if grant is not None else None,
        )
        return self._principal

    # -- parsing ---------------------------------------------------------------------------

    def parse_body(self, model: type[M]) -> M:
        """The JSON body validated against ``model``; bad input raises a 4xx domain error."""
        body = self.request.body or b""
        limit = self.aistudio.max_json_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"The JSON body is larger than {limit} bytes.", {"limit": limit})
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json") and ctype != "text/plain":
            raise UnsupportedMediaType("Send the body as application/json.", {"content_type": ctype[:100]})
        try:
            data = json.loads(body or b"{}", parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # "[[[[…" 100k deep recurses out
            raise BadRequest(f"The body is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise InvalidInput("The body must be a JSON object.")
        if _unstorable_string(data):
            raise InvalidInput("Strings in the body may not contain NUL characters or unpaired surrogates.")
        return self._validate(model, data)

    def parse_query(self, model: type[M]) -> M:
        """The query string validated against ``model``; unknown arguments are refused."""
        args: dict[str, str] = {}
        for key, values in self.request.query_arguments.items():
            if key in IGNORED_QUERY_ARGS:
                continue
            try:
                args[key] = values[-1].decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest(f"Query argument {key[:64]!r} is not UTF-8.") from None
            if _UNSTORABLE.search(key + args[key]):
                raise InvalidInput(f"Query argument {key[:64]!r} contains a NUL character.", {"field": key[:64]})
        return self._validate(model, args)

    @staticmethod
    def _validate(model: type[M], data: dict) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False, include_input=False, include_context=False)[:20]
            ]
            first = errors[0] if errors else {"loc": [], "msg": "invalid"}
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidInput(f"{where}: {first['msg']}", {"errors": errors}) from None

    # -- responses -------------------------------------------------------------------------

    def reply(self, value: BaseModel | dict | None, status: int = 200) -> None:
        self.set_status(status)
        if value is None:
            self.finish()
        elif isinstance(value, BaseModel):
            self.finish(value.model_dump_json())
        else:
            self.finish(json.dumps(value))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, AIStudioError):
            self.log.info("AI Studio %s %s → %s %s [%s]", self.request.method, self.request.path, value.status, value.code, self.request_id)
        elif isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)
        else:
            self.log.error("AI Studio request %s failed: %s %s", self.request_id, self.request.method, self.request.path, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        details: dict[str, Any] = {}
        retry_after = None
        if isinstance(exc, AIStudioError):
            status, code, message, details, retry_after = exc.status, exc.code, exc.message, exc.details, exc.retry_after
        elif isinstance(exc, HTTPError):
            status = exc.status_code
            code = STATUS_CODES.get(status, "error")
            message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            if status == 403 and not self.current_user:
                code, message = "unauthenticated", "Authentication required: log in to Jupyter or send a token."
            message = message or exc.reason or self._reason
        else:
            status, code = 500, "internal"
            message = f"Internal error; the server log has the details under request id {self.request_id}."
        self.set_status(status)
        # send_error cleared the headers set in initialize()
        self.set_header("X-Request-Id", self.request_id)
        if retry_after:
            self.set_header("Retry-After", str(retry_after))
        body = {"error": {"code": code, "message": message, "details": details, "request_id": self.request_id}}
        self.finish(json.dumps(body, default=str))


class NotFoundHandler(AIStudioHandler):
    """Any other path under the API: a 404 in the envelope, after authentication."""

    @web.authenticated
    @authorized
    def get(self, *args: Any) -> None:
        raise HTTPError(404, "No such AI Studio API route.")

    post = put = patch = delete = get
