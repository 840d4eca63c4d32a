"""Nothing lost: a rollback archives what it drops and restore_rollback_archive puts it back.

The release cycle of the issue: v2 adds a table with foreign keys (reviews), a many-to-many
(tags), a nullable, a non-null and a foreign-key column on books; rows are written; rollback
to v1; under v1 rows are deleted and added; v2 is deployed again and the archive restored.
Every check reads the database through the raw drivers (tests/dbtools.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import git
from .projects import Project, assert_refused, make_project
from .shop import bookshop_releases

V2_ROWS = [
    "INSERT INTO shelf_author (name) VALUES ('Le Guin'), ('Herbert'), ('Banks'), ('Jemisin')",
    "INSERT INTO shelf_book (title, author_id, isbn, pages, editor_id) VALUES "
    "('Earthsea', 1, '9780553383041', 183, 3), ('Dune', 2, NULL, 412, 4), "
    "('Excession', 3, '9780553575378', 451, NULL), ('Broken Earth', 4, NULL, 468, 1)",
    "INSERT INTO shelf_tag (name) VALUES ('classic'), ('space'), ('magic')",
    "INSERT INTO shelf_book_tags (book_id, tag_id) VALUES (1, 1), (1, 3), (2, 1), (2, 2), (3, 2)",
    "INSERT INTO shelf_review (text, stars, book_id, reviewer_id) VALUES "
    "('wise', 5, 1, 2), ('sandy', 4, 2, 1), ('huge', 5, 3, 3), ('odd', 3, 4, NULL)",
]
TABLES = {
    "shelf_review": "SELECT id, text, stars, book_id, reviewer_id FROM shelf_review ORDER BY id",
    "shelf_tag": "SELECT id, name FROM shelf_tag ORDER BY id",
    "shelf_book_tags": "SELECT id, book_id, tag_id FROM shelf_book_tags ORDER BY id",
    "shelf_book": "SELECT id, title, author_id, isbn, pages, editor_id FROM shelf_book ORDER BY id",
}


def rows(url: str) -> dict[str, list[tuple]]:
    return {table: [tuple(r) for r in dbtools.query(url, sql)] for table, sql in TABLES.items()}


def released(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, dict[str, list]]:
    """v1 then v2 deployed, v2's rows written: the project at v2 and the rows it holds."""
    project, _ = make_project(tmp_path / "repo", databases, bookshop_releases())
    for sql in V2_ROWS:
        dbtools.execute(project.url, sql)
    return project, rows(project.url)


def checkout(project: Project, tag: str) -> None:
    git(project.path, "checkout", "-q", "--detach", tag)


def rolled_back_and_redeployed(project: Project) -> str:
    """Roll back to v1, delete and add rows under v1, deploy v2 again; the save's output."""
    out = project.ok("rollback_migrations")
    checkout(project, "v1")
    # Under v1: book 2 (Dune) is deleted, and author 3 (Banks, the editor of book 1 and
    # the reviewer of review 3); a book and an author are added.
    dbtools.execute(project.url, "DELETE FROM shelf_book WHERE id = 2")
    dbtools.execute(project.url, "UPDATE shelf_book SET author_id = 1 WHERE author_id = 3")
    dbtools.execute(project.url, "DELETE FROM shelf_author WHERE id = 3")
    dbtools.execute(project.url, "INSERT INTO shelf_author (name) VALUES ('Tchaikovsky')")
    dbtools.execute(
        project.url, "INSERT INTO shelf_book (title, author_id) VALUES ('Children of Time', 5)"
    )
    checkout(project, "v2")
    project.ok("migrate", "--no-input")
    return out + project.ok("save_migrations_state")


def expected_after_restore(before: dict[str, list]) -> dict[str, list]:
    """What the archive brings back onto the database as v1 left it, row by row."""
    reviews = [r for r in before["shelf_review"] if r[3] != 2 and r[4] != 3]
    links = [r for r in before["shelf_book_tags"] if r[1] != 2]
    books = []
    for book_id, title, author_id, isbn, pages, editor_id in before["shelf_book"]:
        if book_id == 2:
            continue
        author_id = 1 if author_id == 3 else author_id
        books.append(
            (book_id, title, author_id, isbn, pages, None if editor_id == 3 else editor_id)
        )
    # The book added under v1 got pages=100 from v2's data migration; it was not archived.
    books.append((5, "Children of Time", 5, None, 100, None))
    return {
        "shelf_review": reviews,
        "shelf_tag": before["shelf_tag"],
        "shelf_book_tags": links,
        "shelf_book": books,
    }


def test_release_cycle_restores_every_surviving_row(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, before = released(tmp_path, databases)
    preview = project.ok("rollback_migrations", "--fake")
    assert 'drops table "shelf_review" (4 rows): archived (4 rows, restorable)' in preview
    assert 'drops table "shelf_book_tags" (5 rows): archived (5 rows, restorable)' in preview
    assert 'drops column "shelf_book"."isbn" (2 non-null values): archived' in preview
    assert "rows it deletes or changes are not archived" not in preview  # no reverse code here

    out = rolled_back_and_redeployed(project)
    assert "Archived 6 tables/columns" in out
    assert "can be restored now: run restore_rollback_archive 2." in out
    assert dbtools.schema(project.url)  # v2's tables are back, empty
    assert rows(project.url)["shelf_review"] == []

    saved = json.loads(project.ok("save_migrations_state", "--json"))
    assert saved["restorable_archive"] == 2

    unchanged = dbtools.everything(project.url), rows(project.url)
    fake = project.ok("restore_rollback_archive", "--fake")
    assert (dbtools.everything(project.url), rows(project.url)) == unchanged
    assert "Dry run" in fake

    result = project.ok("restore_rollback_archive", "--json")
    document = json.loads(result)
    assert document["restored"] > 0
    by_item = {(i["table"], i["column"]): i for i in document["items"]}
    assert by_item[("shelf_review", None)]["skipped"] == {"foreign key to a deleted row": 2}
    assert by_item[("shelf_book_tags", None)]["skipped"] == {"foreign key to a deleted row": 2}
    assert by_item[("shelf_book", "isbn")]["skipped"] == {"row deleted": 1}
    assert by_item[("shelf_book", "editor_id")]["skipped"] == {
        "row deleted": 1,
        "foreign key to a deleted row": 1,
    }
    assert rows(project.url) == expected_after_restore(before)

    # New rows after the restore do not collide with restored keys.
    dbtools.execute(project.url, "INSERT INTO shelf_tag (name) VALUES ('new')")
    dbtools.execute(
        project.url, "INSERT INTO shelf_review (text, stars, book_id) VALUES ('fresh', 2, 1)"
    )
    assert dbtools.query(project.url, "SELECT MAX(id) FROM shelf_tag")[0][0] == 4
    assert dbtools.query(project.url, "SELECT MAX(id) FROM shelf_review")[0][0] == 5

    assert_refused(project, "restore_rollback_archive", "2", says="already restored")
    assert_refused(project, "restore_rollback_archive", says="no archive")
    listing = project.ok("restore_rollback_archive", "--list")
    assert "restored" in listing
    assert dbtools.archive_tables(project.url)
    assert "Purged 1 archives (log entries: 2)" in project.ok(
        "restore_rollback_archive", "--purge-older-than", "0"
    )
    assert dbtools.archive_tables(project.url) == []
    assert_refused(project, "restore_rollback_archive", "--purge", "2", says="purged already")


def test_no_archive_loses_the_data_and_says_so(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, _ = released(tmp_path, databases)
    preview = project.ok("rollback_migrations", "--fake", "--no-archive")
    assert 'drops table "shelf_review" (4 rows): lost' in preview
    project.ok("rollback_migrations", "--no-archive")
    assert dbtools.archive_tables(project.url) == []
    assert "No archives" in project.ok("restore_rollback_archive", "--list")


@pytest.mark.skipif(dbtools.BACKEND != "postgresql", reason="kills a restore blocked on a lock")
def test_sigkill_during_restore_leaves_nothing_then_everything(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, before = released(tmp_path, databases)
    rolled_back_and_redeployed(project)
    empty = rows(project.url)
    # Hold shelf_book so the restore stops at its columns, after it inserted the tables.
    holder = dbtools._pg_connect(dbtools._dbname(project.url))
    holder.autocommit = False
    with closing(holder), holder.cursor() as cursor:
        cursor.execute("LOCK TABLE shelf_book IN EXCLUSIVE MODE")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "restore_rollback_archive"],
            cwd=project.path,
            env={**project_env(project)},
        )
        deadline = time.monotonic() + 60
        while not waiting_on_lock(project.url):
            assert time.monotonic() < deadline, "the restore never reached shelf_book"
            time.sleep(0.1)
        process.kill()
        process.wait()
        holder.rollback()
    assert rows(project.url) == empty
    project.ok("restore_rollback_archive")
    assert rows(project.url) == expected_after_restore(before)


def project_env(project: Project) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": project.url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def waiting_on_lock(url: str) -> bool:
    found = dbtools.query(
        url,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'UPDATE%%shelf_book%%'".replace("%%", "%"),
    )
    return bool(found[0][0])


def test_the_setting_switches_the_default_and_the_flag_wins(settings) -> None:  # type: ignore[no-untyped-def]
    from django_rollback import archive

    settings.DJANGO_ROLLBACK = {"ARCHIVE": False}
    assert archive.enabled() is False and archive.enabled(True) is True
    settings.DJANGO_ROLLBACK = {}
    assert archive.enabled() is True and archive.enabled(False) is False
