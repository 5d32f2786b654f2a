"""Bytes by key, on local disk or S3: one protocol (``base.Storage``), two backends."""

from .base import AppendState, Appender, ObjectInfo, Reader, Storage, Writer, check_key
from .factory import storage_from_url

__all__ = ["AppendState", "Appender", "ObjectInfo", "Reader", "Storage", "Writer", "check_key", "storage_from_url"]
