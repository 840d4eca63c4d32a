"""Approvals by a second person in a real Chromium: alice (on call) requests the rollback, bob
(approve_rollback) rejects or approves and runs it. Screenshots land in test-artifacts/screens/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from django_rollback.models import RollbackLog

from . import dbtools
from .panel.history import PanelHistory
from .test_admin_browser import CHANGELIST, LOG_LIST, log_in, shot

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("inline_runner")]
VIEW = ("view_migrationstate", "view_rollbacklog")


@pytest.fixture
def browser_context_args(browser_context_args):  # type: ignore[no-untyped-def]
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture
def people(panel: PanelHistory, settings) -> None:  # type: ignore[no-untyped-def]
    """Approvals on; alice may request a rollback, bob may approve one."""
    settings.DJANGO_ROLLBACK = {**settings.DJANGO_ROLLBACK, "APPROVALS": 1}
    for name, extra in (("alice", "rollback_migrationstate"), ("bob", "approve_rollback")):
        user = User.objects.create_user(name, password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=[*VIEW, extra]))


def as_user(page: Page, base: str, name: str) -> None:
    page.context.clear_cookies()
    log_in(page, base, name, "pw")


def request_as_alice(page: Page, base: str, panel: PanelHistory, reason: str) -> int:
    as_user(page, base, "alice")
    page.goto(f"{base}{CHANGELIST}{panel.state('v1.2.0').pk}/rollback/")
    page.fill("#rollback-reason", reason)
    page.click("#rollback-confirm")
    expect(page).to_have_url(re.compile(re.escape(LOG_LIST) + r"\d+/approval/$"))
    found = re.search(r"/(\d+)/approval/$", page.url)
    assert found
    return int(found.group(1))


def test_alice_requests_bob_rejects_then_approves_and_it_runs(
    browser_page: Page, live_server, panel: PanelHistory, people: None
) -> None:
    page, base = browser_page, live_server.url
    as_user(page, base, "alice")
    page.goto(f"{base}{CHANGELIST}{panel.state('v1.2.0').pk}/rollback/")
    confirm = page.locator("#rollback-confirm")
    expect(confirm).to_have_value("Request rollback")
    confirm.click()  # no reason: the browser keeps the form (the server would refuse it too)
    expect(page).to_have_url(re.compile(r"/rollback/$"))
    assert RollbackLog.objects.count() == 0
    page.fill("#rollback-reason", "v2.0.0 writes wrong stock levels")
    shot(page, "approvals-1-request-form")
    confirm.click()
    expect(page).to_have_url(re.compile(re.escape(LOG_LIST) + r"\d+/approval/$"))
    expect(page.locator(".messagelist .success")).to_contain_text("Rollback requested")
    expect(page.locator("#rollback-request-status")).to_have_text("awaiting approval")
    expect(page.locator("#rollback-reason")).to_have_text("v2.0.0 writes wrong stock levels")
    expect(page.locator("#rollback-own-request")).to_be_visible()
    expect(page.locator("#rollback-approve-run")).to_have_count(0)  # not for her own request
    expect(page.locator("#rollback-approve")).to_have_count(0)
    shot(page, "approvals-2-requested")
    assert dbtools.applied(panel.url) == panel.releases["v2.0.0"].applied

    as_user(page, base, "bob")
    expect(page.locator("#rollback-pending-requests")).to_contain_text("awaiting approval (0 of 1)")
    shot(page, "approvals-3-states-pending")
    page.goto(f"{base}{LOG_LIST}")
    page.get_by_role("link", name="Awaiting approval", exact=True).click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    shot(page, "approvals-4-log-awaiting")
    page.locator("#result_list tbody tr a").first.click()
    page.locator("#rollback-approval-link").click()
    page.click("#rollback-reject")  # without a comment
    expect(page.locator(".messagelist .error")).to_contain_text("Say why")
    page.fill("#rollback-comment", "Fix forward: 2.0.1 is ready")
    page.click("#rollback-reject")
    expect(page.locator("#rollback-request-status")).to_have_text("rejected")
    expect(page.locator("#rollback-trail")).to_contain_text("bob rejected: Fix forward")
    expect(page.locator("#rollback-approve-run")).to_have_count(0)
    shot(page, "approvals-5-rejected")

    second = request_as_alice(page, base, panel, "2.0.1 failed too; go back to v1.2.0")
    as_user(page, base, "bob")
    page.goto(f"{base}{LOG_LIST}{second}/approval/")
    page.fill("#rollback-comment", "Agreed")
    shot(page, "approvals-6-decision")
    page.emulate_media(color_scheme="dark")
    shot(page, "approvals-6-decision-dark")
    page.emulate_media(color_scheme="light")
    page.click("#rollback-approve-run")
    expect(page).to_have_url(re.compile(re.escape(LOG_LIST) + rf"{second}/change/$"))
    expect(page.locator("#rollback-live-status")).to_have_text("succeeded")
    expect(page.locator("#rollback-live-steps")).to_have_text("3 of 3 done")
    expect(page.locator(".field-approval_display")).to_contain_text("bob approved: Agreed")
    shot(page, "approvals-7-ran")
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    assert dbtools.applied(panel.url) == panel.releases["v1.2.0"].applied


def test_expired_and_stale_requests_never_run(
    browser_page: Page, live_server, panel: PanelHistory, people: None
) -> None:
    page, base = browser_page, live_server.url
    first = request_as_alice(page, base, panel, "try one")
    RollbackLog.objects.filter(pk=first).update(expires_at=timezone.now() - timedelta(seconds=1))
    as_user(page, base, "bob")
    page.goto(f"{base}{LOG_LIST}{first}/approval/")
    expect(page.locator("#rollback-request-status")).to_have_text("expired")
    expect(page.locator("#rollback-approve-run")).to_have_count(0)
    shot(page, "approvals-8-expired")

    second = request_as_alice(page, base, panel, "try two")
    call_command("migrate", "ledger", "0002_backfill", verbosity=0)  # by hand, meanwhile
    applied = dbtools.applied(panel.url)
    as_user(page, base, "bob")
    page.goto(f"{base}{LOG_LIST}{second}/approval/")
    page.click("#rollback-approve-run")
    expect(page.locator(".messagelist .error")).to_contain_text("now stale")
    expect(page.locator("#rollback-request-status")).to_have_text("stale")
    shot(page, "approvals-9-stale")
    assert dbtools.applied(panel.url) == applied
