"""The Python client: ``import aistudio_jupyter as ais; ais.datasets.list()``.

Inside a kernel started by a Jupyter server with AI Studio, the server has put the API URL and
a scoped token in the kernel's environment (``AISTUDIO_URL``, ``AISTUDIO_TOKEN``), so nothing
needs pasting. Elsewhere, call ``ais.client(url=..., token=...)`` once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx

ID_PREFIXES = ("ds_", "mdl_", "job_", "agt_", "dep_")


class APIError(Exception):
    """An error answered by the AI Studio API, with its envelope's code and details."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None, request_id: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details, self.request_id = status, code, message, details or {}, request_id


class Record(dict):
    """A resource as the API returned it, with attribute access (``ds.name``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        label = self.get("name") or self.get("username") or ""
        return f"<{self.get('id', 'record')} {label!r}>" if "id" in self else f"Record({dict.__repr__(self)})"


class Resources:
    """One collection of the API: ``list``, ``get``, ``create``, ``update``, ``delete``."""

    def __init__(self, client: Client, path: str, *, writable: bool = True):
        self._client, self._path, self._writable = client, path, writable

    def pages(self, page_size: int = 200, **filters: Any) -> Iterator[list[Record]]:
        """Yield pages until the collection is exhausted."""
        params = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = page_size
        while True:
            page = self._client.request("GET", f"/{self._path}", params=params)
            yield [Record(item) for item in page["items"]]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def list(self, limit: int | None = None, **filters: Any) -> list[Record]:
        """Everything visible (or the first ``limit``), filtered by owner, q, status, visibility, team, sort."""
        out: list[Record] = []
        for page in self.pages(page_size=min(limit or 200, 200), **filters):
            out.extend(page)
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def get(self, id_or_name: str) -> Record:
        """By id, or by exact name (your own first)."""
        if id_or_name.startswith(ID_PREFIXES):
            return Record(self._client.request("GET", f"/{self._path}/{id_or_name}"))
        matches = [r for r in self.list(q=id_or_name) if r.get("name") == id_or_name]
        if not matches:
            raise APIError(404, "not_found", f"No {self._path[:-1]} named {id_or_name!r} is visible to you.")
        me = self._client.me()["username"]
        matches.sort(key=lambda r: r["owner"] != me)
        return matches[0]

    def create(self, **fields: Any) -> Record:
        return Record(self._client.request("POST", f"/{self._path}", json=fields))

    def update(self, id: str, **fields: Any) -> Record:
        return Record(self._client.request("PATCH", f"/{self._path}/{id}", json=fields))

    def delete(self, id: str) -> None:
        self._client.request("DELETE", f"/{self._path}/{id}")

    def __repr__(self) -> str:
        return f"<ais.{self._path}>"


class Client:
    """A connection to one AI Studio server."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0, verify: bool | str | None = None):
        url = url or os.environ.get("AISTUDIO_URL")
        token = token or os.environ.get("AISTUDIO_TOKEN")
        if not url:
            raise RuntimeError(
                "AI Studio does not know its server: this is not a kernel started by a Jupyter server with AI Studio. "
                "Call ais.client(url='http://host:8888/aistudio/api', token='…') first."
            )
        self.url = url.rstrip("/")
        if verify is None:
            verify = os.environ.get("AISTUDIO_CA_FILE") or True
        headers = {"Authorization": f"Bearer {token}"} if token and token.startswith("aist_") else {}
        if token and not headers:
            headers["Authorization"] = f"token {token}"  # a Jupyter server token
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=verify)
        self.datasets = Resources(self, "datasets")
        self.models = Resources(self, "models")
        self.jobs = Resources(self, "jobs", writable=False)
        self.agents = Resources(self, "agents")
        self.deployments = Resources(self, "deployments")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
            except Exception:
                raise APIError(response.status_code, "http_error", response.text[:500]) from None
            raise APIError(response.status_code, err.get("code", "error"), err.get("message", ""), err.get("details"), err.get("request_id"))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def me(self) -> Record:
        return Record(self.request("GET", "/me"))

    def health(self) -> Record:
        return Record(self.request("GET", "/health"))

    def close(self) -> None:
        self._http.close()


_default: Client | None = None
_lock = threading.Lock()


def client(url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
    """The default client; with arguments, (re)configure it."""
    global _default
    with _lock:
        if url is not None or token is not None or kwargs or _default is None:
            _default = Client(url, token, **kwargs)
        return _default


class _Lazy:
    """``ais.datasets`` etc.: resolved on first use, so importing never needs a server."""

    def __init__(self, attr: str):
        self._attr = attr

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(client(), self._attr), name)

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
    return client().health()
