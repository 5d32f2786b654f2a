"""Build the configured storage from ``c.AIStudio.storage_url`` (DESIGN §11)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import DEFAULT_PART_SIZE, Storage


def storage_from_url(url: str, *, s3_endpoint_url: str | None = None, s3_region: str | None = None, part_size: int = DEFAULT_PART_SIZE) -> Storage:
    """``file:///path`` → ``LocalStorage``; ``s3://bucket/prefix`` → ``S3Storage``; else ``ValueError``."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from .local import LocalStorage

        return LocalStorage(url)
    if scheme == "s3":
        # boto3 is imported only by deployments that use S3
        from .s3 import S3Storage

        return S3Storage(url, endpoint_url=s3_endpoint_url or None, region=s3_region or None, part_size=part_size)
    raise ValueError(f"storage_url must start with file:// or s3://, got {url!r}")
