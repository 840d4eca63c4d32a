"""The SQLite rollback lock is never a file beside the database."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from django_rollback.locks import sqlite_lock_path

from . import dbtools
from .projects import History


@pytest.mark.skipif(dbtools.BACKEND != "sqlite", reason="the lock of SQLite databases")
def test_the_sqlite_lock_is_not_a_file_beside_the_database(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    database = "/" + project.url.split(":///", 1)[1].lstrip("/")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    assert not Path(f"{database}.rollback-lock").exists()
    assert sqlite_lock_path(database).startswith(tempfile.gettempdir())
    assert not any(Path(database).parent.glob("*rollback-lock*"))
