"""Rollback readiness in the admin: states that cannot be rolled back to are marked in the
list (from what the current state's save recorded), and the preview offers a rehearsal whose
step times then show as the expected durations."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from django_rollback.models import RollbackLog

from . import dbtools
from .panel.history import PanelHistory
from .test_admin import CHANGELIST, fingerprint, messages_of, preview_url


@pytest.fixture
def admin(panel: PanelHistory, admin_client: Client) -> Client:
    return admin_client


def test_changelist_marks_states_behind_an_irreversible_migration(
    admin: Client, panel: PanelHistory
) -> None:
    page = admin.get(CHANGELIST).content.decode()
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page, re.S)
    by_tag = {tag: next(r for r in rows if f">{tag}<" in r) for tag in panel.releases}
    # ledger.0002_backfill (v1.2.0) has no reverse code: v1.1.0 and v1.0.0 are out of reach.
    for tag in ("v1.1.0", "v1.0.0"):
        assert "cannot: irreversible ledger.0002_backfill" in by_tag[tag]
    for tag in ("v1.2.0", "v2.0.0"):
        assert "cannot: irreversible" not in by_tag[tag]
    # The preview agrees with the mark.
    preview = admin.get(preview_url(panel.state("v1.1.0"))).content.decode()
    assert "Irreversible: ledger.0002_backfill" in preview


@pytest.mark.skipif(dbtools.BACKEND == "mysql", reason="no rehearsal on MySQL/MariaDB")
def test_rehearse_runs_the_plan_changes_nothing_and_shows_expected_durations(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    page = admin.get(preview_url(target)).content.decode()
    button = re.search(r'<input[^>]*id="rollback-rehearse-button"[^>]*>', page, re.S)
    assert button and "disabled" not in button.group(0)
    assert 'id="rollback-rehearsal"' not in page
    before = panel.everything()
    response = admin.post(
        preview_url(target), {"rehearse": "1", "fingerprint": fingerprint(admin, target)}
    )
    assert response.status_code == 200
    assert any("Rehearsal: 3 migrations ran in" in m for m in messages_of(response))
    page = response.content.decode()
    assert 'id="rollback-rehearsal"' in page and "Expected duration" in page
    assert len(re.findall(r"rollback-expected", page)) == 3
    after = panel.everything()
    after.pop("logs"), before.pop("logs")
    assert after == before
    log = RollbackLog.objects.get()
    assert (log.status, log.source, log.error) == ("rehearsal", "admin", "")
    assert set(log.plan["step_seconds"]) == {s["migration"] for s in log.plan["steps"]}
    # A later preview of the same plan still shows what the rehearsal measured.
    again = admin.get(preview_url(target)).content.decode()
    assert "Expected duration" in again and f"audit entry {log.pk}" in again


@pytest.mark.skipif(dbtools.BACKEND != "mysql", reason="MySQL/MariaDB only")
def test_rehearse_is_offered_nowhere_and_refused_on_mysql(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    page = admin.get(preview_url(target)).content.decode()
    assert re.search(r'<input[^>]*id="rollback-rehearse-button"[^>]*disabled', page, re.S)
    before = panel.everything()
    response = admin.post(
        preview_url(target), {"rehearse": "1", "fingerprint": fingerprint(admin, target)}
    )
    assert any("Cannot rehearse on" in m for m in messages_of(response))
    assert panel.everything() == before
