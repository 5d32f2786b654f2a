"""A real Jupyter server in its own process, for clients that block (httpx, schemathesis,
benchmarks) and for restarts and outages that an in-process server cannot show."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import TEAMS, TOKENS

REPO = Path(__file__).resolve().parents[1]
JUPYTER_TOKEN = "jupyter-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(tmp_path, url) as srv: httpx.get(srv.api("/datasets"), headers=srv.auth("bob"))``."""

    def __init__(self, workdir: Path, database_url: str, *, named_users: bool = True, aistudio: dict[str, Any] | None = None, server: dict[str, Any] | None = None, env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = self.workdir / "server.log"
        config = {
            "ServerApp": {"ip": "127.0.0.1", "port": self.port, "open_browser": False, "allow_root": True, "root_dir": str(self.workdir / "root"), **(server or {})},
            "IdentityProvider": {"token": JUPYTER_TOKEN},
            # revocation tests should not wait out the production cache
            "TokenService": {"cache_seconds": 0.5},
            # tests and benchmarks drive thousands of requests a minute as one user; the
            # limiter has tests of its own (tests/handlers/test_rate_limits.py)
            "AIStudio": {"tiers": {"default": {"requests_per_minute": 0}}, "database_url": database_url, "storage_url": (self.workdir / "storage").as_uri(), "teams": TEAMS, "db_retry_interval": 0.2, "owner": "alice", **(aistudio or {})},
        }
        if named_users:
            config["ServerApp"]["identity_provider_class"] = "tests.identity.NamedUsersIdentityProvider"
        for sub in ("config", "data", "runtime", "root"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "config" / "jupyter_server_config.json").write_text(json.dumps(config))
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.workdir / "config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> LiveServer:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyter_server"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.log_path.read_text()[-3000:]}")
            try:
                r = httpx.get(self.api("/health"), headers=self.auth(), timeout=2)
                if r.status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jupyter server did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.kill_jobs()

    def kill_jobs(self) -> None:
        """SIGKILL the process group of every job this server launched: jobs are started to
        outlive their server (that is the point), so a test's must not outlive the test."""
        import psutil

        for record in (self.workdir / "data").glob("aistudio/jobs/*/process.json"):
            try:
                info = json.loads(record.read_text())
                process = psutil.Process(info["pid"])
                # a recycled pid belongs to someone else
                if abs(process.create_time() - info["start_time"]) < 1.0:
                    os.killpg(info["pid"], 9)
            except (OSError, ValueError, KeyError, psutil.Error):
                continue

    def api(self, path: str = "") -> str:
        return f"{self.base}/aistudio/api{path}"

    def auth(self, user: str | None = None) -> dict[str, str]:
        """Headers for a named test user, or the Jupyter server token when ``user`` is None."""
        return {"Authorization": f"token {TOKENS[user] if user else JUPYTER_TOKEN}"}

    def client(self, user: str = "alice", **kw) -> httpx.Client:
        return httpx.Client(base_url=self.api(), headers=self.auth(user), timeout=kw.pop("timeout", 30), **kw)


@pytest.fixture
def live_server(tmp_path, database_url):
    """A Jupyter server process with AI Studio on the test's database (SQLite or PostgreSQL)."""
    with LiveServer(tmp_path / "live", database_url) as server:
        yield server
