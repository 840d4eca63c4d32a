"""The presenters: pure functions from numbers and results to the words the commands and the
admin show; and the proof that both skins show the words of the same function."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from django_rollback.archive import ArchiveItem
from django_rollback.presenters.text import (
    describe_archive_item,
    describe_size,
    migrations_in_apps,
    migrations_text,
)

from .panel.history import PanelHistory

CHANGELIST = "/admin/django_rollback/migrationstate/"


def test_migrations_in_apps_says_plurals() -> None:
    assert migrations_text(1) == "1 migration"
    assert migrations_in_apps(1, 1) == "1 migration in 1 app"
    assert migrations_in_apps(3, 2) == "3 migrations in 2 apps"


def test_byte_sizes_read_as_people_read_them() -> None:
    assert describe_size(None) == "size unknown"
    assert describe_size(512) == "512 bytes"
    assert describe_size(1536) == "1.5 kB"
    assert describe_size(3 * 1024**3) == "3.0 GB"
    assert describe_size(2 * 1024**4) == "2048.0 GB"  # archives stop at GB
    assert describe_size(2 * 1024**4, largest="TB") == "2.0 TB"


def test_archive_items_name_the_table_or_the_column() -> None:
    stored = {"table": "shop_order", "column": None, "pk": "id", "archive_table": "a", "rows": 4}
    table = ArchiveItem.from_dict(stored)
    column = ArchiveItem.from_dict({**stored, "column": "note", "rows": 2})
    assert table.as_dict()["rows"] == 4 and table.is_table and not column.is_table
    assert describe_archive_item(table) == 'table "shop_order" (4 rows)'
    assert describe_archive_item(column) == 'column "shop_order"."note" (2 rows)'


@pytest.mark.usefixtures("inline_runner")
def test_the_command_and_the_admin_size_a_rollback_with_one_sentence(
    panel: PanelHistory, admin_client: Client
) -> None:
    sentence = migrations_in_apps(3, 2)  # v2.0.0 back to v1.2.0
    page = admin_client.get(CHANGELIST).content.decode()
    assert f"−{sentence}" in page
    out = StringIO()
    call_command("rollback_migrations", "--fake", "-t", "v1.2.0", stdout=out)
    assert f"{sentence} to unapply." in out.getvalue()
    saved = StringIO()
    call_command("save_migrations_state", stdout=saved)
    assert f"is possible: {sentence}." in saved.getvalue()
