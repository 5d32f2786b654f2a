"""Persistence: the SQLAlchemy models, managed sessions and Alembic migrations.

Only ``services/`` and this package touch the database; ORM rows never leave a session.
"""

from .session import Database

__all__ = ["Database"]
