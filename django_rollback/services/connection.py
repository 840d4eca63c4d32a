"""Is the database there, with the django_rollback tables in it?"""

from __future__ import annotations

from pathlib import Path

from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    connections,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionDoesNotExist

from .. import conf
from ..catalog import existing_tables
from ..exceptions import (
    DatabaseUnavailableError,
    NotMigratedError,
    RollbackError,
    first_line,
)
from ..git import GitRepository
from ..models import (
    MigrationState,
    RollbackLog,
)


def ready_connection(
    database: str = DEFAULT_DB_ALIAS, *, check_tables: bool = True
) -> BaseDatabaseWrapper:
    """The connection, once it is known to answer and to hold the django_rollback tables."""
    try:
        connection = connections[database]
    except ConnectionDoesNotExist:
        raise RollbackError(f"Unknown database alias '{database}'.") from None
    try:
        connection.ensure_connection()
        if not check_tables:  # the caller is about to read those tables anyway
            return connection
        needed = {MigrationState._meta.db_table, RollbackLog._meta.db_table}
        tables = existing_tables(connection, needed)
    except DatabaseError as exc:
        raise DatabaseUnavailableError(
            f"Cannot connect to database '{database}': {first_line(exc)}"
        ) from None
    if not needed <= tables:
        raise NotMigratedError(
            f"The django_rollback tables do not exist in database '{database}' yet: "
            "run `manage.py migrate` first."
        )
    return connection


def open_repository(repo_path: str | Path | None = None) -> GitRepository:
    return GitRepository(repo_path or conf.repo_path())
