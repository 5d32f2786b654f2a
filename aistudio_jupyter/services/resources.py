"""CRUD with ownership for one owned resource; each resource service specialises it.

Every method takes the principal first, runs in one transaction through ``Database.run`` and
returns response models built inside the session, so ORM rows never leave the store layer.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Integer, bindparam, func, literal_column, or_, select, union_all
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from traitlets import Any as AnyTrait
from traitlets.config import LoggingConfigurable

from ..errors import Conflict, InvalidInput
from ..identity import Principal
from ..schemas.common import ListQuery, Page
from ..store.session import Database
from ..store.types import utcnow
from . import access, audit, pagination
from .ids import new_id
from .owner_events import announce

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
    #: the values ``status`` can take, so a typo answers 422 instead of an empty list
    statuses: ClassVar[frozenset[str]] = frozenset()
    #: the event type creates, updates and deletes are announced as on ``user:<owner>``
    #: (``owner_events``); None: not announced
    event_type: ClassVar[str | None] = None

    db = AnyTrait(help="The Database this service reads and writes.")
    events = AnyTrait(None, allow_none=True, help="The EventService changes are announced through (see event_type).")

    def _db(self) -> Database:
        return self.db

    # -- reads -----------------------------------------------------------------------------

    async def list(self, who: Principal, query: ListQuery) -> Page:
        """One page of the rows ``who`` can see, filtered and keyset-paginated."""
        return await self._db().run(self._list, who, query)

    def _list(self, session: Session, who: Principal, query: ListQuery) -> Page:
        orm = self.orm
        params: dict[str, Any] = {"me": who.username, "n": query.limit + 1}
        for name in ("owner", "visibility", "team", "status"):
            if getattr(query, name):
                params[name] = getattr(query, name)
        if query.q:
            if not hasattr(orm, "name"):
                raise InvalidInput(f"{self.kind}s cannot be searched by name.", {"field": "q"})
            escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["q"] = f"%{escaped.lower()}%"
        if query.status and "status" not in self.filters:
            raise InvalidInput(f"{self.kind}s have no status to filter on.", {"field": "status"})
        if query.status and query.status not in self.statuses:
            raise InvalidInput(f"status must be one of {', '.join(sorted(self.statuses))}.", {"field": "status"})
        field = query.sort.lstrip("-")
        if not hasattr(orm, field):
            raise InvalidInput(f"{self.kind}s cannot be sorted by {field}.", {"field": "sort"})
        if query.cursor:
            params["after"], params["after_id"] = pagination.decode_for(query.cursor, getattr(orm, field))
        # the ways of seeing a row that the filters leave in play: others' public rows, and
        # others' shared rows of each of the caller's teams
        public = query.visibility in (None, "public")
        teams = [t for t in who.teams if query.team in (None, t)] if query.visibility in (None, "team") else []
        if len(teams) > access.MAX_TEAM_BRANCHES:
            params["teams"], team_branches = teams, -1
        else:
            params.update((f"team_{i}", t) for i, t in enumerate(teams))
            team_branches = len(teams)
        shape = (query.sort, tuple(sorted(params)), public, team_branches)
        stmt = self._list_statement(shape, query)
        columns = self._plain_columns()
        # plain columns skip the ORM's execution layer, which would only hand the rows through
        result = session.connection().execute(stmt, params) if columns else session.scalars(stmt, params)
        rows = result.all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = pagination.encode_cursor(getattr(rows[-1], field), rows[-1].id) if more else None
        if columns:
            # pydantic validates plain dicts several times faster than it reads attributes off rows
            keys = tuple(result.keys())
            return self._page_model().model_validate({"items": [dict(zip(keys, r)) for r in rows], "next_cursor": next_cursor})
        return self._page_model()(items=[self.to_out(session, r) for r in rows], next_cursor=next_cursor)

    def _list_statement(self, shape: tuple, query: ListQuery):
        """The list query for one shape of request, its values left as bound parameters.

        Building it (and SQLAlchemy's cache key and result map for a fresh statement) costs
        about as much as running it, so each shape is built once; a service that overrides
        ``extra_filters`` may read values from ``query``, so its statements are not kept.
        """
        cache = self.__class__.__dict__.get("_statements")
        if cache is None:
            cache = self.__class__._statements = {}
        stmt = cache.get(shape)
        if stmt is not None:
            return stmt
        sort, names, public, team_branches = shape
        orm = self.orm
        column, desc = getattr(orm, sort.lstrip("-")), sort.startswith("-")
        columns = self._plain_columns()
        teams = bindparam("teams", expanding=True) if team_branches < 0 else [bindparam(f"team_{i}") for i in range(team_branches)]
        branches = access.readable_branches(orm, bindparam("me"), teams, public=public)
        where = []
        if "owner" in names:
            # an owner filter has its own index; one query serves it
            branches = [or_(*branches)]
            where.append(orm.owner == bindparam("owner"))
        if "visibility" in names:
            where.append(orm.visibility == bindparam("visibility"))
        if "team" in names:
            where.append(orm.team == bindparam("team"))
        if "q" in names:
            where.append(func.lower(orm.name).like(bindparam("q"), escape="\\"))
        if "status" in names:
            where.append(getattr(orm, self.filters["status"]) == bindparam("status"))
        if "after" in names:
            where.append(pagination.after(column, orm.id, desc, bindparam("after"), bindparam("after_id")))
        limit = bindparam("n", type_=Integer)
        pages = []
        for branch in branches:
            stmt = self.extra_filters(select(*(columns or [orm])).where(branch, *where), query)
            pages.append(stmt.order_by(*pagination.order_by(column, orm.id, desc)).limit(limit))
        if len(pages) == 1:
            stmt = pages[0]
        else:
            # One ordered, limited query per disjoint way of seeing a row, merged: each walks
            # its own index for at most limit + 1 rows, where the OR of them has to collect
            # and sort every readable row (SQLite always plans it so). Each branch sits in a
            # subquery because SQLite refuses ORDER BY / LIMIT on union members.
            order = [literal_column(c).desc() if desc else literal_column(c) for c in (column.key, "id")]
            stmt = union_all(*(select(page.subquery()) for page in pages)).order_by(*order).limit(limit)
            if not columns:
                stmt = select(orm).from_statement(stmt)
        if type(self).extra_filters is ResourceService.extra_filters:
            if len(cache) > 1000:  # shapes are few; this only bounds a pathological mix
                cache.clear()
            cache[shape] = stmt
        return stmt

    @classmethod
    def _plain_columns(cls) -> list | None:
        """The columns a list item is built from, when plain column tuples are enough.

        Loading ORM objects costs several times what tuples do, and that is much of a list
        request; a service whose ``to_out`` is overridden, or whose output reads anything but
        columns (a property, a relationship), gets ORM objects.
        """
        if "_plain" not in cls.__dict__:
            attrs = {p.key: getattr(cls.orm, p.key) for p in sa_inspect(cls.orm).column_attrs}
            fields = {f.validation_alias if isinstance(f.validation_alias, str) else f.alias or name for name, f in cls.out.model_fields.items()}
            plain = cls.to_out is ResourceService.to_out and fields <= attrs.keys()
            cls._plain = [column.label(key) for key, column in attrs.items()] if plain else None
        return cls._plain

    @classmethod
    def _page_model(cls) -> type[Page]:
        # pydantic holds parametrised generics weakly: without this reference every garbage
        # collection drops Page[Out], and rebuilding it costs more than the query
        if "_page" not in cls.__dict__:
            cls._page = Page[cls.out]
        return cls._page

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
        now = utcnow()
        row = self.orm(id=new_id(self.id_prefix), owner=who.username, created_at=now, updated_at=now, **values)
        session.add(row)
        session.flush()
        audit.record(session, who, "create", self.kind, row.id, {"name": getattr(row, "name", None)})
        out = self.to_out(session, row)
        self.announce(session, row.owner, "created", row.id, out)
        return out

    def values_for_create(self, session: Session, who: Principal, body: BaseModel) -> dict[str, Any]:
        return body.model_dump()

    async def update(self, who: Principal, id: str, body: BaseModel) -> Out:
        """Change the fields present in ``body``; absent fields keep their values."""
        return await self._db().run(self._update, who, id, body, write=True)

    def _update(self, session: Session, who: Principal, id: str, body: BaseModel) -> Out:
        row = access.load(session, self.orm, who, id, write=True, kind=self.kind)
        changes = self.values_for_update(session, who, row, body)
        # an explicit JSON null on a required field means "unset", which it cannot be
        attrs = sa_inspect(self.orm).column_attrs
        for key, value in changes.items():
            if value is None and key in attrs and not attrs[key].columns[0].nullable:
                raise InvalidInput(f"{key} cannot be null.", {"field": key})
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
        out = self.to_out(session, row)
        self.announce(session, row.owner, "updated", row.id, out)
        return out

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
        self.announce(session, row.owner, "deleted", row.id)

    def announce(self, session: Session, owner: str, action: str, id: str, record: BaseModel | None = None, **summary: Any) -> None:
        """Tell ``owner`` of a change to one of their rows, in this transaction (``owner_events``)."""
        if self.event_type is not None:
            announce(self.events, session, owner, self.event_type, action, id, record, **summary)

    def before_delete(self, session: Session, who: Principal, row) -> None:
        """Refuse deletes that would break references (raise Conflict)."""

    def _check_name_free(self, session: Session, owner: str, name: str) -> None:
        taken = session.scalar(select(self.orm.id).where(self.orm.owner == owner, self.orm.name == name))
        if taken:
            raise Conflict(f"A {self.kind} named {name!r} already exists.", {"field": "name", "id": taken})
