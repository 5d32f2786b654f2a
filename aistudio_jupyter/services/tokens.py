"""Scoped API tokens: minted for kernels and jobs, stored only as hashes.

A token is ``aist_`` + 256 random bits. The server keeps its sha256 (a slow hash buys nothing
against random secrets) and a short in-memory cache so that a busy kernel does not cost a
database read per request; revocation therefore takes effect within ``cache_seconds``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import threading
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets import Float
from traitlets.config import LoggingConfigurable

from ..errors import NotFound
from ..store.orm import ApiToken
from ..store.types import utcnow
from .ids import new_id

PREFIX = "aist_"
#: full access to the AI Studio API as the token's owner (kernels, personal tokens)
SCOPE_API = "api"
#: a job process's token: reads as its owner, writes only through job-token routes (contract 2)
SCOPE_JOB = "job"


@dataclasses.dataclass(frozen=True)
class TokenGrant:
    id: str
    owner: str
    kind: str
    scopes: tuple[str, ...]
    job_id: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX) and 20 < len(value) < 100


class TokenService(LoggingConfigurable):
    """Mint, resolve and revoke AI Studio tokens."""

    db = AnyTrait(help="The Database tokens live in.")
    cache_seconds = Float(10.0, config=True, help="How long a token look-up is cached; a revoked token works at most this long.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cache: dict[str, tuple[float, TokenGrant | None]] = {}
        self._lock = threading.Lock()

    def mint(self, owner: str, name: str, kind: str, scopes: tuple[str, ...] = (SCOPE_API,), *, ttl: float | None = None, job_id: str | None = None, token: str | None = None) -> tuple[str, str]:
        """Create a token and return (plaintext, id); the plaintext is never stored."""
        token = token or PREFIX + secrets.token_urlsafe(32)
        token_id = new_id("tok")
        expires = utcnow() + dt.timedelta(seconds=ttl) if ttl else None

        def _mint(session: Session) -> None:
            session.add(ApiToken(id=token_id, owner=owner, name=name, kind=kind, token_hash=hash_token(token), scopes=list(scopes), job_id=job_id, expires_at=expires))

        self.db.call(_mint, write=True)
        return token, token_id

    def id_of(self, token: str) -> str | None:
        """The id of the row holding this token's hash, if any."""
        digest = hash_token(token)
        return self.db.call(lambda session: session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)))

    def _lookup(self, session: Session, digest: str) -> TokenGrant | None:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        now = utcnow()
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return TokenGrant(row.id, row.owner, row.kind, tuple(row.scopes), row.job_id)

    async def resolve(self, token: str) -> TokenGrant | None:
        """The grant behind a token, or None when it is unknown, expired or revoked."""
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and hit[0] > now:
            return hit[1]
        grant = await self.db.run(self._lookup, digest)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, grant)
        return grant

    def revoke(self, token_id: str, owner: str | None = None) -> None:
        """Revoke a token by id (optionally only if ``owner`` owns it)."""

        def _revoke(session: Session) -> None:
            stmt = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            if owner is not None:
                stmt = stmt.where(ApiToken.owner == owner)
            if session.execute(stmt.values(revoked_at=utcnow())).rowcount == 0:
                raise NotFound(f"No active token {token_id!r}.")

        self.db.call(_revoke, write=True)
        with self._lock:
            self._cache.clear()

    def list(self, owner: str | None = None) -> list[dict]:
        """Active tokens (without secrets), optionally for one owner."""

        def _list(session: Session) -> list[dict]:
            stmt = select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.created_at)
            if owner:
                stmt = stmt.where(ApiToken.owner == owner)
            return [
                {"id": t.id, "owner": t.owner, "name": t.name, "kind": t.kind, "scopes": list(t.scopes), "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat() if t.expires_at else None}
                for t in session.scalars(stmt)
            ]

        return self.db.call(_list)
