"""The Python client: ``import aistudio_jupyter as ais; ais.datasets.list()``.

Inside a kernel (or terminal) started by a Jupyter server with AI Studio, the server has put
the API URL and a scoped token in the environment (``AISTUDIO_URL``, ``AISTUDIO_TOKEN``), so
nothing needs pasting. Elsewhere, call ``ais.client(url=..., token=...)`` once.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx

#: collection → id prefix; ids are the prefix, "_" and 25 lower-case base32 characters
ID_PREFIXES = {"datasets": "ds", "models": "mdl", "jobs": "job", "agents": "agt", "deployments": "dep"}
_MAX_PAGE = 500


class APIError(Exception):
    """An error answered by the AI Studio API, with its envelope's code and details."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None, request_id: str | None = None):
        super().__init__(f"{status} {code}: {message}" + (f" (request id {request_id})" if request_id else ""))
        self.status, self.code, self.message, self.details, self.request_id = status, code, message, details or {}, request_id


class Record(dict):
    """A resource as the API returned it, with attribute access (``ds.name``).

    It is a plain ``dict`` underneath: ``json.dumps(ds)``, ``pandas.DataFrame(ais.datasets.list())``
    and ``ais.datasets.update(ds, ...)`` all take it as it is.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        # nested objects read the same way: ``ais.me().quotas.gpus_per_job``, ``version.files[0].path``
        if type(value) is dict:
            return Record(value)
        if type(value) is list and value and all(type(v) is dict for v in value):
            return [Record(v) for v in value]
        return value

    def __dir__(self) -> list[str]:
        # tab completion in Jupyter offers the fields
        return sorted(set(super().__dir__()) | {k for k in self if k.isidentifier()})

    def __repr__(self) -> str:
        if "id" not in self:
            return f"Record({dict.__repr__(self)})"
        label = self.get("name") or self.get("username") or ""
        return f"<{self['id']} {label!r}>" if label else f"<{self['id']}>"


def _id_of(value: str | dict) -> str:
    return value["id"] if isinstance(value, dict) else value


class Resources:
    """One collection of the API: ``list``, ``pages``, ``get``, ``create``, ``update``, ``delete``."""

    def __init__(self, client: Client, path: str, *, writable: bool = True):
        self._client, self._path, self._writable = client, path, writable
        self._id = re.compile(rf"^{ID_PREFIXES[path]}_[0-9a-z]{{25}}$")

    def pages(self, page_size: int = 200, **filters: Any) -> Iterator[list[Record]]:
        """Yield pages until the collection is exhausted (filters as in ``list``)."""
        params = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = page_size
        while True:
            page = self._client.request("GET", f"/{self._path}", params=params)
            yield [self._record(item) for item in page["items"]]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def list(self, limit: int | None = None, **filters: Any) -> list[Record]:
        """Everything visible (or the first ``limit``), filtered by owner, q, status, visibility, team, sort."""
        out: list[Record] = []
        for page in self.pages(page_size=min(limit or 200, _MAX_PAGE), **filters):
            out.extend(page)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def get(self, id_or_name: str) -> Record:
        """By id, or by exact name (your own first, then the oldest)."""
        if self._id.match(id_or_name):
            return self._record(self._client.request("GET", f"/{self._path}/{id_or_name}"))
        matches = [r for r in self.list(q=id_or_name, sort="created_at") if r.get("name") == id_or_name]
        if not matches:
            raise APIError(404, "not_found", f"No {self._path[:-1]} named {id_or_name!r} is visible to you.")
        if len(matches) > 1:
            me = self._client.me()["username"]
            matches.sort(key=lambda r: r["owner"] != me)  # stable: oldest first among equals
        return matches[0]

    def create(self, **fields: Any) -> Record:
        """Create one; the fields are those of the API's create body."""
        self._check_writable("create")
        return self._record(self._client.request("POST", f"/{self._path}", json=fields))

    def update(self, record: str | dict, **fields: Any) -> Record:
        """Change some fields of a record (given by id or as returned by ``get``/``list``)."""
        self._check_writable("update")
        return self._record(self._client.request("PATCH", f"/{self._path}/{_id_of(record)}", json=fields))

    def delete(self, record: str | dict) -> None:
        """Delete a record (given by id or as returned by ``get``/``list``)."""
        self._check_writable("delete")
        self._client.request("DELETE", f"/{self._path}/{_id_of(record)}")

    def _record(self, data: dict) -> Record:
        # collections with richer handles (ais.datasets) answer their own Record subclass
        return Record(data)

    def _check_writable(self, verb: str) -> None:
        if not self._writable:
            raise TypeError(f"ais.{self._path} is read-only: {self._path} cannot be {verb}d through it.")

    def __repr__(self) -> str:
        return f"<ais.{self._path} at {self._client.url}>"


class Client:
    """A connection to one AI Studio server."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0, verify: bool | str | None = None, **http_options: Any):
        """``http_options`` go to ``httpx.Client`` as they are (``proxy``, ``event_hooks``, ``limits``…)."""
        from .datasets import Datasets  # it builds on Resources and Record, defined above
        from .models import Models
        from .deployments import Deployments
        from .training import Jobs
        url = url or os.environ.get("AISTUDIO_URL")
        token = token or os.environ.get("AISTUDIO_TOKEN")
        if not url:
            raise RuntimeError(
                "AI Studio does not know its server: AISTUDIO_URL is not set, so this is not a kernel started by a Jupyter "
                "server with AI Studio. Call ais.client(url='http://host:8888/aistudio/api', token='…') first."
            )
        self.url = url.rstrip("/")
        self._scoped = bool(token and token.startswith("aist_"))
        if verify is None:
            verify = os.environ.get("AISTUDIO_CA_FILE") or True
        # AI Studio tokens are bearer tokens; anything else is a Jupyter token for Jupyter's own auth
        headers = {"Authorization": f"Bearer {token}" if self._scoped else f"token {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify, **http_options)
        self.datasets = Datasets(self)
        self.models = Models(self)
        self.jobs = Jobs(self, "jobs", writable=False)
        self.agents = Resources(self, "agents")
        self.deployments = Deployments(self)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; a 4xx/5xx answer raises ``APIError``, an unreachable server ``ConnectionError``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionError(f"Cannot reach AI Studio at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise self.error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @property
    def http(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (base URL and auth set), for streaming and the tus uploads."""
        return self._http

    def error(self, response: httpx.Response) -> APIError:
        """The ``APIError`` for a 4xx/5xx answer, from its JSON envelope (its text otherwise)."""
        request_id = response.headers.get("X-Request-Id")
        try:
            err = response.json()["error"]
        except Exception:
            return APIError(response.status_code, "http_error", response.text[:500], request_id=request_id)
        code, message = err.get("code", "error"), err.get("message", "")
        if code == "unauthenticated" and self._scoped:
            message += " The AI Studio token was refused: it is unknown, expired or revoked (the server revokes its kernels' token when it stops)."
        return APIError(response.status_code, code, message, err.get("details"), err.get("request_id") or request_id)

    def me(self) -> Record:
        """Who you are, your tier, quotas and usage."""
        return Record(self.request("GET", "/me"))

    def health(self) -> Record:
        """The server's and its database's health."""
        return Record(self.request("GET", "/health"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ais.Client {self.url}>"


_default: Client | None = None
_lock = threading.Lock()


def client(url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
    """The default client behind ``ais.datasets`` etc.; with arguments, (re)configure it."""
    global _default
    with _lock:
        if url is not None or token is not None or kwargs or _default is None:
            previous, _default = _default, Client(url, token, **kwargs)
            if previous is not None:
                previous.close()
        return _default


class _Lazy:
    """``ais.datasets`` etc.: resolved on first use, so importing never needs a server."""

    def __init__(self, attr: str):
        self._attr = attr

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(client(), self._attr), name)

    def __dir__(self) -> list[str]:
        # tab completion without connecting: the collection's class is known in advance
        from .datasets import Datasets
        from .deployments import Deployments
        from .models import Models
        from .training import Jobs

        cls = {"datasets": Datasets, "models": Models, "deployments": Deployments, "jobs": Jobs}.get(self._attr, Resources)
        return [n for n in dir(cls) if not n.startswith("_")]

    def __repr__(self) -> str:
        return f"<ais.{self._attr}>"


datasets = _Lazy("datasets")
models = _Lazy("models")
jobs = _Lazy("jobs")
agents = _Lazy("agents")
deployments = _Lazy("deployments")


def me() -> Record:
    """Who you are, your tier, quotas and usage."""
    return client().me()


def health() -> Record:
    """The server's and its database's health."""
    return client().health()
