"""The job-backend protocol and the files a job leaves in its own directory.

A job directory is derived from the job's id only (never a user string) and holds:

- ``spec.json``: the job's spec (``AISTUDIO_JOB_SPEC`` points at it);
- ``work/``: the job's working directory;
- ``stdout.log`` / ``stderr.log``: what the job printed;
- ``process.json``: pid and start time of the shim, written as soon as it runs;
- ``exit.json``: how the job ended, written atomically by the shim, so that a server that
  restarted (and is no longer the parent) still learns the exit code;
- ``published.json``: how far the logs were published as events (the supervisor's bookmark).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from pathlib import Path
from typing import Protocol

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STREAMS = ("stdout", "stderr")


@dataclasses.dataclass(frozen=True)
class JobPaths:
    """Where one job's files live."""

    root: Path

    @classmethod
    def of(cls, jobs_dir: str | os.PathLike, job_id: str) -> JobPaths:
        if not _JOB_ID.match(job_id):  # ids are ours; anything else is a bug, not input
            raise ValueError(f"not a job id: {job_id!r}")
        return cls(Path(jobs_dir) / job_id)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def exit(self) -> Path:
        return self.root / "exit.json"

    @property
    def process(self) -> Path:
        return self.root / "process.json"

    @property
    def published(self) -> Path:
        return self.root / "published.json"

    def log(self, stream: str) -> Path:
        if stream not in STREAMS:
            raise ValueError(f"no log stream {stream!r}")
        return self.root / f"{stream}.log"


def write_json_atomic(path: Path, value: dict) -> None:
    """Write ``value`` so that a reader sees the old file or the whole new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclasses.dataclass(frozen=True)
class JobLaunch:
    """What to run: argv (never a shell line), its environment, and the job's directory.

    ``pythonpath`` entries are prepended to the command's PYTHONPATH only, never the shim's:
    a user's file named like a standard module (``token.py``) must not break the shim.
    """

    job_id: str
    argv: list[str]
    env: dict[str, str]
    paths: JobPaths
    pythonpath: tuple[str, ...] = ()
    #: the job's memory limit, enforced by the shim; None: no limit
    memory_mb: int | None = None


@dataclasses.dataclass(frozen=True)
class JobHandle:
    """A started job: the pid of its process group leader and that process's start time,
    which tells a live job from an unrelated process that later got the same pid."""

    pid: int
    start_time: float


@dataclasses.dataclass(frozen=True)
class ExitInfo:
    """How a job's process ended."""

    code: int | None
    signal: int | None = None
    oom: bool = False
    #: set when the shim killed the job for passing its memory limit: (limit, peak) in MiB
    memory_limit: tuple[int, int] | None = None

    @property
    def succeeded(self) -> bool:
        return self.code == 0 and self.signal is None

    @property
    def reason(self) -> str | None:
        return exit_reason(self.code, self.signal, self.oom, self.memory_limit)

    @classmethod
    def from_json(cls, data: dict | None) -> ExitInfo | None:
        if not data:
            return None
        code, sig = data.get("code"), data.get("signal")
        limit = None
        if data.get("killed_over_limit") and isinstance(data.get("memory_limit_mb"), int):
            limit = (data["memory_limit_mb"], int(data.get("peak_rss_mb") or 0))
        return cls(code if isinstance(code, int) else None, sig if isinstance(sig, int) else None, bool(data.get("oom")), limit)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_reason(code: int | None, sig: int | None, oom: bool = False, memory_limit: tuple[int, int] | None = None) -> str | None:
    """A person's words for an exit: "exit code 3", "killed by SIGKILL", "out of memory (...)"."""
    if memory_limit is not None:
        limit, peak = memory_limit
        return f"out of memory: used {peak:,} MiB, over its {limit:,} MiB limit (resources.memory_mb); killed by SIGKILL"
    if oom:
        return f"out of memory ({signal_name(sig or signal.SIGKILL)}, cgroup OOM)"
    if sig is not None:
        return f"killed by {signal_name(sig)}"
    if code:
        return f"exit code {code}"
    return None


class JobBackend(Protocol):
    """Starts job processes and answers questions about them, even across server restarts."""

    name: str

    def launch(self, job: JobLaunch) -> JobHandle:
        """Start the job in a process group of its own that outlives the server."""

    def is_alive(self, pid: int, start_time: float) -> bool:
        """Whether the process started as (pid, start_time) still runs."""

    def signal_group(self, pid: int, start_time: float, sig: int) -> bool:
        """Send ``sig`` to the job's process group; False when it is already gone."""

    def exit_info(self, paths: JobPaths) -> ExitInfo | None:
        """How the job ended, from its ``exit.json``; None when it left none."""

    def launched_process(self, paths: JobPaths) -> JobHandle | None:
        """The job's process as it recorded itself at start (``process.json``), for a job whose
        launch a server that died never recorded."""
