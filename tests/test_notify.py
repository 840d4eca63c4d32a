"""Notifications (django_rollback.notify): e-mails through Django's mail machinery (the locmem
backend here), webhooks received by real HTTP servers on 127.0.0.1, from every entry point;
a webhook that fails or never answers is cut at the timeout, logged and shown on the log
entry, and the rollback still succeeds."""

from __future__ import annotations

import logging
import re
import time
from io import StringIO
from typing import Any

import django
import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client

from django_rollback import background, services
from django_rollback.checks import check_notify
from django_rollback.models import RollbackLog

from .gitrepo import commit_release, write_release
from .panel.history import PanelHistory
from .webhooks import webhook_server

CHANGELIST = "/admin/django_rollback/migrationstate/"
BASE_URL = "https://ops.example.com"
# ADMINS: Django 6.0 takes addresses and deprecates (name, address) pairs; 5.2 takes only pairs.
ONCALL: list[Any] = (
    ["oncall@example.com"] if django.VERSION >= (6, 0) else [("Ops", "oncall@example.com")]
)


@pytest.fixture
def notify(panel: PanelHistory, settings: Any):  # type: ignore[no-untyped-def]
    """Sets DJANGO_ROLLBACK["NOTIFY"] beside the panel's REPO_PATH."""

    def configure(**values: Any) -> None:
        settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, "NOTIFY": values}

    return configure


def roll_back_by_command() -> RollbackLog:
    call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    return RollbackLog.objects.get(status="succeeded")


def test_a_rollback_mails_and_posts_started_and_finished(
    panel: PanelHistory, notify: Any, mailoutbox: list[Any]
) -> None:
    with webhook_server() as hook:
        notify(EMAILS=["ops@example.com"], WEBHOOKS=[hook.url], BASE_URL=BASE_URL + "/")
        log = roll_back_by_command()
    v2, v12 = panel.releases["v2.0.0"].sha, panel.releases["v1.2.0"].sha
    assert [doc["event"] for doc in hook.received] == ["rollback_started", "rollback_finished"]
    assert all(h["Content-Type"] == "application/json" for h in hook.headers_seen)
    link = f"{BASE_URL}/admin/django_rollback/rollbacklog/{log.pk}/change/"
    finished = hook.received[1]
    assert finished == {
        "event": "rollback_finished",
        "database": "default",
        "from": {"commit": v2, "tags": ["v2.0.0"]},
        "to": {"commit": v12, "tags": ["v1.2.0"]},
        "outcome": "succeeded",
        "user": log.user or None,
        "log_id": log.pk,
        "url": link,
        "error": None,
        "text": (
            f"Rollback succeeded{f' by {log.user}' if log.user else ''} on database 'default': "
            f"{v2[:10]} ['v2.0.0'] → {v12[:10]} ['v1.2.0']. <{link}|log entry {log.pk}>"
        ),
    }
    assert hook.received[0]["outcome"] is None and hook.received[0]["url"] == link
    assert [m.to for m in mailoutbox] == [["ops@example.com"], ["ops@example.com"]]
    assert mailoutbox[1].subject.startswith("[django-rollback] Rollback succeeded")
    assert f"Log entry: {link}" in mailoutbox[1].body
    assert "Notification failed" not in log.output  # nothing failed: nothing written


def test_admins_get_the_mail_through_mail_admins(
    panel: PanelHistory, notify: Any, mailoutbox: list[Any], settings: Any
) -> None:
    settings.ADMINS = ONCALL
    notify(EMAILS="ADMINS", EVENTS=["rollback_finished"])
    roll_back_by_command()
    assert len(mailoutbox) == 1  # EVENTS: only the end
    assert mailoutbox[0].to == ["oncall@example.com"]
    assert mailoutbox[0].subject.startswith(settings.EMAIL_SUBJECT_PREFIX + "[django-rollback]")


@pytest.mark.usefixtures("inline_runner")
def test_a_webhook_that_never_answers_is_cut_and_shown_on_the_entry(
    panel: PanelHistory, notify: Any, admin_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """From the admin (its runner, in-process here), with a second webhook that works."""
    with webhook_server("hang") as hanging, webhook_server() as working:
        notify(WEBHOOKS=[hanging.url, working.url], TIMEOUT=1)
        target = panel.state("v1.2.0")
        url = f"{CHANGELIST}{target.pk}/rollback/"
        token = re.search(r'name="fingerprint" value="([0-9a-f]+)"', admin_client.get(url).text)
        assert token
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="django_rollback.notify"):
            admin_client.post(url, {"confirm": "1", "fingerprint": token.group(1)})
        seconds = time.monotonic() - began
    log = RollbackLog.objects.get()
    assert log.status == "succeeded" and log.source == "admin"
    assert services.overview().current is None  # rolled back: HEAD's state is gone
    cut = f"Notification failed: webhook {hanging.url}: no answer within 1s"
    assert log.output.splitlines()[-2:] == [cut, cut]  # started, then finished
    assert log.output.splitlines()[0].startswith("Unapplying ")  # the steps are all kept
    assert len(hanging.received) == 2  # it got the POSTs, it just never answered
    assert [d["event"] for d in working.received] == ["rollback_started", "rollback_finished"]
    assert seconds < 30  # two cuts of 1 s, not the 60 s the server would hang
    warnings = [r.getMessage() for r in caplog.records if r.name == "django_rollback.notify"]
    assert warnings == [
        f"Notification of {e} failed: webhook {hanging.url}: no answer within 1s"
        for e in ("rollback_started", "rollback_finished")
    ]
    page = admin_client.get(f"/admin/django_rollback/rollbacklog/{log.pk}/change/").text
    assert cut in page


def test_the_background_runner_notifies_and_records_an_http_error(
    panel: PanelHistory, notify: Any, monkeypatch: pytest.MonkeyPatch, mailoutbox: list[Any]
) -> None:
    monkeypatch.setattr(background, "launch", lambda log: None)
    with webhook_server("error") as broken:
        notify(WEBHOOKS=[broken.url], EMAILS=["ops@example.com"], EVENTS=["rollback_finished"])
        plan = services.plan_rollback(tag="v1.2.0", count_rows=False)
        queued = services.start_rollback(plan, user="ops")
        assert background.run_queued(queued.pk, "default") == 0
    log = RollbackLog.objects.get(pk=queued.pk)
    assert log.status == "succeeded"
    assert log.output.splitlines()[-1] == (
        f"Notification failed: webhook {broken.url}: HTTP 500 Internal Server Error"
    )
    assert [d["user"] for d in broken.received] == ["ops"]
    assert len(mailoutbox) == 1 and "Rollback succeeded by ops" in mailoutbox[0].subject


def test_a_failed_rollback_is_notified_with_its_error(
    panel: PanelHistory, notify: Any, mailoutbox: list[Any]
) -> None:
    from django.db import connection

    notify(EMAILS=["ops@example.com"], EVENTS=["rollback_finished"])
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE inventory_stock RENAME TO inventory_stock_away")
    try:
        with pytest.raises(Exception, match="Rollback failed"):
            roll_back_by_command()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE inventory_stock_away RENAME TO inventory_stock")
    assert len(mailoutbox) == 1
    assert "Rollback failed" in mailoutbox[0].subject
    assert "Rollback failed at inventory.0004_stock" in mailoutbox[0].body


def test_saves_and_restores_are_notified(panel: PanelHistory, notify: Any) -> None:
    with webhook_server() as hook:
        notify(WEBHOOKS=[hook.url], EVENTS=["state_saved", "archive_restored"], BASE_URL=BASE_URL)
        write_release(panel.repo, {"RELEASE": "v2.0.1"})
        sha = commit_release(panel.repo, "v2.0.1")
        call_command("save_migrations_state", stdout=StringIO())
        call_command("save_migrations_state", stdout=StringIO())  # unchanged: no event
        call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
        call_command("migrate", verbosity=0)
        log = RollbackLog.objects.filter(status="succeeded").order_by("-id").first()
        assert log is not None
        call_command("restore_rollback_archive", str(log.pk), stdout=StringIO())
    saved, restored = hook.received
    assert saved["event"] == "state_saved" and saved["to"] == {"commit": sha, "tags": ["v2.0.1"]}
    assert saved["from"]["tags"] == ["v2.0.0"]
    assert restored["event"] == "archive_restored" and restored["log_id"] == log.pk
    assert restored["url"] == f"{BASE_URL}/admin/django_rollback/rollbacklog/{log.pk}/change/"
    assert restored["text"].startswith(f"Archive of rollback log entry {log.pk} restored")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ops@example.com", 'DJANGO_ROLLBACK["NOTIFY"] must be a dict, not str.'),
        ({"EMAIL": []}, 'DJANGO_ROLLBACK["NOTIFY"] has unknown key(s) EMAIL: use EMAILS, '),
        ({"EMAILS": "ops@example.com"}, '["EMAILS"] must be a list of addresses or "ADMINS"'),
        ({"EMAILS": ["ops"]}, """["EMAILS"] has invalid address(es): ['ops']."""),
        ({"WEBHOOKS": ["ftp://x"]}, """["WEBHOOKS"] has URL(s) that are not http(s)://"""),
        ({"TIMEOUT": 0}, '["TIMEOUT"] must be a number of seconds above 0, not 0.'),
        ({"BASE_URL": "ops.example.com"}, '["BASE_URL"] must be an http(s):// URL'),
        ({"EVENTS": ["rollback_done"]}, """["EVENTS"] has unknown event(s) ['rollback_done']"""),
    ],
)
@pytest.mark.django_db(databases="__all__")  # Django 6.1 checks every database
def test_a_bad_setting_is_one_line_from_the_system_checks(
    settings: Any, value: Any, message: str
) -> None:
    settings.DJANGO_ROLLBACK = {"NOTIFY": value}
    found = check_notify()
    assert len(found) == 1 and found[0].id == "django_rollback.E001"
    assert found[0].level == checks.ERROR
    assert message in found[0].msg and "\n" not in found[0].msg
    registered = checks.run_checks()  # what `manage.py check` runs (without the databases)
    assert [m.id for m in registered if m.id.startswith("django_rollback")] == [
        "django_rollback.E001"
    ]


def test_a_good_setting_passes_the_checks(settings: Any) -> None:
    settings.DJANGO_ROLLBACK = {
        "NOTIFY": {
            "EMAILS": "ADMINS",
            "WEBHOOKS": ["https://hooks.example.com/x"],
            "TIMEOUT": 2.5,
            "BASE_URL": BASE_URL,
            "EVENTS": ["rollback_finished"],
        }
    }
    assert check_notify() == []


def test_a_bad_setting_never_breaks_a_rollback(
    panel: PanelHistory, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, "NOTIFY": {"TIMEOUT": -1}}
    with caplog.at_level(logging.ERROR, logger="django_rollback.notify"):
        log = roll_back_by_command()
    assert log.status == "succeeded"
    assert any("must be a number of seconds above 0" in r.getMessage() for r in caplog.records)
