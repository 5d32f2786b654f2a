"""The supervisor shim: ``python -m aistudio_jupyter.executors.shim JOB_DIR [--path P]... -- ARGV...``.

It leads the job's process group, starts the real command with stdout/stderr going to log
files in the job directory, waits for it and writes ``exit.json`` atomically. The server that
launched it may be gone by then (killed, restarted): the file is how any later server learns
the exit code, the signal and whether the kernel's OOM killer was involved.

SIGTERM, SIGINT and SIGHUP sent to the group reach the command directly; the shim catches them
(with a handler, not SIG_IGN, which the command would inherit across exec) and stays to record
the outcome. Only SIGKILL, the cancel's last resort, takes it down without a record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .base import JobPaths, write_json_atomic


def _cgroup_oom_kills() -> int | None:
    """The OOM-kill count of this process's cgroup (v2, else v1), or None when unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events")
        elif "memory" in controllers.split(","):
            candidates.append(Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.oom_control")
    for events in candidates:
        try:
            for row in events.read_text().splitlines():
                key, _, value = row.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def _ignore(signum, frame) -> None:
    pass


def main(argv: list[str]) -> int:
    extra: list[str] = []
    rest = argv[1:]
    while len(rest) >= 2 and rest[0] == "--path":
        extra.append(rest[1])
        rest = rest[2:]
    if not argv or len(rest) < 2 or rest[0] != "--":
        print("usage: python -m aistudio_jupyter.executors.shim JOB_DIR [--path P]... -- ARGV...", file=sys.stderr)
        return 2
    paths = JobPaths(Path(argv[0]))
    command = rest[1:]
    env = dict(os.environ)
    if extra:
        env["PYTHONPATH"] = os.pathsep.join([*extra, *filter(None, [env.get("PYTHONPATH")])])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    try:
        import psutil

        started = psutil.Process().create_time()
    except Exception:  # psutil is a dependency; this only keeps the shim alive without it
        started = None
    write_json_atomic(paths.process, {"pid": os.getpid(), "start_time": started})
    oom_before = _cgroup_oom_kills()
    began = time.time()
    with open(paths.log("stdout"), "ab", buffering=0) as out, open(paths.log("stderr"), "ab", buffering=0) as err:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=paths.work, env=env)
        except OSError as exc:
            err.write(f"could not start the job: {exc}\n".encode())
            write_json_atomic(paths.exit, {"code": 127, "signal": None, "oom": False, "error": str(exc)[:500], "started_at": began, "finished_at": time.time()})
            return 127
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a SIGINT arriving between handler installs
                continue
    sig = -code if code < 0 else None
    oom_after = _cgroup_oom_kills()
    oom = sig == signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before
    write_json_atomic(paths.exit, {"code": None if sig else code, "signal": sig, "oom": oom, "started_at": began, "finished_at": time.time()})
    return code if code >= 0 else 128 + (sig or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
