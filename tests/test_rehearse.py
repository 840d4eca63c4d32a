"""--rehearse: the whole plan for real in one transaction rolled back at the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import dbtools
from .projects import Project, assert_refused, make_project
from .shop import shelf_releases

# The reverse code copies the ISBN into the title, which is NOT NULL: fine while every book
# has an ISBN, an IntegrityError with the first book that has none.
TITLE_FROM_ISBN = """
def title_from_isbn(apps, schema_editor):
    Book = apps.get_model("shelf", "Book")
    for book in Book.objects.order_by("pk"):
        Book.objects.filter(pk=book.pk).update(title=book.isbn)
"""
REHEARSED = "        migrations.RunPython(migrations.RunPython.noop, title_from_isbn),\n"


def rehearsal_project(
    tmp_path: Path, databases: dbtools.Databases
) -> tuple[Project, dict[str, str]]:
    project, shas = make_project(
        tmp_path / "repo", databases, shelf_releases(REHEARSED, TITLE_FROM_ISBN)
    )
    dbtools.execute(project.url, "UPDATE shelf_book SET isbn = '9780441013593'")
    return project, shas


def everything_but_logs(url: str) -> dict[str, object]:
    found = dbtools.everything(url)
    found.pop("logs")
    return found


@pytest.mark.skipif(dbtools.BACKEND == "mysql", reason="refused there; see the next test")
def test_rehearsal_runs_every_step_times_it_and_changes_nothing(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas = rehearsal_project(tmp_path, databases)
    before = everything_but_logs(project.url)
    result = project.manage("rollback_migrations", "--rehearse", "-t", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unapplying shelf.0003_change... OK (" in result.stdout
    assert "Unapplying shelf.0002_book_isbn... OK (" in result.stdout
    assert "Rehearsal finished: 2 migrations unapplied in " in result.stdout
    assert "locks" in result.stderr  # the warning about the locks held until it ends
    assert everything_but_logs(project.url) == before
    assert [row[0] for row in dbtools.logs(project.url) or []] == ["rehearsal"]
    document = json.loads(project.ok("rollback_migrations", "--rehearse", "--json"))
    assert document["result"]["status"] == "rehearsed"
    assert set(document["result"]["step_seconds"]) == {"shelf.0003_change", "shelf.0002_book_isbn"}
    assert everything_but_logs(project.url) == before
    # And the real rollback afterwards works as rehearsed.
    project.ok("rollback_migrations")
    assert ("shelf", "0003_change") not in dbtools.applied(project.url)


@pytest.mark.skipif(dbtools.BACKEND == "mysql", reason="refused there; see the next test")
def test_rehearsal_that_fails_on_real_rows_names_the_step_and_leaves_everything(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas = rehearsal_project(tmp_path, databases)
    # A production row the test data never had: a book without an ISBN.
    dbtools.execute(project.url, "INSERT INTO shelf_book (title, isbn) VALUES ('Solaris', NULL)")
    before = everything_but_logs(project.url)
    result = project.manage("rollback_migrations", "--rehearse")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "Rehearsal: rollback failed at shelf.0003_change:" in error
    assert "nothing was changed" in error
    assert everything_but_logs(project.url) == before
    [(status, _, _, logged)] = dbtools.logs(project.url) or []
    assert status == "rehearsal" and "shelf.0003_change" in logged
    # The real rollback fails at the same step, with the same reason.
    real = project.manage("rollback_migrations")
    assert real.returncode == 1
    real_error = real.stderr.strip().splitlines()[-1]
    assert "Rollback failed at shelf.0003_change:" in real_error
    assert (
        error.split("shelf.0003_change:")[1].split(";")[0]
        == (real_error.split("shelf.0003_change:")[1].split(";")[0])
    )


@pytest.mark.skipif(dbtools.BACKEND != "mysql", reason="MySQL/MariaDB only")
def test_rehearsal_is_refused_on_mysql(tmp_path: Path, databases: dbtools.Databases) -> None:
    project, _ = rehearsal_project(tmp_path, databases)
    assert_refused(project, "rollback_migrations", "--rehearse", says="Cannot rehearse on")
