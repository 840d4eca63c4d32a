"""Comparing two saved states: the service (compare.py), `rollback_migrations --diff`
(text, --json, bad references) and the admin's "Compare" action and page."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.migrations.graph import MigrationGraph
from django.test import Client

from django_rollback import compare
from django_rollback.models import MigrationState

from .panel.history import PanelHistory

CHANGELIST = "/admin/django_rollback/migrationstate/"


def diff(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("rollback_migrations", "--diff", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- the service, on the panel's real releases -------------------------------------------------


def test_both_directions_per_app_from_the_real_migration_files(panel: PanelHistory) -> None:
    result = compare.compare_states(panel.state("v1.1.0"), panel.state("v2.0.0"))
    assert [app.app for app in result.apps] == ["inventory", "ledger"]
    inventory, ledger = result.apps
    assert inventory.only_in_first.migrations == ()
    assert inventory.only_in_second.migrations == ("0004_stock", "0005_warehouse_city")
    assert [c.text for c in inventory.only_in_second.changes] == [
        "creates table inventory_stock",
        "creates column inventory_warehouse.city",
    ]
    assert ledger.only_in_second.migrations == ("0002_backfill", "0003_entry_note")
    assert [(c.operation, c.text) for c in ledger.only_in_second.changes] == [
        ("RunPython", "other: Raw Python operation"),
        ("AddField", "creates column ledger_entry.note"),
    ]
    assert (result.count("first"), result.count("second")) == (0, 4)
    swapped = compare.compare_states(panel.state("v2.0.0"), panel.state("v1.1.0"))
    assert swapped.apps[0].only_in_first == inventory.only_in_second  # the same, the other way


def test_a_state_compared_with_itself_is_identical(panel: PanelHistory) -> None:
    state = panel.state("v1.2.0")
    result = compare.compare_states(state, state)
    assert result.identical and result.apps == ()
    assert compare.comparison_lines(result)[-1].endswith("have the same migrations applied.")


def test_migrations_without_files_are_listed_as_unknown(panel: PanelHistory) -> None:
    newer = panel.state("v2.0.0")
    newer.migrations = [*newer.migrations, ["ledger", "0009_from_the_future"]]
    result = compare.compare_states(newer, panel.state("v2.0.0"))
    (ledger,) = result.apps
    assert ledger.only_in_first.migrations == ("0009_from_the_future",)
    assert ledger.only_in_first.unknown == ("0009_from_the_future",)
    assert "  0009_from_the_future: no file on disk, its changes are unknown" in "\n".join(
        compare.side_lines(ledger.only_in_first, "x")
    )


# --- every kind of operation, on a graph of migrations built here (no database) ----------------


class Loader:
    """What compare_states() reads of a MigrationLoader: the graph and the files."""

    def __init__(self, *found: migrations.Migration) -> None:
        self.graph = MigrationGraph()
        self.disk_migrations = {(m.app_label, m.name): m for m in found}
        self.unmigrated_apps: set[str] = set()
        for migration in found:
            self.graph.add_node((migration.app_label, migration.name), migration)
        for migration in found:
            for parent in migration.dependencies:
                key = (migration.app_label, migration.name)
                self.graph.add_dependency(migration, key, parent)


def migration(name: str, after: str | None, *operations: Any) -> migrations.Migration:
    made = migrations.Migration(name, "library")
    made.dependencies = [("library", after)] if after else []
    made.operations = list(operations)
    return made


def test_every_schema_operation_is_named_with_its_table_and_column() -> None:
    loader = Loader(
        migration(
            "0001_initial",
            None,
            migrations.CreateModel("Author", [("id", models.AutoField(primary_key=True))]),
            migrations.CreateModel(
                "Book",
                [
                    ("id", models.AutoField(primary_key=True)),
                    ("title", models.CharField(max_length=10)),
                    ("blurb", models.TextField()),
                    ("author", models.ForeignKey("library.Author", models.CASCADE)),
                ],
                options={"db_table": "books"},
            ),
        ),
        migration(
            "0002_changes",
            "0001_initial",
            migrations.AddField("book", "isbn", models.CharField(max_length=13, db_column="ISBN")),
            migrations.AddField("book", "readers", models.ManyToManyField("library.Author")),
            migrations.RenameField("book", "title", "name"),
            migrations.AlterField("book", "name", models.CharField(max_length=200)),
            migrations.RemoveField("book", "author"),
            migrations.RemoveField("book", "blurb"),
            migrations.AlterUniqueTogether("book", {("name", "isbn")}),
            migrations.RenameModel("Author", "Writer"),
            migrations.AlterModelTable("book", "library_books"),
            migrations.DeleteModel("Writer"),
            migrations.RunSQL("SELECT 1", migrations.RunSQL.noop),
        ),
    )
    old = MigrationState(pk=1, commit="a" * 40, migrations=[["library", "0001_initial"]])
    new = MigrationState(
        pk=2,
        commit="b" * 40,
        migrations=[["library", "0001_initial"], ["library", "0002_changes"]],
    )
    result = compare.compare_states(old, new, loader)  # type: ignore[arg-type]
    (library,) = result.apps
    assert library.only_in_first.migrations == ()
    assert [c.text for c in library.only_in_second.changes] == [
        "creates column books.ISBN",
        "creates table books_readers",
        "renames column title to books.name",
        "alters column books.name",
        "drops column books.author_id",
        "drops column books.blurb",
        "alters table books (Alter unique_together for book (1 constraint(s)))",
        "renames table library_author to library_writer",
        "renames table books to library_books",
        "drops table library_writer",
        "other: Raw SQL operation",
    ]
    everything = compare.compare_states(new, old.__class__(pk=3, commit="c" * 40), loader)  # type: ignore[arg-type]
    assert [c.text for c in everything.apps[0].only_in_first.changes][:2] == [
        "creates table library_author",
        "creates table books",
    ]


# --- the command --------------------------------------------------------------------------------


def test_diff_prints_both_directions_per_app(panel: PanelHistory) -> None:
    v11, v20 = panel.releases["v1.1.0"].sha, panel.releases["v2.0.0"].sha
    out, _ = diff(v11[:7], "v2.0.0")  # a commit prefix and a tag, as -c and -t take them
    assert out.splitlines() == [
        f"Comparing commit \"{v11}\" ['v1.1.0']",
        f"     with commit \"{v20}\" ['v2.0.0']",
        "inventory:",
        f"  only in {v11[:10]} ['v1.1.0']: nothing",
        f"  only in {v20[:10]} ['v2.0.0']: 0004_stock, 0005_warehouse_city",
        "    creates table inventory_stock (0004_stock)",
        "    creates column inventory_warehouse.city (0005_warehouse_city)",
        "ledger:",
        f"  only in {v11[:10]} ['v1.1.0']: nothing",
        f"  only in {v20[:10]} ['v2.0.0']: 0002_backfill, 0003_entry_note",
        "    other: Raw Python operation (0002_backfill)",
        "    creates column ledger_entry.note (0003_entry_note)",
        f"2 apps differ: 0 migrations only in {v11[:10]} ['v1.1.0'], "
        f"4 only in {v20[:10]} ['v2.0.0'].",
    ]


def test_diff_json_keeps_the_two_directions_apart(panel: PanelHistory) -> None:
    out, _ = diff("v2.0.0", "v1.2.0", "--json")
    document = json.loads(out)
    assert document["ok"] is True and document["identical"] is False
    assert document["first"]["tags"] == ["v2.0.0"] and document["second"]["tags"] == ["v1.2.0"]
    assert set(document["apps"]) == {"inventory", "ledger"}
    inventory = document["apps"]["inventory"]
    assert inventory["only_in_second"] == {"migrations": [], "changes": [], "unknown": []}
    assert inventory["only_in_first"]["migrations"] == ["0004_stock", "0005_warehouse_city"]
    assert inventory["only_in_first"]["changes"][0] == {
        "migration": "0004_stock",
        "operation": "CreateModel",
        "action": "create",
        "table": "inventory_stock",
        "column": None,
        "old": None,
        "text": "creates table inventory_stock",
    }


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (("v2.0.0", "v9.9.9"), 'Unknown tag "v9.9.9": no saved state carries it and git has no'),
        (("v2.0.0", "deadbeef"), 'Unknown reference "deadbeef": no saved state or git tag'),
        (("v2.0.0", "xyz"), 'Unknown tag "xyz"'),
    ],
)
def test_a_bad_reference_is_one_line_and_a_non_zero_exit(
    panel: PanelHistory, refs: tuple[str, str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        diff(*refs)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert raised.value.returncode == 1


def test_diff_refuses_other_modes(panel: PanelHistory) -> None:
    with pytest.raises(CommandError, match="--diff only compares two states"):
        diff("v2.0.0", "v1.2.0", "--fake")


# --- the admin ----------------------------------------------------------------------------------


def test_the_compare_action_leads_to_the_page(panel: PanelHistory, admin_client: Client) -> None:
    older, newer = panel.state("v1.0.0"), panel.state("v2.0.0")
    response = admin_client.post(
        CHANGELIST, {"action": "compare_states", "_selected_action": [newer.pk, older.pk]}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}compare/{older.pk}/{newer.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert 'id="compare-app-inventory"' in page and 'id="compare-app-ledger"' in page
    assert "creates table inventory_stock" in page and "creates column ledger_entry.note" in page
    assert "2 apps differ: 0 migrations only in" in page


def test_the_action_needs_two_states_and_the_view_permission(
    panel: PanelHistory, admin_client: Client, client: Client
) -> None:
    one = panel.state("v1.0.0")
    response = admin_client.post(
        CHANGELIST, {"action": "compare_states", "_selected_action": [one.pk]}, follow=True
    )
    assert "Select exactly two states to compare." in response.content.decode()
    url = f"{CHANGELIST}compare/{one.pk}/{panel.state('v2.0.0').pk}/"
    nobody = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(nobody)
    assert client.get(url).status_code == 403
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_migrationstate"))
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    gone = admin_client.get(f"{CHANGELIST}compare/{one.pk}/999999/", follow=True)
    assert "A state to compare no longer exists" in gone.content.decode()


# --- in a real browser --------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.usefixtures("inline_runner")
def test_compare_in_the_browser(
    browser_page: Any, live_server: Any, panel: PanelHistory, admin_user: User
) -> None:
    from playwright.sync_api import expect

    from .test_admin_browser import log_in, row_of, shot

    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, live_server.url, "admin", "password")
    row_of(page, "v1.0.0").locator("input.action-select").check()
    row_of(page, "v2.0.0").locator("input.action-select").check()
    page.select_option("select[name=action]", "compare_states")
    page.click("button[name=index]")
    expect(page.locator("#compare-summary")).to_contain_text("2 apps differ: 0 migrations only in")
    inventory = page.locator("#compare-app-inventory")
    expect(inventory.locator("td.compare-side").nth(0)).to_have_text("nothing")
    expect(inventory.locator("td.compare-side").nth(1)).to_contain_text(
        "creates table inventory_stock (0004_stock)"
    )
    expect(page.locator("#compare-app-ledger li")).to_have_count(3)
    assert not page.locator(".rollback-table-wrap").evaluate(
        "el => el.scrollWidth > el.clientWidth"
    )
    shot(page, "compare")
    page.emulate_media(color_scheme="dark")
    shot(page, "compare-dark")
