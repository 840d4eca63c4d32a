"""The preview says what the rollback really does: nothing for the models Django's schema
editor skips (unmanaged models over a view, proxy models), and what the archive keeps as
information, apart from the warnings about what is really lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, write_release
from .projects import Project, make_project
from .shop import shelf_releases

VIEW = "shelf_bookview"
PROXY_TABLE = "shelf_popularbook"  # what a table of the proxy would be called: none exists

# As django-oscar 4.2 does: a model over a view that a RunSQL creates, and a proxy model.
UNMANAGED_OPS = f"""\
        migrations.RunSQL("CREATE VIEW {VIEW} AS SELECT id, title FROM shelf_book", "DROP VIEW {VIEW}"),
        migrations.CreateModel(
            name="BookView",
            fields=[("id", models.BigIntegerField(primary_key=True, serialize=False)), ("title", models.CharField(max_length=50))],
            options={{"managed": False, "db_table": "{VIEW}"}},
        ),
        migrations.CreateModel(name="PopularBook", fields=[], options={{"proxy": True}}, bases=("shelf.book",)),
"""


def views(url: str) -> list[str]:
    if dbtools.BACKEND == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'view'"
    elif dbtools.BACKEND == "mysql":
        sql = (
            "SELECT table_name FROM information_schema.views WHERE table_schema = DATABASE()"
        )
    else:
        sql = "SELECT viewname FROM pg_views WHERE schemaname = 'public'"
    return sorted(row[0] for row in dbtools.query(url, sql))


@pytest.fixture
def with_view(databases: dbtools.Databases, tmp_path: Path) -> tuple[Project, list[str]]:
    """v1: shelf_book; v2: a column, then a view with an unmanaged model and a proxy.
    Returns the project at v2 and v1's schema."""
    project, _ = make_project(tmp_path / "shelf", databases, shelf_releases(UNMANAGED_OPS)[:1])
    schema_v1 = dbtools.schema(project.url)
    write_release(project.path, shelf_releases(UNMANAGED_OPS)[1][1])
    commit_release(project.path, "v2")
    project.deploy()
    assert views(project.url) == [VIEW]
    return project, schema_v1


def test_unmanaged_and_proxy_models_take_no_lock_and_lose_nothing(
    with_view: tuple[Project, list[str]],
) -> None:
    project, schema_v1 = with_view
    text = project.ok("rollback_migrations", "--fake")
    locks = [line.strip() for line in text.splitlines() if line.strip().startswith("locks ")]
    assert locks and all(VIEW not in line and PROXY_TABLE not in line for line in locks), locks
    assert "not in the database" not in text
    assert "note: BookView is not managed by Django" in text
    assert "note: PopularBook is a proxy model" in text
    # The real loss of the same rollback is still there: the column of 0002.
    assert '"shelf_book"."isbn"' in text

    document = json.loads(project.ok("rollback_migrations", "--fake", "--json"))
    plan = document["plan"] if "plan" in document else document
    steps = {step["migration"]: step for step in plan["steps"]}
    change = steps["shelf.0003_change"]
    assert change["locks"] == [] and change["data_loss"] == []
    assert VIEW not in plan["tables"] and PROXY_TABLE not in plan["tables"]
    assert [d["column"] for d in steps["shelf.0002_book_isbn"]["data_loss"]] == ["isbn"]

    project.ok("rollback_migrations", "--no-input")
    assert views(project.url) == []
    assert dbtools.schema(project.url) == schema_v1
