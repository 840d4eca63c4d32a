"""The preview says what the rollback really does: nothing for the models Django's schema
editor skips (unmanaged models over a view, proxy models), and what the archive keeps as
information, apart from the warnings about what is really lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client, SimpleTestCase
from django.urls import reverse

from django_rollback.admin.log import RollbackLogAdmin
from django_rollback.models import RollbackLog

from . import dbtools
from .gitrepo import commit_release, write_release
from .panel.history import PanelHistory
from .projects import Project, make_project
from .shop import shelf_releases
from .test_admin import fingerprint, preview_url

VIEW = "shelf_bookview"
PROXY_TABLE = "shelf_popularbook"  # what a table of the proxy would be called: none exists

# As django-oscar 4.2 does: a model over a view that a RunSQL creates, and a proxy model.
UNMANAGED_OPS = (
    f'        migrations.RunSQL("CREATE VIEW {VIEW} AS SELECT id, title FROM shelf_book",'
    f' "DROP VIEW {VIEW}"),\n'
    '        migrations.CreateModel(name="BookView", fields=['
    '("id", models.BigIntegerField(primary_key=True, serialize=False)),'
    ' ("title", models.CharField(max_length=50))],'
    f' options={{"managed": False, "db_table": "{VIEW}"}}),\n'
    '        migrations.CreateModel(name="PopularBook", fields=[], options={"proxy": True},'
    ' bases=("shelf.book",)),\n'
)


def views(url: str) -> list[str]:
    if dbtools.BACKEND == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'view'"
    elif dbtools.BACKEND == "mysql":
        sql = "SELECT table_name FROM information_schema.views WHERE table_schema = DATABASE()"
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
    plan = document["plan"]
    steps = {step["migration"]: step for step in plan["steps"]}
    change = steps["shelf.0003_change"]
    assert change["locks"] == [] and change["data_loss"] == []
    assert VIEW not in plan["tables"] and PROXY_TABLE not in plan["tables"]
    assert [d["column"] for d in steps["shelf.0002_book_isbn"]["data_loss"]] == ["isbn"]

    project.ok("rollback_migrations", "--no-input")
    assert views(project.url) == []
    assert dbtools.schema(project.url) == schema_v1


# --- what the archive keeps is information; what is lost is a warning --------------------

ISBN_LINE = (
    'shelf.0002_book_isbn: drops column "shelf_book"."isbn" (1 non-null value): '
    "archived (1 non-null value, restorable)"
)


@pytest.fixture
def isbn(databases: dbtools.Databases, tmp_path: Path) -> Project:
    """v2 adds a column (one value filled in) and a step that drops nothing."""
    project, _ = make_project(tmp_path / "shelf", databases, shelf_releases(""))
    dbtools.execute(project.url, "UPDATE shelf_book SET isbn = '9780441013593'")
    return project


def test_archived_column_is_kept_not_a_warning(isbn: Project) -> None:
    text = isbn.ok("rollback_migrations", "--fake")
    assert f"Kept: {ISBN_LINE}" in text
    # (MariaDB warns that its DDL is not transactional: a warning of its own.)
    assert not any(line.startswith("Warning:") and "isbn" in line for line in text.splitlines())

    plan = json.loads(isbn.ok("rollback_migrations", "--fake", "--json"))["plan"]
    assert plan["kept"] == [ISBN_LINE]
    # The key stays; it holds only what is really lost.
    assert not any("isbn" in warning for warning in plan["warnings"])
    [loss] = plan["steps"][1]["data_loss"]  # 0002, unapplied after 0003
    assert loss["archived"] is True and loss["column"] == "isbn"


def test_without_the_archive_the_loss_is_a_warning(isbn: Project) -> None:
    lost = 'shelf.0002_book_isbn: drops column "shelf_book"."isbn" (1 non-null value): lost'
    text = isbn.ok("rollback_migrations", "--fake", "--no-archive")
    assert f"Warning: {lost}" in text and "Kept:" not in text
    plan = json.loads(isbn.ok("rollback_migrations", "--fake", "--no-archive", "--json"))["plan"]
    assert plan["warnings"][0] == lost and plan["kept"] == []


# --- the admin: the preview page and the log entry page -------------------------------------

KEPT_BOX = 'class="rollback-alert rollback-alert-info" id="rollback-data-loss"'
LOST_BOX = 'class="rollback-alert rollback-alert-warning" id="rollback-data-loss"'


@pytest.mark.usefixtures("inline_runner")
def test_admin_preview_shows_archived_data_as_kept(
    panel: PanelHistory, admin_client: Client, settings: Any
) -> None:
    check = SimpleTestCase()
    target = panel.state("v1.2.0")
    response = admin_client.get(preview_url(target))
    check.assertContains(response, KEPT_BOX)
    check.assertContains(response, '<tr class="rollback-kept">', count=3)
    check.assertContains(response, "archived (3 rows, restorable)")
    check.assertContains(response, "rollback-kept-badge")
    for lossy in (LOST_BOX, "rollback-lost", "rollback-step-destructive", "drops data"):
        check.assertNotContains(response, lossy)

    settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, "ARCHIVE": False}
    response = admin_client.get(preview_url(target))
    check.assertContains(response, LOST_BOX)
    check.assertContains(response, '<tr class="rollback-lost">', count=3)
    check.assertContains(response, '<span class="rollback-warning">lost</span>', count=3)
    check.assertContains(response, "rollback-step-destructive")
    check.assertNotContains(response, '<tr class="rollback-kept">')


@pytest.mark.usefixtures("inline_runner")
def test_admin_log_entry_shows_status_and_output_once(
    panel: PanelHistory, admin_client: Client
) -> None:
    check = SimpleTestCase()
    target = panel.state("v1.2.0")
    token = fingerprint(admin_client, target)
    admin_client.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    log = RollbackLog.objects.get()
    assert log.status == RollbackLog.Status.SUCCEEDED
    page = admin_client.get(reverse("admin:django_rollback_rollbacklog_change", args=[log.pk]))
    check.assertContains(page, "rollback-status-succeeded", count=1)
    check.assertContains(page, "Unapplying inventory.0004_stock", count=1)
    check.assertNotContains(page, "output so far")
    check.assertContains(page, "<label>output</label>", count=1, html=False)
    # The plan's archived drops are kept, not red warnings.
    check.assertContains(page, '<li class="rollback-kept">', count=3)
    check.assertNotContains(page, '<li class="rollback-warning">inventory.0004_stock')


@pytest.mark.django_db
def test_log_entries_saved_before_kept_existed_show_their_archived_drops_as_kept() -> None:
    line = 'a.0002_x: drops table "a_x" (2 rows): archived (2 rows, restorable)'
    lost = 'a.0003_y: drops column "a_y"."z" (1 non-null value): lost'
    loss = {"table": "a_x", "column": None, "rows": 2, "estimated": False, "archived": True}
    old_plan = {
        "steps": [
            {"migration": "a.0002_x", "operations": [], "data_loss": [loss]},
            {"migration": "a.0003_y", "operations": [], "data_loss": []},
        ],
        "warnings": [line, lost],
    }
    html = RollbackLogAdmin(RollbackLog, admin.site).plan_display(RollbackLog(plan=old_plan))
    assert f'<li class="rollback-kept">{line}' in html.replace("&quot;", '"')
    assert f'<li class="rollback-warning">{lost}' in html.replace("&quot;", '"')
    assert f'<li class="rollback-warning">{line}' not in html.replace("&quot;", '"')
