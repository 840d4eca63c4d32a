"""The admin's "Yes, roll back" through Django's test client: it queues the rollback, starts
its runner and returns at once to the entry's live page; the page and its JSON endpoint show
where it stands. (The runner is not started here: a separate process would not see the test
database. tests/test_background.py runs real runners behind a real gunicorn.)"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_rollback import background
from django_rollback.models import MigrationState, RollbackLog

from . import dbtools
from .panel.history import PanelHistory

CHANGELIST = "/admin/django_rollback/migrationstate/"
LOG_LIST = "/admin/django_rollback/rollbacklog/"


def preview_url(state: MigrationState) -> str:
    return f"{CHANGELIST}{state.pk}/rollback/"


def progress_url(log: RollbackLog) -> str:
    return f"{LOG_LIST}{log.pk}/progress/"


def fingerprint(client: Client, state: MigrationState) -> str:
    page = client.get(preview_url(state)).content.decode()
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture
def launched(monkeypatch) -> list[RollbackLog]:  # type: ignore[no-untyped-def]
    """Record the runners the admin starts instead of starting them."""
    started: list[RollbackLog] = []

    def record(log: RollbackLog) -> int | None:
        started.append(log)
        return None

    monkeypatch.setattr(background, "launch", record)
    return started


def confirm(client: Client, state: MigrationState, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        preview_url(state), {"confirm": "1", "fingerprint": fingerprint(client, state), **extra}
    )


def test_confirm_queues_the_rollback_and_returns_to_its_live_page(
    admin_client: Client, panel: PanelHistory, launched: list[RollbackLog]
) -> None:
    target = panel.state("v1.2.0")
    before = panel.everything()
    response = confirm(admin_client, target)
    log = RollbackLog.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{LOG_LIST}{log.pk}/change/"
    assert launched == [log]
    # Nothing ran yet: only the queued entry is new.
    after = panel.everything()
    assert after.pop("logs") != before.pop("logs")
    assert after == before
    assert (log.status, log.steps_total, log.steps_done) == ("queued", 3, 0)
    assert log.to_commit == panel.releases["v1.2.0"].sha and log.user == "admin"

    page = admin_client.get(response["Location"]).content.decode()
    assert "Rollback to commit" in page and "started" in page
    assert 'id="rollback-live"' in page and 'data-active="1"' in page
    assert 'id="rollback-live-steps">0 of 3 done<' in page
    # Without JavaScript the page reloads itself while it runs.
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    assert "closing this page does not stop it" in page

    data = admin_client.get(progress_url(log)).json()
    assert data["status"] == "queued" and data["active"] is True
    assert (data["steps_done"], data["steps_total"]) == (0, 3)

    # The runner's work, done here in-process: the entry ends succeeded, the schema is the
    # target release's, and the page stops reloading.
    assert background.run_queued(log.pk, "default") == 0
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    data = admin_client.get(progress_url(log)).json()
    assert data["status"] == "succeeded" and data["active"] is False
    assert (data["steps_done"], data["steps_total"], data["running_step"]) == (3, 3, None)
    assert "Unapplying inventory.0004_stock... OK" in data["output"]
    page = admin_client.get(response["Location"]).content.decode()
    assert 'data-active="0"' in page and "http-equiv" not in page
    assert 'id="rollback-live-steps">3 of 3 done<' in page


def test_a_runner_that_finds_the_database_changed_does_nothing(
    admin_client: Client, panel: PanelHistory, launched: list[RollbackLog]
) -> None:
    from django.core.management import call_command

    confirm(admin_client, panel.state("v1.2.0"))
    log = RollbackLog.objects.get()
    call_command("migrate", "ledger", "0002_backfill", verbosity=0)  # between POST and runner
    before = panel.everything()
    assert background.run_queued(log.pk, "default") == 1
    log.refresh_from_db()
    assert log.status == "failed" and "changed since the preview" in log.error
    after = panel.everything()
    after.pop("logs"), before.pop("logs")
    assert after == before


def test_a_dead_runner_leaves_its_entry_interrupted(
    admin_client: Client, panel: PanelHistory, launched: list[RollbackLog]
) -> None:
    confirm(admin_client, panel.state("v1.2.0"))
    log = RollbackLog.objects.get()
    # A process that has ended: its pid is free (or reused by a process that is not ours,
    # which the heartbeat would catch on another host; here the pid check decides).
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    RollbackLog.objects.filter(pk=log.pk).update(
        status="running", pid=int(gone.stdout), running_step="inventory.0004_stock"
    )
    data = admin_client.get(progress_url(log)).json()
    assert data["status"] == "interrupted" and data["active"] is False
    assert "stopped at inventory.0004_stock" in data["error"]
    assert "the database is unchanged" in data["error"] or "stay unapplied" in data["error"]
    log.refresh_from_db()
    assert log.status == "interrupted" and log.finished_at is not None


def test_a_second_confirm_is_refused_while_the_first_is_queued(
    admin_client: Client, panel: PanelHistory, launched: list[RollbackLog], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import os

    monkeypatch.setattr(background, "launch", lambda log: os.getpid())  # alive: this process
    confirm(admin_client, panel.state("v1.2.0"))
    response = admin_client.post(
        preview_url(panel.state("v1.2.0")),
        {"confirm": "1", "fingerprint": fingerprint(admin_client, panel.state("v1.2.0"))},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("Another rollback is running" in m and "log entry" in m for m in messages)
    assert RollbackLog.objects.count() == 1


def test_progress_needs_the_view_permission_and_confirm_needs_csrf(
    panel: PanelHistory, launched: list[RollbackLog]
) -> None:
    operator = User.objects.create_user("op", password="pw", is_staff=True)
    operator.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_migrationstate", "view_rollbacklog", "rollback_migrationstate"]
        )
    )
    client = Client()
    client.force_login(operator)
    confirm(client, panel.state("v1.2.0"))
    log = RollbackLog.objects.get()
    assert client.get(progress_url(log)).status_code == 200

    no_log_view = User.objects.create_user("nolog", password="pw", is_staff=True)
    no_log_view.user_permissions.set(
        Permission.objects.filter(codename__in=["view_migrationstate", "rollback_migrationstate"])
    )
    other = Client()
    other.force_login(no_log_view)
    assert other.get(progress_url(log)).status_code == 403
    anonymous = Client().get(progress_url(log))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert Client().get(f"{LOG_LIST}999999/progress/").status_code == 302  # login first
    assert client.get(f"{LOG_LIST}999999/progress/").status_code == 404

    # The confirmation is a POST that changes the database: without the CSRF token it is
    # refused before anything is queued.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    token = fingerprint(strict, panel.state("v1.2.0"))
    response = strict.post(
        preview_url(panel.state("v1.2.0")), {"confirm": "1", "fingerprint": token}
    )
    assert response.status_code == 403
    assert RollbackLog.objects.count() == 1 and len(launched) == 1
