"""Changes to a user's datasets, models and deployments, announced on their ``user:<owner>`` topic.

The sidebar's lists follow one subscription, ``user:<me>``, instead of one topic per row or a
timer. Every writer calls ``announce`` inside the transaction that makes the change, so the
event commits with it (a rolled-back write announces nothing) and only the owner, who alone
may read ``user:<owner>``, hears of it — a team editor's change to a shared row goes to the
row's owner, never to everyone who can see the row.

Event ``type`` is the resource kind (``dataset``, ``model``, ``deployment``); ``data`` is
``{"action", "id", ...}`` with ``id`` the dataset's, model's or deployment's id:

- ``created`` / ``updated``: ``record``, the resource as the REST API returns it;
- ``deleted``: nothing more;
- ``version`` (datasets, models): a version was added; ``record`` and ``version``, a summary;
- ``version_deleted`` (models): ``version``, the number deleted;
- ``stage`` (models): ``version`` (``{id, version, stage}``) and ``archived``, the numbers moved out;
- ``validation`` (datasets): ``validation``, ``{id, version, state, passed, job_id}``;
- ``state`` (deployments): ``state``, ``message``, ``ready_replicas``, ``replicas``, ``model_version``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

def announce(events, session: Session, owner: str, type: str, action: str, id: str, record: BaseModel | dict | None = None, **summary: Any) -> None:
    """Publish ``{action, id, record?, **summary}`` as ``type`` on ``user:<owner>`` in ``session``'s
    transaction; nothing when the service was built without events."""
    if events is None:
        return
    data: dict[str, Any] = {"action": action, "id": id}
    if record is not None:
        data["record"] = record
    data.update(summary)
    events.publish_in(session, f"user:{owner}", type, data)
