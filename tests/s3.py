"""A real S3 API over HTTP on loopback: moto's standalone server in a subprocess.

Nothing patches boto3: the code under test talks HTTP to ``moto_server`` exactly as it would to
MinIO or AWS. One server per test session; each test gets its own bucket and dummy credentials.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from .live import free_port

REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """The URL of a moto S3 server on 127.0.0.1, stopped at the end of the session."""
    port = free_port()
    script = Path(sys.executable).with_name("moto_server")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "wb")  # noqa: SIM115 -- closed at teardown
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer in 30s: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Bucket:
    name: str
    endpoint_url: str
    client: object  # a boto3 S3 client, for looking behind the storage layer's back

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}".rstrip("/")

    def object_names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))

    def pending_uploads(self) -> list[str]:
        return sorted(u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", ()))


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint):
    """A boto3 client for looking behind the storage layer's back (one per session: clients are slow to build)."""
    return boto3.session.Session().client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"})
    )


@pytest.fixture
def s3_bucket(s3_endpoint, s3_admin, monkeypatch, tmp_path):
    """A fresh bucket on the moto server, with dummy credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # a developer's ~/.aws must not leak into the tests
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = s3_admin
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    bucket = Bucket(name, s3_endpoint, client)
    yield bucket
    # the server lives for the whole session: give its memory back
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", ()):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    names = bucket.object_names()
    for i in range(0, len(names), 1000):
        client.delete_objects(Bucket=name, Delete={"Objects": [{"Key": n} for n in names[i : i + 1000]]})
    client.delete_bucket(Bucket=name)
