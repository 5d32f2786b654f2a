"""Checks that the built wheel installs the sidebar as a prebuilt extension, with no Node.

    .venv/bin/python -m tests.ui.check_wheel [--wheel dist/aistudio_jupyter-*.whl]

Builds the wheel (unless given one), creates a fresh virtual environment, installs the wheel
with its ``lab`` extra there with a PATH holding nothing but that environment (so no node or
npm can be found), then asserts ``jupyter labextension list`` shows ``aistudio-jupyter``
enabled and OK. A script, not a test: installing every dependency into a fresh environment
takes minutes. Prints the time of each step; exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def step(name: str, cmd: list[str], **kw) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    print(f"{name}: {time.monotonic() - started:.1f} s (exit {result.returncode})", flush=True)
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        raise SystemExit(f"{name} failed")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an already built wheel (default: build one now)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aistudio-wheel-") as tmp:
        work = Path(tmp)
        wheel = args.wheel
        if wheel is None:
            step("build the wheel", [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(work / "dist")])
            wheel = next((work / "dist").glob("aistudio_jupyter-*.whl"))
        venv = work / "venv"
        step("create a fresh venv", [sys.executable, "-m", "venv", str(venv)])
        bindir = venv / "bin"
        # nothing but the new environment on PATH: no node, npm or jupyter from elsewhere
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
        env["PATH"] = str(bindir)
        env["HOME"] = os.environ.get("HOME", tmp)
        assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
        step("pip install the wheel[lab]", [str(bindir / "python"), "-m", "pip", "install", "-q", f"{wheel.resolve()}[lab]"], env=env, cwd=work)
        listed = step("jupyter labextension list", [str(bindir / "jupyter"), "labextension", "list"], env=env, cwd=work)
        # the list is coloured even into a pipe
        text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
        line = next((raw for raw in text.splitlines() if "aistudio-jupyter" in raw), None)
        print(line)
        if not line or not re.search(r"\benabled\b", line) or "OK" not in line or "(python, aistudio_jupyter)" not in line:
            print(text)
            raise SystemExit("aistudio-jupyter is not listed as enabled and OK")
        print("the wheel installs the sidebar as an enabled prebuilt extension, without Node")


if __name__ == "__main__":
    main()
