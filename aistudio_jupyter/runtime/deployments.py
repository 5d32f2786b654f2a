"""``ais.deployments``: a model version behind an endpoint, from Python.

``dep = ais.deployments.create("iris-mlp")`` starts replicas of the model's latest version and
(unless ``wait=False``) returns once they answer; ``dep.predict(frame)`` sends rows to
``POST /deployments/{id}/predict`` and gives back one prediction per row, the same values
``ais.models.load(...).predict(frame)`` computes in the kernel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from .client import Record, Resources, _id_of

if TYPE_CHECKING:
    from .client import Client
    from .events import EventStream

#: a 503 (no replica ready yet, one died mid-request) is retried this many times at most
PREDICT_RETRIES = 4
#: longest Retry-After honoured between two tries, so a call never sleeps unboundedly
MAX_RETRY_AFTER = 5.0


class Deployment(Record):
    """A deployment's record, with ``predict``, ``status``, ``wait``, ``stop``/``start``, ``update``, ``logs``."""

    def __init__(self, deployments: Deployments | None, data: dict):
        super().__init__(data)
        # an attribute, not a key: the record stays exactly what the API returned
        object.__setattr__(self, "_deployments", deployments)

    def _collection(self) -> Deployments:
        if self._deployments is None:  # unpickled: bind to the default client
            from .client import client

            object.__setattr__(self, "_deployments", client().deployments)
        return self._deployments

    @property
    def _client(self) -> Client:
        return self._collection()._client

    def __reduce__(self):
        # the connection does not travel; the record does
        return (_restore, (dict(self),))

    def _replace(self, fresh: dict) -> Deployment:
        # dict.update: ``update`` on this class is the deployment's PATCH
        self.clear()
        dict.update(self, fresh)
        return self

    def refresh(self) -> Deployment:
        """Read the record again from the server (state, ready replicas, each replica's status)."""
        return self._replace(self._client.request("GET", f"/deployments/{self['id']}"))

    @property
    def status(self) -> str:
        """The state now, read from the server: pending, loading, ready, stopped or failed."""
        return self.refresh()["state"]

    # -- predictions ---------------------------------------------------------------------

    def predict(self, data: Any, *, full: bool = False, timeout: float = 60.0, retries: int = PREDICT_RETRIES) -> Any:
        """Predictions for ``data``, one per row.

        A DataFrame or a list of dicts is sent as records (columns by name); a numpy array,
        torch tensor or nested list as inputs (a batch of tensors). Class labels or values come
        back as a list; raw tensor outputs of an array's rows as a numpy array. ``full=True``
        gives the whole answer (``predictions``, ``model_version``, ``deployment_id``).
        A 503 (no replica ready, one restarting) is retried after its ``Retry-After``.
        """
        body, as_array = _payload(data)
        answer = Record(self._post_predict(json.dumps(body, allow_nan=False).encode(), timeout, retries))
        if full:
            return answer
        predictions = answer["predictions"]
        if as_array and predictions and all(isinstance(p, list) for p in predictions):
            import numpy as np

            return np.asarray(predictions)
        return predictions

    def _post_predict(self, content: bytes, timeout: float, retries: int) -> dict:
        api = self._client
        path = f"/deployments/{self['id']}/predict"
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            left = max(0.1, deadline - time.monotonic())
            try:
                response = api.http.post(path, content=content, headers={"Content-Type": "application/json"}, timeout=left)
            except httpx.TimeoutException as exc:
                raise TimeoutError(f"Deployment {self['id']} did not answer in {timeout:.0f} s.") from exc
            except httpx.TransportError as exc:
                raise ConnectionError(f"Cannot reach AI Studio at {api.url}: {exc}") from exc
            if response.status_code < 400:
                return response.json()
            error = api.error(response)
            pause = _retry_after(response)
            if response.status_code != 503 or attempt >= retries or time.monotonic() + pause > deadline:
                raise error
            attempt += 1
            time.sleep(pause)

    # -- lifecycle -----------------------------------------------------------------------

    def wait(self, state: str = "ready", timeout: float = 300.0, poll: float = 0.2) -> Deployment:
        """Block until the deployment is in ``state`` (for ready: every replica ready); failed raises."""
        return self._wait_for(lambda d: _settled(d, state), f"{state}", timeout, poll, fail_on_failed=state != "failed")

    def _wait_for(self, done: Callable[[Deployment], bool], what: str, timeout: float, poll: float, fail_on_failed: bool = True) -> Deployment:
        deadline = time.monotonic() + timeout
        delay = min(poll, 0.05)
        while True:
            self.refresh()
            if done(self):
                return self
            if fail_on_failed and self["state"] == "failed":
                raise RuntimeError(f"Deployment {self['id']} failed: {self.get('status_message') or _last_error(self) or 'no reason given'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Deployment {self['id']} is still {self['state']} ({self.get('ready_replicas', '?')}/{self['replicas']} replicas ready), "
                                   f"not {what}, after {timeout:.0f} s.")
            time.sleep(delay)
            delay = min(poll, delay * 2)

    def stop(self, wait: bool = True, timeout: float = 60.0) -> Deployment:
        """Stop every replica (predict then answers 409 until ``start``)."""
        self._replace(self._client.request("POST", f"/deployments/{self['id']}/stop"))
        return self.wait("stopped", timeout) if wait else self

    def start(self, wait: bool = True, timeout: float = 300.0) -> Deployment:
        """Start a stopped (or failed) deployment's replicas again."""
        self._replace(self._client.request("POST", f"/deployments/{self['id']}/start"))
        return self.wait("ready", timeout) if wait else self

    def update(self, version: int | None = None, replicas: int | None = None, *, wait: bool = True, timeout: float = 300.0, **fields: Any) -> Deployment:
        """Roll to another model ``version`` (replica by replica, no failed requests) and/or scale to ``replicas``.

        Other keyword arguments are fields of the deployment (``name``, ``description``,
        ``batching``, ``visibility``…). With ``wait``, returns once every replica serves the version.
        """
        if version is not None:
            fields["model_version"] = int(version)
        if replicas is not None:
            fields["replicas"] = int(replicas)
        self._replace(self._client.request("PATCH", f"/deployments/{self['id']}", json=fields))
        if not wait or self.get("desired_state") == "stopped" or self["state"] == "stopped":
            return self
        target = self.get("model_version")
        return self._wait_for(lambda d: _settled(d, "ready") and _all_on(d, target), f"ready on version {target}", timeout, 0.2)

    def delete(self) -> None:
        """Stop the replicas and delete the deployment."""
        self._client.request("DELETE", f"/deployments/{self['id']}")

    def logs(self, replica: int | None = None, tail: int = 200) -> str:
        """The last ``tail`` lines the replicas (or replica number ``replica``) wrote."""
        params: dict[str, Any] = {"tail": tail}
        if replica is not None:
            params["replica"] = replica
        answer = self._client.request("GET", f"/deployments/{self['id']}/logs", params=params)
        return _log_text(answer)

    def events(self, since: int | None = None, **options: Any) -> EventStream:
        """Live ``status`` and ``replica`` events of this deployment (``since=0``: from its first)."""
        from .events import subscribe

        return subscribe(f"deployment:{self['id']}", since, api=self._client, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """A live DeploymentCard in a kernel with widgets; the plain repr anywhere else (never raises)."""

        def card():
            from ..widgets.cards import DeploymentCard

            return DeploymentCard(self, client=self._client)

        try:
            from ..widgets.base import repr_bundle
        except Exception:  # no anywidget here: text it is
            return {"text/plain": repr(self)}
        return repr_bundle(card, repr(self), **kwargs)

    def __repr__(self) -> str:
        if "id" not in self:
            return super().__repr__()
        version = self.get("model_version")
        ready = f" {self.get('ready_replicas')}/{self.get('replicas')}" if "ready_replicas" in self else ""
        return f"<{self['id']} {self.get('name', '')!r} {self.get('model_id')} v{version} {self.get('state')}{ready}>"


class Deployments(Resources):
    """``ais.deployments``: list, get, ``create`` from a model, and the ``Deployment`` handles."""

    def __init__(self, client: Client):
        super().__init__(client, "deployments")

    def _record(self, data: dict) -> Deployment:
        return Deployment(self, data)

    def create(self, model: str | dict, version: int | str | None = None, *, name: str | None = None, replicas: int = 1, gpus: int = 0, cpus: float = 1,
               memory_mb: int | None = None, max_batch_size: int = 32, max_wait_ms: float = 5, wait: bool = True, timeout: float = 300.0,
               **fields: Any) -> Deployment:
        """Deploy a model version: ``model`` by name, id, model record or version record.

        ``version``: a number, ``"production"`` / ``"staging"`` (the newest version in that
        stage, pinned now), or left out for the latest.

        ``name`` defaults to the model's. ``max_batch_size``/``max_wait_ms`` set dynamic
        batching (requests arriving within ``max_wait_ms`` share a forward pass). Other keyword
        arguments are fields of the create body (``visibility``, ``team``, ``description``).
        With ``wait``, returns once every replica is ready (a failed start raises).
        """
        model_id, model_name, pinned = self._model(model)
        version = version if version is not None else pinned
        resources: dict[str, Any] = {"cpus": cpus, "gpus": gpus}
        if memory_mb is not None:
            resources["memory_mb"] = memory_mb
        body: dict[str, Any] = {
            "name": name or model_name,
            "model_id": model_id,
            "replicas": replicas,
            "resources": resources,
            "batching": {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms},
            **fields,
        }
        if isinstance(version, str) and not version.isdigit():
            version = self._client.models.version(model_id, version)["version"]
        if version is not None:
            body["model_version"] = int(version)
        deployment = self._record(self._client.request("POST", "/deployments", json=body))
        return deployment.wait("ready", timeout) if wait else deployment

    def _model(self, model: str | dict) -> tuple[str, str, int | None]:
        """(model id, model name, version) of a name, an id, a model record or a version record."""
        models = self._client.models
        if isinstance(model, Mapping) and "model_id" in model and "version" in model:
            record = models.get(model["model_id"])
            return record["id"], record["name"], model["version"]
        if isinstance(model, Mapping) and "name" in model:
            return model["id"], model["name"], None
        record = models.get(_id_of(model))
        return record["id"], record["name"], None


def _payload(data: Any) -> tuple[dict[str, Any], bool]:
    """The predict body for ``data``, and whether it came as an array (numpy, torch)."""
    if hasattr(data, "to_json") and hasattr(data, "columns"):  # a pandas DataFrame
        # through JSON: numpy scalars, NaN (→ null) and timestamps come out as the API reads them
        return {"records": json.loads(data.to_json(orient="records", date_format="iso"))}, False
    if isinstance(data, Mapping):
        return {"records": [dict(data)]}, False
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor
        return {"inputs": data.detach().cpu().float().numpy().tolist()}, True
    if hasattr(data, "tolist") and hasattr(data, "shape"):  # a numpy array
        return {"inputs": data.tolist()}, True
    if isinstance(data, (list, tuple)):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            return {"records": [dict(r) for r in rows]}, False
        return {"inputs": [r.tolist() if hasattr(r, "tolist") else r for r in rows]}, False
    raise TypeError(f"predict takes a DataFrame, a list of dicts, a numpy array, a torch tensor or a nested list, not {type(data).__name__}.")


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.05), MAX_RETRY_AFTER)


def _settled(d: Mapping, state: str) -> bool:
    if d["state"] != state:
        return False
    if state != "ready":
        return True
    # "ready" can mean "serving on some replicas"; wait for all of them
    return d.get("ready_replicas", d["replicas"]) >= d["replicas"]


def _all_on(d: Mapping, version: int | None) -> bool:
    replicas = d.get("replica_status") or []
    return version is None or all(r.get("model_version") == version for r in replicas if r.get("state") != "stopped")


def _last_error(d: Mapping) -> str | None:
    errors = [r.get("last_error") for r in d.get("replica_status") or [] if r.get("last_error")]
    return errors[-1] if errors else None


def _log_text(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, Mapping):
        for key in ("lines", "items", "text", "logs"):
            if key in answer:
                value = answer[key]
                return value if isinstance(value, str) else "\n".join(_log_line(v) for v in value)
    return json.dumps(answer)


def _log_line(entry: Any) -> str:
    if isinstance(entry, Mapping):
        prefix = f"[{entry['replica']}] " if "replica" in entry else ""
        return prefix + str(entry.get("line", entry.get("text", entry.get("message", ""))))
    return str(entry)


def _restore(data: dict) -> Deployment:
    return Deployment(None, data)
