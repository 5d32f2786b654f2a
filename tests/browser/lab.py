"""A real ``jupyter lab`` process with AI Studio, for the browser tests.

It is LiveServer's server (same config file, same users, same database handling) started as
JupyterLab, so the page Chromium loads is the real Lab frontend with the real anywidget
labextension from the pip package, and kernels get their API URL and token from the extension
exactly as a user's kernels do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat

from ..live import JUPYTER_TOKEN, LiveServer


class LabServer(LiveServer):
    """``with LabServer(tmp, "sqlite:///...") as lab: page.goto(lab.url("lab/tree/x.ipynb"))``."""

    def __init__(self, workdir: Path, database_url: str, **kw):
        # one principal, the owner, as in a single-user Lab: the browser's cookie, the test's
        # Jupyter token and the kernels' scoped token are all alice
        super().__init__(workdir, database_url, named_users=False, **kw)
        self.root = self.workdir / "root"
        settings = self.workdir / "config" / "labconfig"
        settings.mkdir(parents=True, exist_ok=True)
        # the news prompt is a toast over the notebook, and asks the (offline) internet
        (settings / "page_config.json").write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))

    def start(self, timeout: float = 120) -> LabServer:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {self.log_path.read_text()[-3000:]}")
            try:
                lab = httpx.get(self.url("lab"), headers=self.auth(), timeout=5)
                api = httpx.get(self.api("/health"), headers=self.auth(), timeout=5)
                if lab.status_code == 200 and api.status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        # kernels first: a kernel in a training loop must not outlive the server that started it
        if self.proc and self.proc.poll() is None:
            try:
                self.shutdown_kernels()
            except httpx.HTTPError:
                pass
        super().stop()

    def restart(self, timeout: float = 120) -> LabServer:
        """Stop, then start again on the same port with the same token, workdir and database
        (the config file and cookie secret stay in the workdir): a browser left open sees the
        server go away and come back. Jobs outlive it, as they outlive a real restart."""
        self.stop()
        self.start(timeout)
        return self

    def is_up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str = "") -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def login_url(self, path: str = "lab") -> str:
        """The URL a browser opens first: the token logs it in and leaves a cookie."""
        sep = "&" if "?" in path else "?"
        return f"{self.url(path)}{sep}token={JUPYTER_TOKEN}"

    def sessions(self) -> list[dict]:
        return httpx.get(self.url("api/sessions"), headers=self.auth(), timeout=10).json()

    def shutdown_kernels(self) -> None:
        for kernel in httpx.get(self.url("api/kernels"), headers=self.auth(), timeout=5).json():
            httpx.delete(self.url(f"api/kernels/{kernel['id']}"), headers=self.auth(), timeout=15)

    def write_notebook(self, name: str, *sources: str) -> str:
        """A notebook of code cells in Lab's root; returns its path relative to the root."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
        path = self.root / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path.name
