"""``ais.train(...)``: the built-in trainer from a kernel, as a job on the studio's machines.

``job = ais.train(ds, target="species", model=[...], epochs=20)`` queues the job and returns
at once; ``job.wait()`` blocks until it ends, ``job.metrics()`` reads its curves and
``job.model_version()`` the version it registered.
"""

from __future__ import annotations

import time
from typing import Any

from .client import APIError, Record, Resources, _id_of
from .client import client as default_client

TERMINAL = frozenset({"succeeded", "failed", "canceled", "lost"})
_TRAIN_FIELDS = ("validation_split", "checkpoint_every", "resume_from_job", "name", "resources", "dataset_version")


class Job(Record):
    """A job's record (``ais.jobs``), with ``wait``, ``metrics``, ``cancel`` and ``monitor``;
    in a notebook it displays as a live TrainingMonitor."""

    def _api(self):
        return default_client() if getattr(self, "_client_ref", None) is None else self._client_ref

    def refresh(self) -> Job:
        fresh = self._api().request("GET", f"/jobs/{self['id']}")
        self.clear()
        self.update(fresh)
        return self

    def wait(self, timeout: float = 3600, poll: float = 0.25, raise_on_failure: bool = True) -> Job:
        """Block until the job ends; a failed, canceled or lost job raises (unless told not to)."""
        deadline = time.monotonic() + timeout
        while self.refresh()["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Job {self['id']} is still {self['state']} after {timeout:.0f} s.")
            time.sleep(poll)
        if raise_on_failure and self["state"] != "succeeded":
            raise RuntimeError(f"Job {self['id']} ended {self['state']}: {self.get('exit_reason') or 'no reason given'}")
        return self

    def metrics(self, keys: str | list[str] | None = None, max_points: int | None = None, since_step: int | None = None) -> dict[str, list[Record]]:
        """Series by key (``{"train/loss": [{"step", "value", "wall_time"}, ...]}``), after ``since_step`` when given."""
        params: dict[str, Any] = {}
        if keys:
            params["keys"] = keys if isinstance(keys, str) else ",".join(keys)
        if max_points:
            params["max_points"] = max_points
        if since_step is not None:
            params["since_step"] = since_step
        series = self._api().request("GET", f"/jobs/{self['id']}/metrics", params=params)["series"]
        return {k: [Record(p) for p in v] for k, v in series.items()}

    def cancel(self) -> Job:
        """Ask the job to stop (a running process gets SIGTERM, then SIGKILL after a grace period)."""
        fresh = self._api().request("POST", f"/jobs/{self['id']}/cancel")
        self.clear()
        self.update(fresh)
        return self

    def monitor(self, **options: Any):
        """A live TrainingMonitor widget of this job."""
        from ..widgets.monitor import TrainingMonitor

        return TrainingMonitor(self, client=getattr(self, "_client_ref", None), **options)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs: Any):
        from ..widgets.base import repr_bundle

        return repr_bundle(self.monitor, repr(self), include=include, exclude=exclude)


class TrainJob(Job):
    """A train job's record, with ``wait``, ``metrics`` and ``model_version``."""

    def model_version(self) -> Record:
        """The model version this job registered (after it succeeded)."""
        result = self.refresh().get("result") or {}
        if "model_id" not in result:
            raise APIError(404, "not_found", f"Job {self['id']} has not registered a model version (state {self['state']}).")
        return Record(self._api().request("GET", f"/models/{result['model_id']}/versions/{result['model_version']}"))


def _model_source(model: Any) -> dict[str, Any]:
    if isinstance(model, str):
        return {"entry_point": model}
    if isinstance(model, list):
        return {"spec": {"layers": model}}
    if isinstance(model, dict) and ("spec" in model or "entry_point" in model):
        return model
    if isinstance(model, dict):
        return {"spec": model}
    raise TypeError("model is a spec ({'layers': [...]}), a list of layers, 'module:function', or {'spec': ...} / {'entry_point': ..., 'kwargs': ...}.")


def _guess_task(api, dataset_id: str, version: int | None, target: str) -> str:
    """Classification for text, boolean and integer targets; regression for floats."""
    v = api.request("GET", f"/datasets/{dataset_id}/versions/{version or 'latest'}")
    types = {c["name"]: c["type"] for c in v.get("schema", {}).get("columns", [])}
    kind = types.get(target, "")
    return "regression" if kind.startswith(("double", "float", "halffloat", "decimal")) else "classification"


def train(dataset: str | dict, target: str, model: Any, *, model_name: str | None = None, task: str | None = None, features: list[str] | None = None,
          client=None, **options: Any) -> TrainJob:
    """Queue a built-in training job; returns its record (call ``.wait()`` to block).

    ``dataset``: an id, name or record; ``model``: a layer list, a spec, or ``"module:function"``;
    ``task``: guessed from the target's type when left out. Other keyword arguments are the
    hyperparameters (``epochs``, ``batch_size``, ``learning_rate``, ``optimizer``, ``schedule``,
    ``mixed_precision``, ``early_stopping_patience``, ``seed``, …) or the train request's own
    fields (``validation_split``, ``checkpoint_every``, ``resume_from_job``, ``dataset_version``, ``resources``).
    """
    api = client or default_client()
    dataset_id = api.datasets._resolve(dataset)
    body: dict[str, Any] = {"dataset": dataset_id, "target": target, "model": _model_source(model)}
    for key in _TRAIN_FIELDS:
        if key in options:
            body[key] = options.pop(key)
    body["task"] = task or _guess_task(api, dataset_id, body.get("dataset_version"), target)
    name = model_name or (dataset.get("name") if isinstance(dataset, dict) else None) or (dataset if not api.datasets._id.match(str(dataset)) else None)
    body["model_name"] = model_name or f"{name or dataset_id}-{target}".replace("/", "-")[:128]
    if features is not None:
        body["features"] = list(features)
    if options:
        body["hyperparameters"] = options
    job = TrainJob(api.request("POST", "/models/train", json=body))
    object.__setattr__(job, "_client_ref", api)
    return job


class Jobs(Resources):
    """``ais.jobs``: read-only; its records are ``Job`` handles (``TrainJob`` for train jobs)."""

    def _record(self, data: dict) -> Job:
        out = (TrainJob if data.get("kind") == "train" else Job)(data)
        object.__setattr__(out, "_client_ref", self._client)
        return out

    def cancel(self, job: str | dict) -> Job:
        """Ask a job (by id or record) to stop."""
        return self._record(self._client.request("POST", f"/jobs/{_id_of(job)}/cancel"))


def job(job_id: str | dict, client=None) -> TrainJob:
    """A job (by id or record) as a ``TrainJob`` handle."""
    api = client or default_client()
    out = TrainJob(api.request("GET", f"/jobs/{_id_of(job_id)}"))
    object.__setattr__(out, "_client_ref", api)
    return out
