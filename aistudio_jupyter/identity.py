"""Who is asking: the principal that every service call acts for.

Jupyter's default token authentication invents a fresh anonymous user for every request that
carries a token but no login cookie (API clients and kernels never send one). In a plain
single-user server all those identities are one person, the server's owner; where an identity
provider really names users (JupyterHub, a custom provider) the named user is the principal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider

#: Identity providers whose users are made-up anonymous names rather than people.
ANONYMOUS_PROVIDERS: tuple[type, ...] = (IdentityProvider, PasswordIdentityProvider)
try:  # removed in some jupyter_server releases
    from jupyter_server.auth.identity import LegacyIdentityProvider

    ANONYMOUS_PROVIDERS += (LegacyIdentityProvider,)
except ImportError:  # pragma: no cover
    pass


@dataclasses.dataclass(frozen=True)
class Principal:
    """The person a request acts for, with what the configuration grants them."""

    username: str
    display_name: str = ""
    groups: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    editor_teams: tuple[str, ...] = ()
    tier: str = "default"
    #: ``None`` for a full session; a scoped token narrows what the principal may do.
    scopes: tuple[str, ...] | None = None
    request_id: str = ""
    #: set when the request came with a job's token: it reads as the job's owner and mutates
    #: only through routes that allow job tokens, and only for this job
    job_id: str | None = None

    def in_team(self, team: str | None) -> bool:
        return team is not None and team in self.teams

    def edits_team(self, team: str | None) -> bool:
        return team is not None and team in self.editor_teams


def teams_for(username: str, groups: Iterable[str], teams: Mapping[str, Mapping]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (member teams, editor teams) from the team table and the user's hub groups.

    A hub group makes its members members of the team of the same name; the editor role only
    comes from the configured table, so a hub admin's group name alone grants no writes.
    """
    member = set(groups)
    editor = set()
    for name, spec in teams.items():
        if username in spec.get("members", ()) or username in spec.get("editors", ()):
            member.add(name)
        if username in spec.get("editors", ()):
            editor.add(name)
    return tuple(sorted(member)), tuple(sorted(editor))


def tier_for(username: str, groups: Iterable[str], user_tiers: Mapping[str, str], group_tiers: Mapping[str, str], tiers: Mapping[str, Mapping]) -> str:
    """Pick the user's tier: an explicit user entry wins, then the best-ranked hub group."""
    if username in user_tiers:
        return user_tiers[username]
    candidates = [group_tiers[g] for g in groups if g in group_tiers]
    if candidates:
        return max(candidates, key=lambda t: tiers.get(t, {}).get("priority", 0))
    return "default"


def quotas_of(tiers: Mapping[str, Mapping], who: Principal) -> Mapping:
    """The quotas of ``who``'s tier; a tier missing from the table falls back to 'default'."""
    return tiers.get(who.tier) or tiers["default"]
