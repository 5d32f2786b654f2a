"""Entry point of notebook jobs: ``python -m aistudio_jupyter.runtime.job_entry_notebook NOTEBOOK OUTPUT``.

The notebook runs top to bottom with nbclient in a kernel of its own. Parameters (from the
spec at ``AISTUDIO_JOB_SPEC``) are injected as one cell after the cell tagged ``parameters``
(papermill's convention), else first. Each value reaches the kernel as data: the cell's source
is ``name = json.loads("<the value as JSON>")``, a string literal, never the value pasted
into code, so a parameter reading ``__import__('os').system(...)`` stays that string. A failing
cell fails the job (exit code 1); the executed notebook, outputs and error included, is
saved to OUTPUT either way.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

INJECTED_TAG = "injected-parameters"


def parameters_source(parameters: dict) -> str:
    """The injected cell's source: each value decoded from a JSON string literal."""
    lines = ["# Parameters injected by AI Studio", "import json as _aistudio_json"]
    for name, value in parameters.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not an identifier")
        # json.dumps of the JSON text is a valid Python string literal (JSON's escapes are
        # a subset of Python's), and ensure_ascii keeps it free of odd code points
        lines.append(f"{name} = _aistudio_json.loads({json.dumps(json.dumps(value))})")
    lines.append("del _aistudio_json")
    return "\n".join(lines) + "\n"


def inject(nb, parameters: dict) -> None:
    """Insert the parameters cell after the ``parameters``-tagged cell (else at the top)."""
    if not parameters:
        return
    cell = nbformat.v4.new_code_cell(parameters_source(parameters))
    cell.metadata["tags"] = [INJECTED_TAG]
    at = next((i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells.insert(at, cell)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m aistudio_jupyter.runtime.job_entry_notebook NOTEBOOK OUTPUT", file=sys.stderr)
        return 2
    source, output = Path(argv[0]), Path(argv[1])
    spec = json.loads(Path(os.environ["AISTUDIO_JOB_SPEC"]).read_text()) if os.environ.get("AISTUDIO_JOB_SPEC") else {}
    nb = nbformat.read(source, as_version=4)
    inject(nb, spec.get("parameters") or {})
    client = NotebookClient(nb, timeout=None, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"), resources={"metadata": {"path": os.getcwd()}})
    print(f"running {source.name} ({len(nb.cells)} cells)", flush=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1
    finally:
        nbformat.write(nb, output)
    print(f"done: {source.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
