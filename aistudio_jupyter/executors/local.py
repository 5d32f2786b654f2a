"""The local backend: each job is a process group of its own on this host, led by the shim."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psutil

from .base import ExitInfo, JobHandle, JobLaunch, JobPaths, read_json

#: two readings of one process's start time agree to the clock tick; a reused pid does not
START_TIME_TOLERANCE = 0.05


class LocalBackend:
    """Start, watch and signal job processes on this machine."""

    name = "local"

    def __init__(self) -> None:
        # processes this server started, so that their exit is reaped (a zombie looks alive)
        self._children: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def launch(self, job: JobLaunch) -> JobHandle:
        paths = job.paths
        paths.work.mkdir(parents=True, exist_ok=True)
        # -P: the work directory (the cwd, where the job writes) is not put on the shim's sys.path
        paths_args = [a for p in job.pythonpath for a in ("--path", p)]
        if job.memory_mb:
            paths_args += ["--memory-mb", str(job.memory_mb)]
        safe_path = ["-P"] if sys.version_info >= (3, 11) else []
        argv = [sys.executable, *safe_path, "-m", "aistudio_jupyter.executors.shim", str(paths.root), *paths_args, "--", *job.argv]
        with open(paths.root / "shim.log", "ab") as shim_log:
            # a session of its own: the group outlives this server and is signalled as one;
            # no pipe to this server, whose death would otherwise SIGPIPE the job
            proc = subprocess.Popen(argv, env=job.env, cwd=paths.work, stdin=subprocess.DEVNULL, stdout=shim_log, stderr=shim_log, start_new_session=True, close_fds=True)
        with self._lock:
            self._children[proc.pid] = proc
        try:
            start_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:  # gone already; the exit is read from its files
            start_time = 0.0
        return JobHandle(proc.pid, start_time)

    def is_alive(self, pid: int, start_time: float) -> bool:
        with self._lock:
            child = self._children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            with self._lock:
                self._children.pop(pid, None)
            return False
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - start_time) > START_TIME_TOLERANCE:
                return False
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def signal_group(self, pid: int, start_time: float, sig: int) -> bool:
        if not self.is_alive(pid, start_time):
            return False
        try:
            os.killpg(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def exit_info(self, paths: JobPaths) -> ExitInfo | None:
        return ExitInfo.from_json(read_json(paths.exit))

    def launched_process(self, paths: JobPaths) -> JobHandle | None:
        """The shim's (pid, start time) from its own record, for a job whose launch a dead
        server never recorded."""
        data = read_json(paths.process)
        if not data or not isinstance(data.get("pid"), int) or not isinstance(data.get("start_time"), (int, float)):
            return None
        return JobHandle(data["pid"], float(data["start_time"]))
