"""Jupyter's auth, extended with AI Studio's scoped tokens.

Kernels and job processes call the API with tokens the extension minted (``Authorization:
Bearer aist_…``). Rather than replacing the server's identity provider — which would break
JupyterHub OAuth and any custom provider — each AI Studio handler sees Jupyter's provider and
authorizer wrapped: an AI Studio token is checked first, anything else goes to Jupyter.
"""

from __future__ import annotations

import inspect
from typing import Any

from jupyter_server.auth.identity import User

from ..services.tokens import SCOPE_API, SCOPE_JOB, TokenService, looks_like_token


def bearer_token(handler) -> str | None:
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and looks_like_token(value.strip()):
        return value.strip()
    return None


class TokenIdentityProvider:
    """Jupyter's identity provider, with AI Studio tokens recognised first."""

    def __init__(self, inner, tokens: TokenService):
        self._inner = inner
        self._tokens = tokens

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_user(self, handler) -> User | None:
        token = bearer_token(handler)
        if token is not None:
            grant = await self._tokens.resolve(token)
            handler._aistudio_grant = grant
            if grant is None:
                return None
            return User(username=grant.owner, name=grant.owner, display_name=grant.owner)
        user = self._inner.get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        return user

    def is_token_authenticated(self, handler) -> bool:
        # a header token is no cookie: no XSRF risk
        if getattr(handler, "_aistudio_grant", None) is not None:
            return True
        return self._inner.is_token_authenticated(handler)

    def should_check_origin(self, handler) -> bool:
        if getattr(handler, "_aistudio_grant", None) is not None:
            return False
        return self._inner.should_check_origin(handler)


class TokenAuthorizer:
    """Jupyter's authorizer; AI Studio tokens are authorized by their scopes alone."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def is_authorized(self, handler, user, action: str, resource: str):
        grant = getattr(handler, "_aistudio_grant", None)
        if grant is not None:
            # a job token's narrower rights are enforced per route (AIStudioHandler.prepare)
            return resource == "aistudio" and (SCOPE_API in grant.scopes or SCOPE_JOB in grant.scopes)
        return self._inner.is_authorized(handler, user, action, resource)
