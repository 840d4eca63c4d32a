"""Rollbacks approved by a second person (DJANGO_ROLLBACK["APPROVALS"]): the admin's request,
approve, reject, cancel, expiry and stale plans, and `rollback_migrations --approved`, against
the panel's real release history."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from django_rollback.models import APPROVAL_BYPASSED, MigrationState, RollbackLog

from .panel.history import PanelHistory

CHANGELIST = "/admin/django_rollback/migrationstate/"
LOG_LIST = "/admin/django_rollback/rollbacklog/"
VIEW = ("view_migrationstate", "view_rollbacklog")
OPERATOR = (*VIEW, "rollback_migrationstate")
APPROVER = (*VIEW, "approve_rollback")
pytestmark = pytest.mark.usefixtures("inline_runner")
Status = RollbackLog.Status


def preview_url(state: MigrationState) -> str:
    return f"{CHANGELIST}{state.pk}/rollback/"


def approval_url(log: RollbackLog) -> str:
    return f"{LOG_LIST}{log.pk}/approval/"


def login(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]] if response.context else []


def fingerprint(client: Client, state: MigrationState) -> str:
    page = client.get(preview_url(state)).content.decode()
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture
def approvals(panel: PanelHistory, settings):  # type: ignore[no-untyped-def]
    """Approvals on (one approval needed); returns a setter for other values."""

    def configure(**values: object) -> None:
        settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, **values}

    configure(APPROVALS=1)
    return configure


@pytest.fixture
def alice(approvals) -> Client:  # type: ignore[no-untyped-def]
    """The operator on call: may request a rollback, may not approve one."""
    return login("alice", *OPERATOR)


@pytest.fixture
def bob(approvals) -> Client:  # type: ignore[no-untyped-def]
    """The second person: may approve."""
    return login("bob", *APPROVER)


def request_rollback(
    client: Client, panel: PanelHistory, reason: str = "v2.0.0 corrupts stock"
) -> RollbackLog:
    target = panel.state("v1.2.0")
    response = client.post(
        preview_url(target),
        {"confirm": "1", "fingerprint": fingerprint(client, target), "reason": reason},
    )
    log = RollbackLog.objects.order_by("-id").first()
    assert log is not None and log.status == Status.AWAITING_APPROVAL, messages_of(response)
    assert response.status_code == 302 and response["Location"] == approval_url(log)
    return log


def still_at_v200(panel: PanelHistory) -> None:
    from . import dbtools

    assert dbtools.applied(panel.url) == panel.releases["v2.0.0"].applied
    assert dbtools.schema(panel.url) == panel.releases["v2.0.0"].schema


# --- requesting ----------------------------------------------------------------------------


def test_the_confirm_becomes_a_request_that_needs_a_reason_and_runs_nothing(
    alice: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    page = alice.get(preview_url(target)).content.decode()
    assert 'value="Request rollback"' in page and "Yes, roll back" not in page
    assert re.search(r'<textarea[^>]*name="reason"[^>]*required', page)
    before = panel.everything()
    token = fingerprint(alice, target)
    response = alice.post(
        preview_url(target), {"confirm": "1", "fingerprint": token, "reason": "  "}, follow=True
    )
    assert any("needs a reason" in m for m in messages_of(response))
    assert panel.everything() == before

    log = request_rollback(alice, panel)
    assert alice.post(approval_url(log), {"approve": "1"}).status_code == 403  # forged
    assert log.user == "alice" and log.reason == "v2.0.0 corrupts stock"
    assert log.fingerprint == token and log.approvals_needed == 1
    assert {step["migration"] for step in log.plan["steps"]} == {
        "ledger.0003_entry_note",
        "inventory.0005_warehouse_city",
        "inventory.0004_stock",
    }
    assert log.to_commit == panel.releases["v1.2.0"].sha
    assert log.expires_at is not None
    assert timedelta(seconds=3590) < log.expires_at - log.started_at <= timedelta(seconds=3600)
    assert [e["event"] for e in log.approval_trail] == ["requested"]
    still_at_v200(panel)
    page = alice.get(approval_url(log)).content.decode()
    assert "v2.0.0 corrupts stock" in page and "awaiting approval" in page
    # a second request while this one is open is refused
    response = alice.post(
        preview_url(target),
        {"confirm": "1", "fingerprint": token, "reason": "again"},
        follow=True,
    )
    assert any(
        f"Rollback request {log.pk} is already awaiting approval" in m
        for m in messages_of(response)
    )
    assert RollbackLog.objects.count() == 1


def test_with_approvals_off_the_confirm_rolls_back_as_before(
    panel: PanelHistory, admin_client: Client
) -> None:
    target = panel.state("v1.2.0")
    page = admin_client.get(preview_url(target)).content.decode()
    assert "Yes, roll back" in page and 'name="reason"' not in page
    admin_client.post(
        preview_url(target), {"confirm": "1", "fingerprint": fingerprint(admin_client, target)}
    )
    assert RollbackLog.objects.get().status == Status.SUCCEEDED
    assert RollbackLog.objects.get().approval_trail == []


# --- who may decide ------------------------------------------------------------------------


def test_the_requester_cannot_approve_even_with_the_permission(
    approvals, panel: PanelHistory
) -> None:  # type: ignore[no-untyped-def]
    both = login("carol", *OPERATOR, "approve_rollback")
    log = request_rollback(both, panel)
    page = both.get(approval_url(log)).content.decode()
    assert 'name="approve"' not in page and 'name="approve_and_run"' not in page
    assert 'name="cancel"' in page
    before = panel.everything()
    for button in ("approve", "approve_and_run"):
        response = both.post(approval_url(log), {button: "1"}, follow=True)
        assert any("you requested" in m.lower() and "yourself" in m for m in messages_of(response))
    log.refresh_from_db()
    assert log.status == Status.AWAITING_APPROVAL and log.approvers == []
    assert panel.everything() == before


def test_staff_without_approve_rollback_see_no_button_and_are_refused(
    alice: Client, panel: PanelHistory
) -> None:
    log = request_rollback(alice, panel)
    dave = login("dave", *OPERATOR)
    page = dave.get(approval_url(log)).content.decode()
    assert "v2.0.0 corrupts stock" in page
    assert 'name="approve"' not in page and 'name="reject"' not in page
    assert 'name="cancel"' not in page  # not his request either
    for button in ("approve", "approve_and_run", "reject"):
        assert dave.post(approval_url(log), {button: "1", "comment": "x"}).status_code == 403
    response = dave.post(approval_url(log), {"cancel": "1"}, follow=True)
    assert any("Only its requester (alice)" in m for m in messages_of(response))
    log.refresh_from_db()
    assert log.status == Status.AWAITING_APPROVAL
    still_at_v200(panel)


def test_approvers_find_the_request_in_the_log_and_the_states_list(
    alice: Client, bob: Client, panel: PanelHistory
) -> None:
    log = request_rollback(alice, panel)
    RollbackLog.objects.create(status=Status.DRY_RUN, from_commit="a" * 40, to_commit="b" * 40)
    listing = bob.get(LOG_LIST, {"approval": "awaiting"}).content.decode()
    assert "Awaiting approval" in listing
    rows = listing[listing.index('id="result_list"') :]
    rows = rows[rows.index("<tbody>") : rows.index("</tbody>")]
    assert rows.count("<tr") == 1 and f"{LOG_LIST}{log.pk}/change/" in rows  # not the dry run
    states = bob.get(CHANGELIST).content.decode()
    pending = states[states.index('id="rollback-pending-requests"') :]
    assert f"Rollback request {log.pk}" in pending and "alice" in pending
    assert approval_url(log) in pending
    page = bob.get(approval_url(log)).content.decode()
    for button in ("approve_and_run", "approve", "reject"):
        assert f'name="{button}"' in page
    assert 'name="cancel"' not in page
    entry = bob.get(f"{LOG_LIST}{log.pk}/change/").content.decode()
    assert approval_url(log) in entry and "v2.0.0 corrupts stock" in entry


# --- decisions -----------------------------------------------------------------------------


def test_approve_and_run_rolls_back_in_the_background_runner(
    alice: Client, bob: Client, panel: PanelHistory
) -> None:
    from . import dbtools

    log = request_rollback(alice, panel)
    response = bob.post(approval_url(log), {"approve_and_run": "1", "comment": "go"})
    assert response.status_code == 302 and response["Location"] == f"{LOG_LIST}{log.pk}/change/"
    log.refresh_from_db()
    assert log.status == Status.SUCCEEDED, log.error
    assert log.user == "alice" and log.approvers == ["bob"]
    assert [e["event"] for e in log.approval_trail] == ["requested", "approved"]
    assert log.approval_trail[1]["comment"] == "go"
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    assert dbtools.applied(panel.url) == panel.releases["v1.2.0"].applied
    assert RollbackLog.objects.count() == 1  # the request's own entry ran, no second one
    entry = bob.get(f"{LOG_LIST}{log.pk}/change/").content.decode()
    assert "succeeded" in entry and "bob" in entry and "go" in entry


def test_approve_leaves_it_for_a_terminal_and_the_command_runs_it(
    alice: Client, bob: Client, panel: PanelHistory, capsys
) -> None:  # type: ignore[no-untyped-def]

    from . import dbtools

    log = request_rollback(alice, panel)
    response = bob.post(approval_url(log), {"approve": "1"}, follow=True)
    assert any(f"--approved {log.pk}" in m for m in messages_of(response))
    log.refresh_from_db()
    assert log.status == Status.APPROVED
    still_at_v200(panel)
    out = StringIO()
    call_command("rollback_migrations", "--approved", str(log.pk), stdout=out)
    assert "Rollback successfully finished" in out.getvalue()
    said = out.getvalue()
    assert f"Running rollback request {log.pk}, requested by alice (v2.0.0 corrupts" in said
    assert "approved by bob." in said and "3 migrations in 2 apps to unapply" in said
    assert said.index("Running rollback request") < said.index("Unapplying")
    log.refresh_from_db()
    assert log.status == Status.SUCCEEDED
    assert [e["event"] for e in log.approval_trail] == ["requested", "approved", "run"]
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    assert RollbackLog.objects.count() == 1


def test_an_approved_request_stays_approved_while_another_rollback_holds_the_lock(
    alice: Client, bob: Client, panel: PanelHistory
) -> None:
    from . import dbtools

    log = request_rollback(alice, panel)
    bob.post(approval_url(log), {"approve": "1"})
    log.refresh_from_db()
    before, trail = panel.everything(), log.approval_trail
    with dbtools.rollback_lock_held(panel.url), pytest.raises(CommandError) as refused:
        call_command("rollback_migrations", "--approved", str(log.pk), stdout=StringIO())
    assert "Another rollback is running" in str(refused.value)
    assert panel.everything() == before
    log.refresh_from_db()
    assert log.status == Status.APPROVED and log.approval_trail == trail and log.pid is None
    call_command("rollback_migrations", "--approved", str(log.pk), stdout=StringIO())
    log.refresh_from_db()
    assert log.status == Status.SUCCEEDED


def test_two_approvals_needed_from_two_other_people(
    approvals, alice: Client, bob: Client, panel: PanelHistory
) -> None:  # type: ignore[no-untyped-def]
    approvals(APPROVALS=2)
    log = request_rollback(alice, panel)
    response = bob.post(approval_url(log), {"approve_and_run": "1"}, follow=True)
    assert any("1 of 2 approvals" in m for m in messages_of(response))
    log.refresh_from_db()
    assert log.status == Status.AWAITING_APPROVAL
    response = bob.post(approval_url(log), {"approve": "1"}, follow=True)
    assert any("approved rollback request" in m and "already" in m for m in messages_of(response))
    still_at_v200(panel)
    erin = login("erin", *APPROVER)
    erin.post(approval_url(log), {"approve_and_run": "1"})
    log.refresh_from_db()
    assert log.status == Status.SUCCEEDED and log.approvers == ["bob", "erin"]


def test_reject_needs_a_comment_and_the_request_never_runs(
    alice: Client, bob: Client, panel: PanelHistory
) -> None:
    log = request_rollback(alice, panel)
    response = bob.post(approval_url(log), {"reject": "1", "comment": ""}, follow=True)
    assert any("Say why" in m for m in messages_of(response))
    bob.post(approval_url(log), {"reject": "1", "comment": "fix forward instead"})
    log.refresh_from_db()
    assert log.status == Status.REJECTED
    assert log.approval_trail[-1]["user"] == "bob"
    assert log.approval_trail[-1]["comment"] == "fix forward instead"
    response = bob.post(approval_url(log), {"approve_and_run": "1"}, follow=True)
    assert any("was rejected by bob: it never runs" in m for m in messages_of(response))
    still_at_v200(panel)
    page = alice.get(approval_url(log)).content.decode()
    assert "fix forward instead" in page and 'name="cancel"' not in page


def test_the_requester_cancels(alice: Client, bob: Client, panel: PanelHistory) -> None:
    log = request_rollback(alice, panel)
    alice.post(approval_url(log), {"cancel": "1"})
    log.refresh_from_db()
    assert log.status == Status.CANCELLED and log.approval_trail[-1]["user"] == "alice"
    response = bob.post(approval_url(log), {"approve": "1"}, follow=True)
    assert any("was cancelled by alice" in m for m in messages_of(response))
    still_at_v200(panel)


def test_a_request_expires_after_the_ttl(
    approvals, alice: Client, bob: Client, panel: PanelHistory
) -> None:  # type: ignore[no-untyped-def]
    approvals(APPROVAL_TTL=60)
    log = request_rollback(alice, panel)
    assert log.expires_at and log.expires_at - log.started_at == timedelta(seconds=60)
    RollbackLog.objects.filter(pk=log.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = bob.get(approval_url(log)).content.decode()
    assert 'name="approve"' not in page and "expired" in page
    log.refresh_from_db()
    assert log.status == Status.EXPIRED
    response = bob.post(approval_url(log), {"approve_and_run": "1"}, follow=True)
    assert any("expired at" in m and "nothing was run" in m for m in messages_of(response))
    still_at_v200(panel)
    # the states list no longer says a request is pending
    assert 'id="rollback-pending-requests"' not in bob.get(CHANGELIST).content.decode()


def test_approving_a_stale_plan_is_refused_and_the_request_becomes_stale(
    alice: Client, bob: Client, panel: PanelHistory
) -> None:
    from . import dbtools

    log = request_rollback(alice, panel)
    call_command("migrate", "ledger", "0002_backfill", verbosity=0)  # someone migrated by hand
    applied = dbtools.applied(panel.url)
    response = bob.post(approval_url(log), {"approve_and_run": "1"}, follow=True)
    assert any(
        "changed since rollback request" in m and "stale" in m for m in messages_of(response)
    )
    log.refresh_from_db()
    assert log.status == Status.STALE and log.approvers == []
    assert dbtools.applied(panel.url) == applied


# --- the command line ----------------------------------------------------------------------


def make_request(panel: PanelHistory, status: str) -> RollbackLog:
    """A request in the given status, made through the admin as users would."""
    alice = login(f"alice-{status}", *OPERATOR)
    log = request_rollback(alice, panel)
    bob = login(f"bob-{status}", *APPROVER)
    if status == "rejected":
        bob.post(approval_url(log), {"reject": "1", "comment": "no"})
    elif status == "cancelled":
        alice.post(approval_url(log), {"cancel": "1"})
    elif status == "expired":
        RollbackLog.objects.filter(pk=log.pk).update(expires_at=timezone.now())
        bob.get(approval_url(log))
    elif status == "stale":
        bob.post(approval_url(log), {"approve": "1"})
        call_command("migrate", "ledger", "0002_backfill", verbosity=0)
        with pytest.raises(CommandError):
            call_command("rollback_migrations", "--approved", str(log.pk))
    elif status == "succeeded":
        bob.post(approval_url(log), {"approve_and_run": "1"})
    log.refresh_from_db()
    assert log.status == status, (log.status, log.error)
    return log


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("awaiting_approval", "is awaiting approval (0 of 1): it cannot run before it is approved"),
        ("rejected", "was rejected by bob-rejected: it never runs"),
        ("cancelled", "was cancelled by alice-cancelled: it never runs"),
        ("expired", "expired at"),
        ("stale", "is stale"),
        ("succeeded", "has run already (succeeded"),
    ],
)
def test_approved_refuses_every_other_request_in_one_line(
    approvals, panel: PanelHistory, status: str, says: str
) -> None:  # type: ignore[no-untyped-def]
    log = make_request(panel, status)
    before, trail = panel.everything(), log.approval_trail
    with pytest.raises(CommandError) as refused:
        call_command("rollback_migrations", "--approved", str(log.pk))
    message = str(refused.value)
    assert says in message and "\n" not in message, message
    assert refused.value.returncode == 1
    assert panel.everything() == before
    log.refresh_from_db()
    assert log.status == status and log.approval_trail == trail


@pytest.mark.parametrize("value", ["999", "x1"])
def test_approved_refuses_an_unknown_request(approvals, panel: PanelHistory, value: str) -> None:  # type: ignore[no-untyped-def]
    before = panel.everything()
    with pytest.raises(CommandError, match=f"There is no rollback request with id {value}"):
        call_command("rollback_migrations", "--approved", value)
    assert panel.everything() == before


def test_approved_refuses_a_log_entry_that_is_no_request(approvals, panel: PanelHistory) -> None:  # type: ignore[no-untyped-def]
    call_command("rollback_migrations", "-t", "v1.2.0", "--fake", verbosity=0)
    dry_run = RollbackLog.objects.get()
    before = panel.everything()
    with pytest.raises(CommandError, match="is no rollback request"):
        call_command("rollback_migrations", "--approved", str(dry_run.pk))
    assert panel.everything() == before


def test_approved_goes_alone(approvals, panel: PanelHistory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="drop the other options"):
        call_command("rollback_migrations", "--approved", "1", "-t", "v1.2.0")


def test_the_command_line_is_not_blocked_but_says_it_bypassed_approvals(
    approvals, panel: PanelHistory, admin_client: Client
) -> None:  # type: ignore[no-untyped-def]

    err = StringIO()
    call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO(), stderr=err)
    assert "approvals are on" in err.getvalue()
    log = RollbackLog.objects.get()
    assert log.status == Status.SUCCEEDED
    assert [(e["event"], e["comment"]) for e in log.approval_trail] == [
        ("bypassed", APPROVAL_BYPASSED)
    ]
    assert APPROVAL_BYPASSED in admin_client.get(f"{LOG_LIST}{log.pk}/change/").content.decode()


def test_with_approvals_off_the_command_line_log_says_nothing_of_them(panel: PanelHistory) -> None:

    call_command("rollback_migrations", "-t", "v1.2.0", "--no-input", stdout=StringIO())
    assert RollbackLog.objects.get().approval_trail == []
