"""The signals of django_rollback.signals: sent by the services, so once per event from
every entry point (the command, the admin's confirmation, the background runner), and a
receiver that raises never breaks what sent it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from django_rollback import archive, background, services, signals
from django_rollback.models import MigrationState, RollbackLog

from .gitrepo import commit_release, write_release
from .panel.history import PanelHistory

CHANGELIST = "/admin/django_rollback/migrationstate/"


@dataclass
class Recorder:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> dict[str, Any]:
        found = [kwargs for event, kwargs in self.events if event == name]
        assert len(found) == 1, self.names
        return found[0]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    seen = Recorder()
    receivers = {}
    for name, signal in signals.EVENTS.items():

        def receive(sender: Any, name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            seen.events.append((name, {"sender": sender, **kwargs}))

        receivers[name] = receive
        signal.connect(receive, dispatch_uid=f"test-{name}")
    yield seen
    for name, signal in signals.EVENTS.items():
        signal.disconnect(dispatch_uid=f"test-{name}")


def confirm_in_admin(client: Client, state: MigrationState) -> None:
    url = f"{CHANGELIST}{state.pk}/rollback/"
    page = client.get(url).content.decode()
    token = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert token, page
    client.post(url, {"confirm": "1", "fingerprint": token.group(1)})


def assert_one_rollback(recorder: Recorder, target: MigrationState, outcome: str) -> RollbackLog:
    assert recorder.names == ["rollback_started", "rollback_finished"]
    log = RollbackLog.objects.get(status=outcome)
    started, finished = recorder.of("rollback_started"), recorder.of("rollback_finished")
    for sent in (started, finished):
        assert sent["sender"] is RollbackLog
        assert sent["log"].pk == log.pk
        assert sent["plan"].target.pk == target.pk
        assert sent["database"] == "default"
    assert finished["outcome"] == outcome
    return log


def test_the_command_sends_started_and_finished_once(
    panel: PanelHistory, recorder: Recorder
) -> None:
    target = panel.state("v1.2.0")
    call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    log = assert_one_rollback(recorder, target, "succeeded")
    assert recorder.of("rollback_finished")["error"] == ""
    assert log.source == "command"


@pytest.mark.usefixtures("inline_runner")
def test_the_admin_confirmation_sends_started_and_finished_once(
    panel: PanelHistory, recorder: Recorder, admin_client: Client
) -> None:
    target = panel.state("v1.2.0")
    confirm_in_admin(admin_client, target)
    log = assert_one_rollback(recorder, target, "succeeded")
    assert log.source == "admin" and recorder.of("rollback_started")["user"] == "admin"


def test_the_background_runner_sends_them_once(
    panel: PanelHistory, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the detached runner process does, in this process: the queued entry, then
    run_queued() (a separate process would not see the test database)."""
    monkeypatch.setattr(background, "launch", lambda log: None)
    target = panel.state("v1.2.0")
    plan = services.plan_rollback(tag="v1.2.0", count_rows=False)
    queued = services.start_rollback(plan, user="ops")
    assert recorder.names == []  # queued is not started
    assert background.run_queued(queued.pk, "default") == 0
    log = assert_one_rollback(recorder, target, "succeeded")
    assert log.pk == queued.pk and recorder.of("rollback_finished")["user"] == "ops"


def test_a_failed_rollback_finishes_with_its_error(panel: PanelHistory, recorder: Recorder) -> None:
    target = panel.state("v1.2.0")
    with connection.cursor() as cursor:  # the step that drops inventory_stock will fail
        cursor.execute("ALTER TABLE inventory_stock RENAME TO inventory_stock_away")
    try:
        with pytest.raises(Exception, match="Rollback failed"):
            call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE inventory_stock_away RENAME TO inventory_stock")
    assert_one_rollback(recorder, target, "failed")
    assert "inventory.0004_stock" in recorder.of("rollback_finished")["error"]


def test_refusals_dry_runs_and_rehearsals_send_nothing(
    panel: PanelHistory, recorder: Recorder
) -> None:
    call_command("rollback_migrations", "-t", "v1.2.0", "--fake", stdout=StringIO())
    with pytest.raises(Exception, match="Unknown tag"):
        call_command("rollback_migrations", "-t", "v9", "--no-input", stdout=StringIO())
    if connection.features.can_rollback_ddl:
        call_command("rollback_migrations", "-t", "v1.2.0", "--rehearse", stdout=StringIO())
    assert recorder.names == []


def test_a_receiver_that_raises_is_logged_and_the_rollback_goes_on(
    panel: PanelHistory, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver broke")

    signals.rollback_started.connect(broken, dispatch_uid="broken")
    signals.rollback_finished.connect(broken, dispatch_uid="broken")
    try:
        with caplog.at_level(logging.ERROR, logger="django_rollback.signals"):
            call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    finally:
        signals.rollback_started.disconnect(dispatch_uid="broken")
        signals.rollback_finished.disconnect(dispatch_uid="broken")
    assert_one_rollback(recorder, panel.state("v1.2.0"), "succeeded")
    ours = [r.getMessage() for r in caplog.records if r.name == "django_rollback.signals"]
    where = "test_a_receiver_that_raises_is_logged_and_the_rollback_goes_on.<locals>.broken"
    assert ours == [
        f"A receiver of django_rollback's {name} signal failed: receiver broke ({where})"
        for name in ("rollback_started", "rollback_finished")
    ]


def test_state_saved_only_when_a_state_is_recorded(panel: PanelHistory, recorder: Recorder) -> None:
    services.save_state(repo_path=panel.repo, allow_unapplied=True)  # HEAD again, unchanged
    assert recorder.names == []
    write_release(panel.repo, {"RELEASE": "v2.0.1"})
    sha = commit_release(panel.repo, "v2.0.1")
    call_command("save_migrations_state", stdout=StringIO())  # the command, on a new commit
    call_command("save_migrations_state", stdout=StringIO())
    sent = recorder.of("state_saved")
    assert recorder.names == ["state_saved"]
    assert sent["sender"] is MigrationState and sent["created"] is True
    assert sent["state"].commit == sha and sent["state"].tags == ["v2.0.1"]
    assert sent["previous"].commit == panel.releases["v2.0.0"].sha
    assert sent["database"] == "default"


def test_archive_restored_once_and_not_for_a_fake_restore(
    panel: PanelHistory, recorder: Recorder
) -> None:
    call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    call_command("migrate", verbosity=0)  # the newer release deployed again
    recorder.events.clear()
    log = RollbackLog.objects.get(status="succeeded")
    call_command("restore_rollback_archive", str(log.pk), "--fake", stdout=StringIO())
    assert recorder.names == []
    call_command("restore_rollback_archive", str(log.pk), stdout=StringIO())
    sent = recorder.of("archive_restored")
    stored = RollbackLog.objects.get(pk=log.pk).archive["restored"]
    assert sent["log"].pk == log.pk and sent["result"].restored == sum(
        item["restored"] for item in stored
    )
    assert not sent["result"].fake and sent["database"] == "default"
    with pytest.raises(archive.ArchiveError):  # restoring twice is refused: no second event
        archive.restore(log)
    assert recorder.names == ["archive_restored"]


def test_a_request_sends_rollback_requested_once_and_nothing_runs(
    panel: PanelHistory, recorder: Recorder, admin_client: Client, settings: Any
) -> None:
    settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, "APPROVALS": 1}
    target = panel.state("v1.2.0")
    url = f"{CHANGELIST}{target.pk}/rollback/"
    page = admin_client.get(url).content.decode()
    token = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert token, page
    admin_client.post(url, {"confirm": "1", "fingerprint": token.group(1), "reason": "bad"})
    assert recorder.names == ["rollback_requested"]
    sent = recorder.of("rollback_requested")
    log = RollbackLog.objects.get(status="awaiting_approval")
    assert sent["log"].pk == log.pk and sent["user"] == "admin"
    assert sent["plan"].target.pk == target.pk and sent["database"] == "default"
