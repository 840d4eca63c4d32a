"""The rollback log entry shows its archive and restores it: preview (GET), confirm (POST),
with the rollback's permission and CSRF rules."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from django_rollback import archive
from django_rollback.models import RollbackLog
from django_rollback.presenters.outcomes import restore_item_line, restore_preview_sentence

from . import dbtools
from .panel.history import PanelHistory
from .test_admin import OPERATOR, VIEW, fingerprint, messages_of, preview_url, staff

STOCK = "SELECT id, item_id, quantity FROM inventory_stock ORDER BY id"
CITIES = "SELECT id, name, city FROM inventory_warehouse ORDER BY id"
# The confirmation starts the rollback outside the request; here it runs in it.
pytestmark = pytest.mark.usefixtures("inline_runner")


@pytest.fixture
def rolled_back(panel: PanelHistory, admin_client: Client) -> tuple[RollbackLog, dict]:
    """v2.0.0 rolled back to v1.2.0 from the admin, then v2.0.0 migrated again."""
    before = {"stock": dbtools.query(panel.url, STOCK), "cities": dbtools.query(panel.url, CITIES)}
    target = panel.state("v1.2.0")
    page = admin_client.get(preview_url(target)).content.decode()
    assert "archived (3 rows, restorable)" in page
    token = fingerprint(admin_client, target)
    admin_client.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    log = RollbackLog.objects.get()
    assert log.archive["items"]
    return log, before


def entry_url(log: RollbackLog) -> str:
    return reverse("admin:django_rollback_rollbacklog_change", args=[log.pk])


def restore_url(log: RollbackLog) -> str:
    return reverse("admin:django_rollback_rollbacklog_restore", args=[log.pk])


def test_log_entry_offers_the_restore_once_the_tables_are_back(
    panel: PanelHistory, admin_client: Client, rolled_back: tuple[RollbackLog, dict]
) -> None:
    log, before = rolled_back
    page = admin_client.get(entry_url(log)).content.decode()
    assert "table &quot;inventory_stock&quot; (3 rows)" in page
    assert 'id="archive-not-yet"' in page and 'id="archive-restore"' not in page

    call_command("migrate", verbosity=0)  # the newer release deployed again
    page = admin_client.get(entry_url(log)).content.decode()
    assert 'id="archive-restore"' in page

    unchanged = panel.everything(), dbtools.query(panel.url, STOCK)
    preview = admin_client.get(restore_url(log)).content.decode()
    assert "Nothing has been changed yet" in preview and "inventory_stock" in preview
    assert (panel.everything(), dbtools.query(panel.url, STOCK)) == unchanged

    response = admin_client.post(restore_url(log))
    assert response.status_code == 302 and response["Location"] == entry_url(log)
    assert dbtools.query(panel.url, STOCK) == before["stock"]
    assert dbtools.query(panel.url, CITIES) == before["cities"]
    page = admin_client.get(entry_url(log)).content.decode()
    assert "restored at" in page and 'id="archive-restore"' not in page
    again = admin_client.post(restore_url(log), follow=True).content.decode()
    assert "already restored" in again


def test_restore_needs_the_rollback_permission_and_the_csrf_token(
    panel: PanelHistory,
    client: Client,
    admin_user: User,
    rolled_back: tuple[RollbackLog, dict],
) -> None:
    log, _ = rolled_back
    call_command("migrate", verbosity=0)
    client.force_login(staff("viewer", *VIEW))
    assert client.get(restore_url(log)).status_code == 403
    assert client.post(restore_url(log)).status_code == 403
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(staff("operator", *OPERATOR))
    assert guarded.get(restore_url(log)).status_code == 200
    assert guarded.post(restore_url(log)).status_code == 403
    assert dbtools.query(panel.url, STOCK) == []


def test_the_command_and_the_admin_word_each_restored_item_alike(
    panel: PanelHistory, admin_client: Client, rolled_back: tuple[RollbackLog, dict]
) -> None:
    log, _before = rolled_back
    call_command("migrate", verbosity=0)
    preview = archive.restore(log, fake=True)  # changes nothing
    outcomes = preview.outcomes
    assert outcomes
    out = StringIO()
    call_command("restore_rollback_archive", str(log.pk), "--fake", stdout=out)
    for outcome in outcomes:
        assert f"  {restore_item_line(outcome, fake=True)}\n" in out.getvalue()
    # The dry run's total: the same sentence on the command line and on the admin's page.
    total = restore_preview_sentence(preview)
    assert f"{total}\n" in out.getvalue()
    assert (
        f'<p id="restore-summary">{total}</p>'
        in admin_client.get(restore_url(log)).content.decode()
    )
    response = admin_client.post(restore_url(log), follow=True)
    lines = [restore_item_line(outcome, fake=False) for outcome in outcomes]
    said = messages_of(response)[-len(lines) - 1 :]
    assert said[0].startswith("Restored ") and said[1:] == lines
    assert '"inventory_stock": restored 3 of 3 rows' in lines
