"""Live servers configured for fast job supervision, job scripts written into their root, and
polling with deadlines (never sleeps as synchronisation)."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from tests.live import LiveServer

#: short intervals so that every transition shows within a fraction of a second
FAST = {"poll_interval": 0.1, "watch_interval": 0.1, "lease_seconds": 2.0, "cancel_grace": 1.0, "cpu_slots": 16.0}


def job_server(workdir: Path, database_url: str, *, supervisor: dict[str, Any] | None = None, aistudio: dict[str, Any] | None = None) -> LiveServer:
    """A LiveServer (not started) whose JobSupervisor uses ``FAST`` plus ``supervisor``."""
    srv = LiveServer(workdir, database_url, aistudio=aistudio)
    config_path = srv.workdir / "config" / "jupyter_server_config.json"
    config = json.loads(config_path.read_text())
    config["JobSupervisor"] = {**FAST, **(supervisor or {})}
    config_path.write_text(json.dumps(config))
    return srv


def restart(srv: LiveServer, timeout: float = 60) -> LiveServer:
    """Start ``srv`` again on the same port, data and database."""
    srv.start(timeout)
    return srv


def kill_server(srv: LiveServer) -> None:
    """``kill -9`` the server process: no shutdown hook runs."""
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv._log.close()


def write(srv: LiveServer, relative: str, source: str) -> str:
    path = srv.workdir / "root" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return relative


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def submit(client: httpx.Client, spec: dict, *, kind: str = "script", expect: int = 201, **body) -> dict:
    r = client.post("/jobs", json={"kind": kind, "spec": spec, **body})
    assert r.status_code == expect, r.text
    return r.json()


def job(client: httpx.Client, job_id: str) -> dict:
    r = client.get(f"/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(client: httpx.Client, job_id: str, states: str | tuple[str, ...], timeout: float = 20) -> dict:
    states = (states,) if isinstance(states, str) else states
    return wait_for(lambda: (j := job(client, job_id))["state"] in states and j, timeout, f"job {job_id} to be {'/'.join(states)}")


def log_text(client: httpx.Client, job_id: str, stream: str = "stdout") -> str:
    text, offset = "", 0
    while True:
        r = client.get(f"/jobs/{job_id}/logs", params={"stream": stream, "offset": offset})
        assert r.status_code == 200, r.text
        page = r.json()
        text += page["text"]
        if page["next_offset"] == offset:
            return text
        offset = page["next_offset"]


def pid_file(srv: LiveServer, name: str) -> str:
    """Where a job script writes its pid (an absolute path: jobs run in their own work dir)."""
    return str(srv.workdir / "root" / name)


def read_pid(srv: LiveServer, name: str, timeout: float = 20) -> int:
    """The pid a job script wrote to ``pid_file(srv, name)``."""
    path = Path(pid_file(srv, name))
    return wait_for(lambda: path.exists() and path.read_text().strip() and int(path.read_text()), timeout, f"{name}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
