"""The sidebar's JavaScript unit tests (jest: the API client and the events client), run as
part of the Python suite so CI runs them too."""

from __future__ import annotations

import subprocess

from .conftest import LABEXTENSION, npm_ci, require_node


def test_jest_unit_tests_pass():
    npm = require_node()
    npm_ci(npm)
    result = subprocess.run([npm, "test", "--", "--ci"], cwd=LABEXTENSION, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"jest failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    # jest prints its summary on stderr; an empty run must not pass
    assert "Tests:" in result.stderr and "failed" not in result.stderr.split("Tests:")[-1].splitlines()[0], result.stderr[-3000:]
