"""The supervisor shim: ``python -m aistudio_jupyter.executors.shim JOB_DIR [--path P]... -- ARGV...``.

It leads the job's process group, starts the real command with stdout/stderr going to log
files in the job directory, waits for it and writes ``exit.json`` atomically. The server that
launched it may be gone by then (killed, restarted): the file is how any later server learns
the exit code, the signal and whether the kernel's OOM killer was involved.

SIGTERM, SIGINT and SIGHUP sent to the group reach the command directly; the shim catches them
(with a handler, not SIG_IGN, which the command would inherit across exec) and stays to record
the outcome. Only SIGKILL, the cancel's last resort, takes it down without a record.

With ``--memory-mb N`` the shim also enforces the job's memory: twice a second it sums the
resident memory of the command and its descendants, and past N MiB it SIGKILLs them all, as
the kernel's OOM killer would, and records the limit and the peak. Polling cannot stop an
allocation faster than its period, so a job may briefly exceed its limit; a cgroup would be
exact but containers and laptops rarely let an unprivileged server create one. The sum counts
pages shared between processes (the torch libraries of DDP ranks) once per process, so it errs
on the side of the job using more.
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


MIB = 1024 * 1024
#: seconds between memory checks of a job with a limit
MEMORY_POLL = 0.5


def _tree_rss(child) -> int:
    """Resident bytes of ``child`` (a psutil.Process) and every descendant still running."""
    import psutil

    total = 0
    try:
        procs = [child, *child.children(recursive=True)]
    except psutil.Error:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue  # exited between the listing and the reading
    return total


def _kill_tree(child) -> None:
    import psutil

    try:
        procs = [child, *child.children(recursive=True)]
    except psutil.Error:
        procs = [child]
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _wait(child: subprocess.Popen, limit_mb: int | None) -> tuple[int, dict]:
    """Wait for the command; with a limit, watch its memory. (exit code, what to record)."""
    record: dict = {}
    watched = None
    if limit_mb:
        try:
            import psutil

            watched = psutil.Process(child.pid)
            record = {"memory_limit_mb": limit_mb, "peak_rss_mb": 0}
        except Exception:  # psutil missing or the command already gone: no watch
            watched = None
    while True:
        try:
            if watched is None:
                return child.wait(), record
            try:
                return child.wait(timeout=MEMORY_POLL), record
            except subprocess.TimeoutExpired:
                pass
            used = _tree_rss(watched) // MIB
            record["peak_rss_mb"] = max(record["peak_rss_mb"], used)
            if used > limit_mb and not record.get("over_limit"):
                record["over_limit"] = True
                _kill_tree(watched)
        except KeyboardInterrupt:  # a SIGINT arriving between handler installs
            continue


def main(argv: list[str]) -> int:
    extra: list[str] = []
    limit_mb: int | None = None
    rest = argv[1:]
    while len(rest) >= 2 and rest[0] in ("--path", "--memory-mb"):
        if rest[0] == "--path":
            extra.append(rest[1])
        else:
            limit_mb = int(rest[1])
        rest = rest[2:]
    if not argv or len(rest) < 2 or rest[0] != "--":
        print("usage: python -m aistudio_jupyter.executors.shim JOB_DIR [--path P]... [--memory-mb N] -- ARGV...", file=sys.stderr)
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
        code, memory = _wait(child, limit_mb)
    sig = -code if code < 0 else None
    oom_after = _cgroup_oom_kills()
    oom = sig == signal.SIGKILL and oom_before is not None and oom_after is not None and oom_after > oom_before
    if memory.pop("over_limit", False):
        memory["killed_over_limit"] = True
    write_json_atomic(paths.exit, {"code": None if sig else code, "signal": sig, "oom": oom, **memory, "started_at": began, "finished_at": time.time()})
    return code if code >= 0 else 128 + (sig or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
