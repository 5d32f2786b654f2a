"""The audit trail: one row per mutating request, written in the mutation's own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..identity import Principal
from ..store.orm import AuditEvent


def record(session: Session, who: Principal, action: str, resource_type: str, resource_id: str | None, details: dict[str, Any] | None = None) -> None:
    session.add(
        AuditEvent(
            actor=who.username,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            request_id=who.request_id or None,
            details=details or {},
        )
    )
