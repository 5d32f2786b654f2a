"""A test identity provider that names users, as JupyterHub does: a token per user."""

from __future__ import annotations

from jupyter_server.auth.identity import IdentityProvider, User

USERS = {"alice-token": "alice", "bob-token": "bob", "carol-token": "carol"}


class NamedUsersIdentityProvider(IdentityProvider):
    """``Authorization: token alice-token`` is alice; anything else goes to Jupyter's own auth."""

    async def get_user(self, handler):
        scheme, _, value = handler.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "token" and value in USERS:
            handler._token_authenticated = True
            name = USERS[value]
            return User(username=name, name=name, display_name=name.title())
        return await super().get_user(handler)
