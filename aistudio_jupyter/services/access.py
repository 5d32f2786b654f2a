"""The one ownership rule, applied to every query a service makes.

A principal reads their own rows, their teams' ``team`` rows and ``public`` rows; they write
their own rows and, as a team editor, that team's shared rows. A row they cannot read answers
404 exactly like a missing one, so ids never leak; a row they can read but not change answers
403.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import BindParameter, and_, false, literal, or_, select
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


#: past this many teams, one branch reads them all (``team IN …``) rather than one each
MAX_TEAM_BRANCHES = 8


def readable_branches(orm, username, teams, *, public: bool = True) -> list:
    """``readable`` split into disjoint SQL conditions: own rows, others' public rows, others'
    ``team`` rows of each team in ``teams`` (a list of names, one branch each, or one expanding
    bound parameter, one ``IN`` branch). Values may be bound parameters, so that a list
    statement is built once and reused. Each branch has an index in (created_at, id) order
    (store/orm.py): a list takes the first page of each and merges them, rather than collect
    and sort every readable row.
    """
    others = orm.owner != username
    # the constants are written into the SQL, not bound: PostgreSQL's generic plan for a
    # prepared statement cannot see how rare 'public' rows are in a bound parameter
    shared = {v: orm.visibility == literal(v, literal_execute=True) for v in ("public", "team")}
    branches = [orm.owner == username]
    if public:
        branches.append(and_(shared["public"], others))
    if isinstance(teams, BindParameter):
        branches.append(and_(shared["team"], orm.team.in_(teams), others))
    else:
        branches.extend(and_(shared["team"], orm.team == team, others) for team in teams)
    return branches


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
