"""The presenters: pure functions from numbers and results to the words the commands and the
admin show; and the proof that both skins show the words of the same function."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from django_rollback.archive import ArchiveItem
from django_rollback.models import MigrationState
from django_rollback.presenters.outcomes import save_outcome
from django_rollback.presenters.text import (
    describe_archive_item,
    describe_size,
    migrations_in_apps,
    migrations_text,
    to_unapply,
)
from django_rollback.services import SaveResult

from .gitrepo import git
from .panel.history import PanelHistory
from .test_admin import messages_of, preview_url

CHANGELIST = "/admin/django_rollback/migrationstate/"
SAVE_URL = f"{CHANGELIST}save/"


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
    preview = admin_client.get(preview_url(panel.state("v1.2.0"))).content.decode()
    # the preview's size sentence: one function, the same words in the command and the page
    assert to_unapply(3, 2) == f"{sentence} to unapply."
    assert to_unapply(3, 2) in out.getvalue() and to_unapply(3, 2) in preview
    saved = StringIO()
    call_command("save_migrations_state", stdout=saved)
    assert f"is possible: {sentence}." in saved.getvalue()


def test_the_command_and_the_admin_say_what_a_save_did_with_one_sentence(
    panel: PanelHistory, admin_client: Client
) -> None:
    def outcome(state: MigrationState, *, created: bool) -> str:
        result = SaveResult(state, created, False, False, latest=state, previous=None)
        return save_outcome(result)

    git(panel.repo, "commit", "-q", "--allow-empty", "-m", "hotfix")
    git(panel.repo, "tag", "v2.0.1")
    response = admin_client.post(SAVE_URL, follow=True)
    state = MigrationState.objects.get(commit=git(panel.repo, "rev-parse", "HEAD"))
    created = outcome(state, created=True)
    assert created.startswith("State successfully created for commit") and "v2.0.1" in created
    assert created in messages_of(response)
    out = StringIO()
    call_command("save_migrations_state", stdout=out)
    assert outcome(state, created=False) in out.getvalue()
    state.delete()  # the command creates it again: the admin's sentence, word for word
    out = StringIO()
    call_command("save_migrations_state", stdout=out)
    assert created in out.getvalue()
    response = admin_client.post(SAVE_URL, follow=True)
    state = MigrationState.objects.get(commit=state.commit)
    assert outcome(state, created=False) in messages_of(response)
