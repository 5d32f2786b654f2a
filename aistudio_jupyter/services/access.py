"""The one ownership rule, applied to every query a service makes.

A principal reads their own rows, their teams' ``team`` rows and ``public`` rows; they write
their own rows and, as a team editor, that team's shared rows. A row they cannot read answers
404 exactly like a missing one, so ids never leak; a row they can read but not change answers
403.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from ..errors import Forbidden, InvalidInput, NotFound
from ..identity import Principal

R = TypeVar("R")


def readable(orm, who: Principal):
    """SQL condition: rows ``who`` may see."""
    clauses = [orm.owner == who.username, orm.visibility == "public"]
    if who.teams:
        clauses.append(and_(orm.visibility == "team", orm.team.in_(who.teams)))
    return or_(*clauses)


def writable(orm, who: Principal):
    """SQL condition: rows ``who`` may change or delete."""
    shared = (
        and_(orm.visibility.in_(("team", "public")), orm.team.in_(who.editor_teams)) if who.editor_teams else false()
    )
    return or_(orm.owner == who.username, shared)


def can_write(row, who: Principal) -> bool:
    return row.owner == who.username or (row.visibility in ("team", "public") and who.edits_team(row.team))


def load(session: Session, orm: type[R], who: Principal, id: str, *, write: bool = False, kind: str = "resource") -> R:
    """Fetch one row by id for reading or writing, or raise NotFound / Forbidden."""
    stmt = select(orm).where(orm.id == id, readable(orm, who))
    if write:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"No {kind} with id {id!r}.", {"id": id})
    if write and not can_write(row, who):
        raise Forbidden(f"You can read this {kind} but not change it.", {"id": id})
    return row


def check_sharing(who: Principal, visibility: str, team: str | None) -> None:
    """A row may only be shared with a team its owner belongs to."""
    if visibility == "team" and not team:
        raise InvalidInput("visibility 'team' needs a team.", {"field": "team"})
    if team is not None and not who.in_team(team):
        raise InvalidInput(f"You are not a member of team {team!r}.", {"field": "team", "teams": list(who.teams)})
