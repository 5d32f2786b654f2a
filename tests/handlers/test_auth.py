"""Authentication of the AI Studio API: every route refuses anonymous callers, XSRF guards
cookie-authenticated writes, and AI Studio's scoped tokens act for their owner until revoked.

The route list comes from the running server's handler table, not from a hand-written list,
so a route added later is covered (or makes these tests fail) without anyone editing them.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.websocket import WebSocketHandler
from traitlets.config import Config

from aistudio_jupyter.app import API_PREFIX, route_pattern
from aistudio_jupyter.handlers import ROUTES

METHODS = web.RequestHandler.SUPPORTED_METHODS
MADE_UP_ID = "ds_0000000000000000000000000"


def aistudio_routes(web_app) -> list[tuple[str, type]]:
    """(regex, handler class) of every rule under the AI Studio prefix, walking nested routers."""
    found: dict[tuple[str, type], None] = {}

    def walk(router) -> None:
        for rule in getattr(router, "rules", ()):
            target = rule.target
            if hasattr(target, "rules"):
                walk(target)
                continue
            regex = getattr(rule.matcher, "regex", None)
            if regex is not None and API_PREFIX in regex.pattern and isinstance(target, type):
                found[(regex.pattern, target)] = None

    walk(web_app.default_router)
    walk(web_app.wildcard_router)
    return list(found)


def implemented_methods(cls: type) -> list[str]:
    """HTTP verbs the handler class answers, beyond tornado's 405 defaults.

    APIHandler.options is Jupyter's CORS preflight: upstream marks it unauthenticated on
    purpose (browsers cannot attach credentials to a preflight) and it returns no data, so it
    is the one inherited verb left out; an AI Studio override of OPTIONS is checked like the rest.
    """
    verbs = []
    for verb in METHODS:
        fn = getattr(cls, verb.lower(), None)
        if fn is None or fn is getattr(web.RequestHandler, verb.lower()):
            continue
        if verb == "OPTIONS" and fn is APIHandler.options:
            continue
        verbs.append(verb)
    return verbs


def _fill_group(match: re.Match) -> str:
    for candidate in (MADE_UP_ID, "1", "x"):
        if re.fullmatch(match.group(1), candidate):
            return candidate
    raise AssertionError(f"no made-up value fits path parameter {match.group(0)!r}")


def path_for(pattern: str) -> str:
    """A concrete path (relative to the API prefix) matching ``pattern``, ids made up."""
    tail = pattern.split(API_PREFIX, 1)[1].rstrip("$")
    tail = re.sub(r"\(\?P<\w+>((?:[^()]|\([^()]*\))*)\)", _fill_group, tail)
    tail = tail.replace(".*", "no-such-route")
    tail = re.sub(r"\\(.)", r"\1", tail)
    assert not re.search(r"[()\[\]*+?^$|]", tail), f"cannot fill route pattern {pattern!r}"
    return tail.strip("/")


def assert_envelope(reply, where: str = "") -> None:
    assert isinstance(reply.body, dict) and "error" in reply.body, f"{where}: no error envelope in {reply.body!r}"
    error = reply.body["error"]
    assert isinstance(error.get("code"), str) and error["code"], where
    assert isinstance(error.get("message"), str) and error["message"], where
    assert "Traceback" not in json.dumps(reply.body), where


# -- every route refuses anonymous and wrongly-authenticated callers ------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_route_refuses_missing_and_wrong_credentials(jp_serverapp, api):
    routes = aistudio_routes(jp_serverapp.web_app)
    # the walk must see at least everything the extension declares, or it proves nothing
    declared = {route_pattern(template) for template, _ in ROUTES}
    seen = {pattern.split(API_PREFIX, 1)[1].rstrip("$") for pattern, _ in routes}
    assert {p[len(API_PREFIX):] for p in declared} <= seen, "handler-table walk missed declared routes"

    failures, checked = [], 0
    for pattern, handler in routes:
        path = path_for(pattern)
        assert re.match(pattern, f"{jp_serverapp.base_url}aistudio/api/{path}"), (pattern, path)
        # a matching XSRF cookie and header: the refusal must come from authentication itself,
        # not from Jupyter's XSRF check, which alone would already stop anonymous writes
        xsrf = secrets.token_hex(16)
        headers = {"Cookie": f"_xsrf={xsrf}", "X-XSRFToken": xsrf}
        if issubclass(handler, WebSocketHandler):
            # a real upgrade request, so the refusal comes from auth and not from a missing upgrade
            headers |= {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for verb in implemented_methods(handler):
            body = "{}" if verb in ("POST", "PATCH", "PUT") else None
            for label, auth in (("no credentials", ""), ("wrong token", "token not-a-real-token"), ("wrong bearer", "Bearer nope")):
                reply = await api(verb, path, user=None, body=body, headers={**headers, "Authorization": auth, "Content-Type": "application/json"})
                checked += 1
                where = f"{verb} /{path} ({handler.__name__}, {label})"
                if reply.status not in (401, 403):
                    failures.append(f"{where}: {reply.status}")
                elif verb != "HEAD":
                    try:
                        assert_envelope(reply, where)
                        assert reply.error["code"] in ("unauthenticated", "forbidden"), where
                    except AssertionError as exc:
                        failures.append(str(exc))
    assert checked >= 3 * len(ROUTES)
    assert not failures, "\n".join(failures)


def _decorator_code(decorator):
    return decorator(lambda self: None).__code__


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_handler_method_is_authenticated_then_authorized(jp_serverapp):
    """Static guard: an unguarded verb added to any AI Studio handler fails here."""
    authenticated_code = _decorator_code(web.authenticated)
    ws_code = _decorator_code(ws_authenticated)
    authorized_code = _decorator_code(authorized)
    problems, checked = [], 0
    for _pattern, handler in aistudio_routes(jp_serverapp.web_app):
        for verb in implemented_methods(handler):
            fn = getattr(handler, verb.lower())
            chain = [fn]
            while hasattr(chain[-1], "__wrapped__") and len(chain) < 10:
                chain.append(chain[-1].__wrapped__)
            codes = [getattr(f, "__code__", None) for f in chain]
            outer_ok = codes[0] is authenticated_code or (issubclass(handler, WebSocketHandler) and codes[0] is ws_code)
            # web.authenticated outermost, then authorized: the reverse order authorizes a None user
            if not (outer_ok and len(codes) > 1 and codes[1] is authorized_code):
                problems.append(f"{handler.__module__}.{handler.__qualname__}.{verb.lower()}")
            checked += 1
    assert checked >= len(ROUTES)
    assert not problems, f"methods missing @web.authenticated + @authorized: {problems}"


def test_static_check_catches_an_unguarded_method():
    """The static check's predicate really distinguishes guarded from unguarded methods."""

    class Unguarded(APIHandler):
        def get(self):
            pass

    class AuthorizedOnly(APIHandler):
        @authorized
        def post(self):
            pass

    assert implemented_methods(Unguarded) == ["GET"]
    assert getattr(Unguarded.get, "__code__") is not _decorator_code(web.authenticated)
    assert getattr(AuthorizedOnly.post, "__code__") is _decorator_code(authorized)
    assert getattr(AuthorizedOnly.post, "__code__") is not _decorator_code(web.authenticated)


# -- XSRF on cookie-authenticated writes (Jupyter's own token identity provider) -------------


def _cookies(reply) -> dict[str, str]:
    jar = SimpleCookie()
    for header in reply.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


class TestCookieSessions:
    @pytest.fixture
    def jp_server_config(self, aistudio_config):
        # Jupyter's default identity provider: token and login cookie, as a browser uses it
        return Config({"ServerApp": {"jpserver_extensions": {"aistudio_jupyter": True}}, "AIStudio": aistudio_config})

    @staticmethod
    async def log_in(jp_fetch, jp_serverapp) -> dict[str, str]:
        """Log in as a browser does: load the login form, post the token with its _xsrf."""
        form = await jp_fetch("login", method="GET", headers={"Authorization": ""}, raise_error=False, follow_redirects=False)
        xsrf = _cookies(form)["_xsrf"]
        login = await jp_fetch(
            "login",
            method="POST",
            headers={"Authorization": "", "Cookie": f"_xsrf={xsrf}", "Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode({"password": jp_serverapp.identity_provider.token, "_xsrf": xsrf}),
            raise_error=False,
            follow_redirects=False,
        )
        assert login.code in (302, 303), login.code
        session = {k: v for k, v in _cookies(login).items() if k.startswith("username-")}
        assert session, "login set no session cookie"
        return {"_xsrf": xsrf, **session}

    async def test_cookie_write_needs_xsrf(self, api, jp_fetch, jp_serverapp):
        browser_cookies = await self.log_in(jp_fetch, jp_serverapp)
        session_only = "; ".join(f"{k}={v}" for k, v in browser_cookies.items() if k != "_xsrf")
        everything = "; ".join(f"{k}={v}" for k, v in browser_cookies.items())

        # the cookie alone authenticates reads ...
        read = await api("GET", "datasets", user=None, headers={"Cookie": session_only})
        assert read.status == 200, read.body
        # ... but a write without the XSRF token is refused: a foreign page could have sent it
        forged = await api("POST", "datasets", user=None, json_body={"name": "forged"}, headers={"Cookie": everything})
        assert forged.status == 403, forged.body
        assert_envelope(forged)
        wrong = await api("POST", "datasets", user=None, json_body={"name": "forged"}, headers={"Cookie": everything, "X-XSRFToken": "2|00000000|" + "0" * 32 + "|1"})
        assert wrong.status == 403
        assert_envelope(wrong)

        ok = await api("POST", "datasets", user=None, json_body={"name": "from-browser"}, headers={"Cookie": everything, "X-XSRFToken": browser_cookies["_xsrf"]})
        assert ok.status == 201, ok.body
        # the anonymous name Jupyter invents for the browser is the server's owner
        assert ok.body["owner"] == "alice"
        listed = await api("GET", "datasets", user=None, headers={"Cookie": session_only})
        assert [d["name"] for d in listed.body["items"]] == ["from-browser"]

    async def test_token_header_write_needs_no_xsrf(self, api, jp_auth_header):
        # a header token cannot be sent by a foreign page, so no XSRF token is needed
        created = await api("POST", "datasets", user=None, json_body={"name": "scripted"}, headers=dict(jp_auth_header))
        assert created.status == 201, created.body
        anonymous = await api("POST", "datasets", user=None, json_body={"name": "nobody"})
        assert anonymous.status == 403
        assert_envelope(anonymous)


# -- AI Studio scoped tokens ----------------------------------------------------------------


def _tokens(jp_serverapp):
    return jp_serverapp.web_app.settings["aistudio"].services.tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_scoped_token_acts_as_its_owner(jp_serverapp, api):
    token, _ = _tokens(jp_serverapp).mint("bob", "bob's kernel", "kernel")
    assert token.startswith("aist_")
    me = await api("GET", "me", user=None, headers=_bearer(token))
    assert me.status == 200, me.body
    assert me.body["username"] == "bob" and me.body["teams"] == ["vision"] and me.body["editor_teams"] == []
    created = await api("POST", "datasets", user=None, json_body={"name": "via-token"}, headers=_bearer(token))
    assert created.status == 201 and created.body["owner"] == "bob"
    # bob sees it with his own login; alice does not
    assert (await api("GET", f"datasets/{created.body['id']}", user="bob")).status == 200
    assert (await api("GET", f"datasets/{created.body['id']}", user="alice")).status == 404
    # "token" is accepted as the scheme too, as Jupyter clients send it
    again = await api("GET", "me", user=None, headers={"Authorization": f"token {token}"})
    assert again.status == 200 and again.body["username"] == "bob"


async def test_revoked_token_stops_working(jp_serverapp, api):
    tokens = _tokens(jp_serverapp)
    token, token_id = tokens.mint("carol", "carol's job", "kernel")
    assert (await api("GET", "datasets", user=None, headers=_bearer(token))).status == 200
    tokens.revoke(token_id)
    refused = await api("GET", "datasets", user=None, headers=_bearer(token))
    assert refused.status == 403
    assert_envelope(refused)
    assert refused.error["code"] == "unauthenticated"


async def test_token_revoked_by_another_process_expires_from_the_cache(jp_serverapp, api, database_url):
    from aistudio_jupyter.services.tokens import TokenService
    from aistudio_jupyter.store.session import Database

    tokens = _tokens(jp_serverapp)
    token, token_id = tokens.mint("bob", "shared", "kernel")
    assert (await api("GET", "me", user=None, headers=_bearer(token))).status == 200
    # another server process (its own Database and TokenService) revokes the token
    other = Database(database_url)
    try:
        TokenService(db=other).revoke(token_id)
    finally:
        other.close()
    # this process still holds the grant in its cache for up to CACHE_SECONDS (10 s); rather
    # than sleeping through it, expire the cache as the clock would
    tokens._cache.clear()
    refused = await api("GET", "me", user=None, headers=_bearer(token))
    assert refused.status == 403
    assert_envelope(refused)


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda tokens: "aist_" + secrets.token_urlsafe(32), id="garbage"),
        pytest.param(lambda tokens: tokens.mint("bob", "old", "kernel", ttl=-1)[0], id="expired"),
        pytest.param(lambda tokens: tokens.mint("bob", "job", "job", scopes=("job:metrics",))[0], id="job-scoped"),
        pytest.param(lambda tokens: "aist_x", id="too-short"),
    ],
)
async def test_bad_scoped_tokens_are_refused(jp_serverapp, api, make_token):
    token = make_token(_tokens(jp_serverapp))
    for verb, path, body in (("GET", "me", None), ("GET", "datasets", None), ("POST", "datasets", {"name": "nope"})):
        reply = await api(verb, path, user=None, json_body=body, headers=_bearer(token))
        assert reply.status == 403, (verb, path, reply.body)
        assert_envelope(reply)
    assert (await api("GET", "datasets", user="bob")).body["items"] == []
