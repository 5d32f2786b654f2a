"""The domain's exception hierarchy.

Services raise these; exactly one place (the base handler) turns them into HTTP responses, so
services never know about HTTP and every failure reaches clients as the same JSON envelope.
"""

from __future__ import annotations

from typing import Any


class AIStudioError(Exception):
    """Base of every error a client may see; ``code`` and ``status`` form the envelope."""

    code = "error"
    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after


class InvalidInput(AIStudioError):
    code, status = "invalid", 422


class BadRequest(AIStudioError):
    code, status = "bad_request", 400


class NotFound(AIStudioError):
    code, status = "not_found", 404


class Forbidden(AIStudioError):
    code, status = "forbidden", 403


class Conflict(AIStudioError):
    code, status = "conflict", 409


class PayloadTooLarge(AIStudioError):
    code, status = "payload_too_large", 413


class UnsupportedMediaType(AIStudioError):
    code, status = "unsupported_media_type", 415


class QuotaExceeded(AIStudioError):
    code, status = "quota_exceeded", 429


class RateLimited(AIStudioError):
    code, status = "rate_limited", 429


class Unavailable(AIStudioError):
    code, status = "unavailable", 503


class InsufficientStorage(AIStudioError):
    code, status = "insufficient_storage", 507


#: HTTP status → envelope code for errors raised outside our hierarchy (tornado, Jupyter auth).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
    507: "insufficient_storage",
}
