"""CRUD with ownership for one owned resource; each resource service specialises it.

Every method takes the principal first, runs in one transaction through ``Database.run`` and
returns response models built inside the session, so ORM rows never leave the store layer.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, InvalidInput
from ..identity import Principal
from ..schemas.common import ListQuery, Page
from ..store.session import Database
from . import access, audit, pagination
from .ids import new_id

Out = TypeVar("Out", bound=BaseModel)


class ResourceService(LoggingConfigurable, Generic[Out]):
    """List, get, create, update and delete rows of ``orm`` on behalf of a principal."""

    orm: ClassVar[type]
    out: ClassVar[type[BaseModel]]
    kind: ClassVar[str]
    id_prefix: ClassVar[str]
    #: names are unique per owner for these resources
    unique_name: ClassVar[bool] = True
    #: list filters beyond the common ones: query field → column attribute name
    filters: ClassVar[dict[str, str]] = {}

    db = AnyTrait(help="The Database this service reads and writes.")

    def _db(self) -> Database:
        return self.db

    # -- reads -----------------------------------------------------------------------------

    async def list(self, who: Principal, query: ListQuery) -> Page:
        """One page of the rows ``who`` can see, filtered and keyset-paginated."""
        return await self._db().run(self._list, who, query)

    def _list(self, session: Session, who: Principal, query: ListQuery) -> Page:
        orm = self.orm
        stmt = select(orm).where(access.readable(orm, who))
        if query.owner:
            stmt = stmt.where(orm.owner == query.owner)
        if query.visibility:
            stmt = stmt.where(orm.visibility == query.visibility)
        if query.team:
            stmt = stmt.where(orm.team == query.team)
        if query.q:
            if not hasattr(orm, "name"):
                raise InvalidInput(f"{self.kind}s cannot be searched by name.", {"field": "q"})
            escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(func.lower(orm.name).like(f"%{escaped.lower()}%", escape="\\"))
        if query.status:
            if "status" not in self.filters:
                raise InvalidInput(f"{self.kind}s have no status to filter on.", {"field": "status"})
            stmt = stmt.where(getattr(orm, self.filters["status"]) == query.status)
        stmt = self.extra_filters(stmt, query)
        field = query.sort.lstrip("-")
        if not hasattr(orm, field):
            raise InvalidInput(f"{self.kind}s cannot be sorted by {field}.", {"field": "sort"})
        column = getattr(orm, field)
        stmt = pagination.apply(stmt, column, orm.id, query.sort.startswith("-"), query.cursor, query.limit)
        rows = session.scalars(stmt).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = pagination.encode_cursor(getattr(rows[-1], field), rows[-1].id) if more else None
        return Page[self.out](items=[self.to_out(session, r) for r in rows], next_cursor=next_cursor)

    def extra_filters(self, stmt, query: ListQuery):
        return stmt

    async def get(self, who: Principal, id: str) -> Out:
        """One row ``who`` can see, or NotFound."""
        return await self._db().run(self._get, who, id)

    def _get(self, session: Session, who: Principal, id: str) -> Out:
        return self.to_out(session, access.load(session, self.orm, who, id, kind=self.kind))

    def to_out(self, session: Session, row) -> Out:
        return self.out.model_validate(row)

    # -- writes ----------------------------------------------------------------------------

    async def create(self, who: Principal, body: BaseModel) -> Out:
        """Create a row owned by ``who``."""
        return await self._db().run(self._create, who, body, write=True)

    def _create(self, session: Session, who: Principal, body: BaseModel) -> Out:
        values = self.values_for_create(session, who, body)
        access.check_sharing(who, values.get("visibility", "private"), values.get("team"))
        if self.unique_name:
            self._check_name_free(session, who.username, values["name"])
        row = self.orm(id=new_id(self.id_prefix), owner=who.username, **values)
        session.add(row)
        session.flush()
        audit.record(session, who, "create", self.kind, row.id, {"name": getattr(row, "name", None)})
        return self.to_out(session, row)

    def values_for_create(self, session: Session, who: Principal, body: BaseModel) -> dict[str, Any]:
        return body.model_dump()

    async def update(self, who: Principal, id: str, body: BaseModel) -> Out:
        """Change the fields present in ``body``; absent fields keep their values."""
        return await self._db().run(self._update, who, id, body, write=True)

    def _update(self, session: Session, who: Principal, id: str, body: BaseModel) -> Out:
        row = access.load(session, self.orm, who, id, write=True, kind=self.kind)
        changes = self.values_for_update(session, who, row, body)
        if "visibility" in changes or "team" in changes:
            if row.owner != who.username:
                raise InvalidInput(f"Only the owner can change who sees this {self.kind}.", {"field": "visibility"})
            access.check_sharing(who, changes.get("visibility", row.visibility), changes.get("team", row.team))
        if self.unique_name and changes.get("name") not in (None, row.name):
            self._check_name_free(session, row.owner, changes["name"])
        for key, value in changes.items():
            setattr(row, key, value)
        session.flush()
        audit.record(session, who, "update", self.kind, row.id, {"fields": sorted(changes)})
        return self.to_out(session, row)

    def values_for_update(self, session: Session, who: Principal, row, body: BaseModel) -> dict[str, Any]:
        return body.model_dump(exclude_unset=True)

    async def delete(self, who: Principal, id: str) -> None:
        """Delete a row ``who`` may change."""
        await self._db().run(self._delete, who, id, write=True)

    def _delete(self, session: Session, who: Principal, id: str) -> None:
        row = access.load(session, self.orm, who, id, write=True, kind=self.kind)
        self.before_delete(session, who, row)
        session.delete(row)
        audit.record(session, who, "delete", self.kind, id, {"name": getattr(row, "name", None)})

    def before_delete(self, session: Session, who: Principal, row) -> None:
        """Refuse deletes that would break references (raise Conflict)."""

    def _check_name_free(self, session: Session, owner: str, name: str) -> None:
        taken = session.scalar(select(self.orm.id).where(self.orm.owner == owner, self.orm.name == name))
        if taken:
            raise Conflict(f"A {self.kind} named {name!r} already exists.", {"field": "name", "id": taken})
