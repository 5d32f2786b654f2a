"""``jupyter aistudio``: the administration CLI acts on the server's configured database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx


def run_cli(*args: str, config_dir=None, env=None) -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env or {})}
    if config_dir is not None:
        environ["JUPYTER_CONFIG_DIR"] = str(config_dir)
    environ.pop("AISTUDIO_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "aistudio_jupyter.cli", *args], capture_output=True, text=True, env=environ, timeout=120)


def test_db_upgrade_reads_the_server_configuration(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({"AIStudio": {"database_url": url}}))

    behind = run_cli("db", "current", config_dir=config)
    assert behind.returncode == 1 and json.loads(behind.stdout)["current"] is None

    upgraded = run_cli("db", "upgrade", config_dir=config)
    assert upgraded.returncode == 0, upgraded.stderr
    current = run_cli("db", "current", config_dir=config)
    assert current.returncode == 0 and json.loads(current.stdout)["up_to_date"] is True

    status = run_cli("status", config_dir=config)
    assert status.returncode == 0 and json.loads(status.stdout)["ok"] is True


def test_status_fails_on_unreachable_database(tmp_path):
    # nothing listens on port 1; the CLI must say so and exit non-zero, not hang
    result = run_cli("--database-url", "postgresql+psycopg://postgres@127.0.0.1:1/none", "status")
    assert result.returncode == 1
    assert json.loads(result.stdout)["ok"] is False


def test_personal_token_from_cli_works_against_the_api(live_server):
    created = run_cli("--database-url", live_server.database_url, "tokens", "create", "--user", "bob", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    minted = json.loads(created.stdout)
    assert minted["token"].startswith("aist_")

    headers = {"Authorization": f"Bearer {minted['token']}"}
    me = httpx.get(live_server.api("/me"), headers=headers)
    assert me.status_code == 200 and me.json()["username"] == "bob"
    made = httpx.post(live_server.api("/datasets"), headers=headers, json={"name": "from-cli"})
    assert made.status_code == 201 and made.json()["owner"] == "bob"

    listed = json.loads(run_cli("--database-url", live_server.database_url, "tokens", "list", "--user", "bob").stdout)
    assert [t["id"] for t in listed] == [minted["id"]]
    assert minted["token"] not in json.dumps(listed)

    assert run_cli("--database-url", live_server.database_url, "tokens", "revoke", minted["id"]).returncode == 0
    # the server caches token look-ups briefly; a revoked token stops working within that window
    deadline = time.monotonic() + 15
    while httpx.get(live_server.api("/me"), headers=headers).status_code == 200:
        assert time.monotonic() < deadline, "revoked token still accepted"
        time.sleep(0.5)
    assert httpx.get(live_server.api("/me"), headers=headers).status_code == 403


async def test_openapi_command_prints_the_served_document(api):
    printed = json.loads(run_cli("openapi").stdout)
    served = await api("GET", "openapi.json")
    assert served.status == 200 and printed["paths"] == served.body["paths"]
