"""Jobs: what a client submits (script and notebook jobs), what it reads back, and log pages."""

from __future__ import annotations

import datetime as dt
import keyword
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .common import Name, Owned, StrictModel, Team, Visibility

JobKind = Literal["train", "validate", "agent", "script", "notebook", "interactive"]
JobState = Literal["queued", "starting", "running", "succeeded", "failed", "canceled", "lost"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled", "lost"})
#: the kinds the scheduler starts as processes; the others run elsewhere (H6 in-process, H3 kernels)
LAUNCHED_KINDS = ("train", "script", "notebook")
LogStream = Literal["stdout", "stderr"]
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class JobResources(StrictModel):
    gpus: int = Field(0, ge=0, le=64)
    cpus: float = Field(1.0, gt=0, le=256)
    #: resident memory of all the job's processes; past it the job is killed (JobSupervisor.enforce_memory)
    memory_mb: int = Field(8192, ge=64, le=4_194_304, description="MiB of resident memory the job's processes may use together; past it the job is killed.")


def relative_path(value: str, suffix: str | None = None) -> str:
    """A path relative to the server's root: no absolute path, no ``..``, no empty parts."""
    if not value or len(value) > 1024 or "\\" in value:
        raise ValueError("must be a path relative to the server's root directory, with / separators")
    path = PurePosixPath(value)
    if path.is_absolute() or any(part in ("..", "") for part in value.split("/")):
        raise ValueError("must be a relative path inside the server's root directory (no '..', no leading '/')")
    if suffix and path.suffix != suffix:
        raise ValueError(f"must name a {suffix} file")
    return value


class ScriptSpec(StrictModel):
    """A Python script (``path``, relative to the server's root) or module (``module``) with argv."""

    path: str | None = Field(None, description="Script path relative to the server's root directory.")
    module: str | None = Field(None, max_length=200, pattern=MODULE_PATTERN, description="Run as ``python -m module``; the root directory is on sys.path.")
    args: list[str] = Field(default_factory=list, max_length=256, description="Arguments, passed as a list (never through a shell).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value, ".py")

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        if any(len(a) > 8192 for a in value):
            raise ValueError("each argument may hold at most 8192 characters")
        return value

    @model_validator(mode="after")
    def _one_entry(self) -> ScriptSpec:
        if (self.path is None) == (self.module is None):
            raise ValueError("give exactly one of path and module")
        return self


class NotebookSpec(StrictModel):
    """A notebook (relative to the server's root) run top to bottom with injected parameters."""

    path: str = Field(description="Notebook path relative to the server's root directory.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Name → JSON value, assigned in a cell injected after the cell tagged 'parameters' (else first).")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return relative_path(value, ".ipynb")

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 200:
            raise ValueError("at most 200 parameters")
        for name in value:
            if not name.isidentifier() or keyword.iskeyword(name) or len(name) > 100:
                raise ValueError(f"parameter name {name[:100]!r} is not a Python identifier")
        return value


SPEC_MODELS = {"script": ScriptSpec, "notebook": NotebookSpec}


class JobCreate(StrictModel):
    """``POST /jobs``: a script/module or a notebook job."""

    name: Name | None = None
    kind: Literal["script", "notebook"]
    spec: dict[str, Any] = Field(description="script: {path | module, args}; notebook: {path, parameters}.")
    resources: JobResources = Field(default_factory=JobResources)
    visibility: Visibility = "private"
    team: Team | None = None

    @model_validator(mode="after")
    def _spec_for_kind(self) -> JobCreate:
        self.spec = SPEC_MODELS[self.kind].model_validate(self.spec).model_dump(exclude_none=True)
        return self


class JobSubmit(StrictModel):
    """What a service submits (``services.jobs.submit``); the public route builds one from JobCreate."""

    name: Name | str = ""
    kind: JobKind
    spec: dict[str, Any] = Field(default_factory=dict)
    resources: JobResources = Field(default_factory=JobResources)
    visibility: Visibility = "private"
    team: Team | None = None


class JobOut(Owned):
    name: str
    kind: JobKind
    state: JobState
    spec: dict[str, Any]
    resources: JobResources
    priority: int
    backend: str
    exit_code: int | None
    exit_reason: str | None
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    progress: float | None = None
    result: dict[str, Any] | None = None
    gpu_ids: list[int] = Field(default_factory=list, description="GPU indexes on the job's host, held while it runs (CUDA_VISIBLE_DEVICES).")
    host: str | None = None
    cancel_requested_at: dt.datetime | None = None


class LogQuery(StrictModel):
    stream: LogStream = "stdout"
    offset: int = Field(0, ge=0, le=2**53, description="Byte offset to read from.")
    limit: int = Field(65536, ge=1, le=1024 * 1024, description="At most this many bytes.")


class LogOut(StrictModel):
    """A slice of a job's log; pass ``next_offset`` back as ``offset`` to follow it."""

    stream: LogStream
    offset: int
    next_offset: int
    size: int = Field(description="The log's size in bytes now.")
    text: str = Field(description="The bytes [offset, next_offset) decoded as UTF-8 (invalid bytes replaced).")
    complete: bool = Field(description="The job has finished and this slice reaches the end of its log.")
