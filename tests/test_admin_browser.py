"""The panel in a real Chromium against the live server: what an operator does on a bad
release night. Screenshots of each page land in test-artifacts/screens/ for review."""

from __future__ import annotations

import re

import django
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from playwright.sync_api import Page, expect

from . import dbtools
from .browser import ARTIFACTS
from .panel.history import PanelHistory

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("inline_runner")]
CHANGELIST = "/admin/django_rollback/migrationstate/"
LOG_LIST = "/admin/django_rollback/rollbacklog/"


@pytest.fixture
def browser_context_args(browser_context_args):  # type: ignore[no-untyped-def]
    """A common laptop width: every column of the lists must fit without scrolling."""
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


def shot(page: Page, name: str) -> None:
    """test-artifacts/screens/<Django X.Y>/<vendor>/<name>.png, to compare both versions."""
    folder = ARTIFACTS / "screens" / ".".join(map(str, django.VERSION[:2])) / connection.vendor
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(CHANGELIST) + "$"))


def row_of(page: Page, tag: str):  # type: ignore[no-untyped-def]
    return page.locator("#result_list tbody tr").filter(
        has=page.locator("span.rollback-tag", has_text=re.compile(f"^{re.escape(tag)}$"))
    )


def test_operator_rolls_back_from_the_changelist(
    browser_page: Page, live_server, panel: PanelHistory, admin_user: User, settings
) -> None:
    page = browser_page
    log_in(page, live_server.url, "admin", "password")
    for tag in panel.releases:
        expect(row_of(page, tag)).to_have_count(1)
    expect(row_of(page, "v2.0.0").locator(".rollback-current")).to_have_text("current")
    expect(row_of(page, "v1.2.0")).to_contain_text("−3 migrations in 2 apps")
    assert not page.locator(".results").evaluate("el => el.scrollWidth > el.clientWidth")
    shot(page, "1-changelist")

    row_of(page, "v1.2.0").locator("input.action-select").check()
    page.select_option("select[name=action]", "rollback_to_state")
    page.click("button[name=index]")
    expect(page).to_have_url(re.compile(r"/migrationstate/\d+/rollback/$"))
    expect(page.locator("#rollback-summary")).to_contain_text("3 migrations in 2 apps to unapply")
    expect(page.locator("#rollback-steps > li")).to_have_count(3)
    expect(page.locator("#rollback-data-loss")).to_contain_text("inventory_stock")
    atomic = "All or nothing" if connection.features.can_rollback_ddl else "Not all or nothing"
    expect(page.locator("#rollback-atomic")).to_contain_text(atomic)
    page.locator("#rollback-sql summary").click()
    expect(page.locator("#rollback-sql pre")).to_contain_text("DROP TABLE")
    shot(page, "2-preview")
    page.emulate_media(color_scheme="dark")
    shot(page, "2-preview-dark")
    page.emulate_media(color_scheme="light")

    page.click("#rollback-dry-run-button")
    expect(page.locator("#rollback-dry-run")).to_contain_text("Dry run: nothing was changed")
    expect(page.get_by_text("Dry run: nothing was changed")).to_have_count(1)  # said once
    shot(page, "2-dry-run")

    page.click("#rollback-confirm")
    # The rollback runs outside the request; the page that follows it is its log entry.
    expect(page).to_have_url(re.compile(re.escape(LOG_LIST) + r"\d+/change/$"))
    started = page.locator(".messagelist .info")
    expect(started).to_contain_text("Rollback to commit")
    expect(started).to_contain_text(panel.releases["v1.2.0"].sha)
    expect(page.locator("#rollback-live-status")).to_have_text("succeeded")
    expect(page.locator("#rollback-live-steps")).to_have_text("3 of 3 done")
    expect(page.locator("body")).to_contain_text("Unapplying inventory.0004_stock... OK")
    expect(page.locator(".field-pruned_display")).to_contain_text("v2.0.0")
    expect(page.locator(".field-pruned_display")).not_to_contain_text("T")  # no ISO "…T08:17"
    shot(page, "4-audit-entry")
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    assert dbtools.applied(panel.url) == panel.releases["v1.2.0"].applied

    page.goto(f"{live_server.url}{CHANGELIST}")
    expect(row_of(page, "v2.0.0")).to_have_count(0)
    expect(row_of(page, "v1.2.0").locator(".rollback-badge")).to_have_text("latest")
    # HEAD (v2.0.0) was rolled back: until v1.2.0 is deployed the preview would refuse every
    # target, so the list neither offers the action nor says what a rollback would undo
    expect(page.locator("#rollback-not-offered")).to_be_visible()
    expect(page.locator("select[name=action] option[value=rollback_to_state]")).to_have_count(0)
    expect(page.locator("#result_list")).not_to_contain_text("−")
    shot(page, "3-after-rollback")

    page.goto(f"{live_server.url}/admin/django_rollback/rollbacklog/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)  # the dry run, the rollback
    # every column visible at 1400 px: the list's box does not have to scroll sideways
    scrolls = page.locator(".results").evaluate("el => el.scrollWidth > el.clientWidth")
    assert not scrolls
    shot(page, "8-log-list")

    # the index with the example project's templates/ (its dashboard shows the status panel)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [ARTIFACTS.parent / "templates"]}]
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#rollback-status-panel")).to_contain_text("Deployed commit")
    shot(page, "9-index")


def test_the_live_page_follows_a_rollback_running_elsewhere(
    browser_page: Page, live_server, panel: PanelHistory, admin_user: User, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The entry's page polls its JSON and updates itself when the runner moves on."""
    from django_rollback import background
    from django_rollback.models import RollbackLog

    queued: list[RollbackLog] = []
    monkeypatch.setattr(background, "launch", lambda log: queued.append(log))
    page = browser_page
    log_in(page, live_server.url, "admin", "password")
    page.goto(f"{live_server.url}{CHANGELIST}{panel.state('v1.2.0').pk}/rollback/")
    page.click("#rollback-confirm")
    expect(page).to_have_url(re.compile(re.escape(LOG_LIST) + r"\d+/change/$"))
    expect(page.locator("#rollback-live-status")).to_have_text("queued")
    expect(page.locator("#rollback-live-steps")).to_have_text("0 of 3 done")
    shot(page, "8-live-queued")
    assert len(queued) == 1
    background.run_queued(queued[0].pk, "default")  # the runner, here, while the page watches
    expect(page.locator("#rollback-live-status")).to_have_text("succeeded")
    expect(page.locator("#rollback-live-steps")).to_have_text("3 of 3 done")
    expect(page.locator("#rollback-live-output")).to_contain_text("Unapplying inventory.0004_stock")
    shot(page, "9-live-succeeded")


def test_staff_without_permission_cannot_reach_the_rollback(
    browser_page: Page, live_server, panel: PanelHistory
) -> None:
    page = browser_page
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(codename__in=["view_migrationstate", "view_rollbacklog"])
    )
    log_in(page, live_server.url, "viewer", "pw")
    expect(row_of(page, "v1.2.0")).to_have_count(1)
    expect(page.locator("select[name=action] option[value=rollback_to_state]")).to_have_count(0)
    expect(page.get_by_text("Save current state")).to_have_count(0)
    shot(page, "5-view-only-changelist")
    before = panel.everything()
    response = page.goto(f"{live_server.url}{CHANGELIST}{panel.state('v1.2.0').pk}/rollback/")
    assert response is not None and response.status == 403
    shot(page, "5-forbidden")
    assert panel.everything() == before


def test_irreversible_step_keeps_the_confirm_button_disabled(
    browser_page: Page, live_server, panel: PanelHistory, admin_user: User
) -> None:
    page = browser_page
    log_in(page, live_server.url, "admin", "password")
    row_of(page, "v1.1.0").locator("th a, td a").first.click()
    expect(page.locator("#rollback-diff")).to_contain_text("0002_backfill")
    shot(page, "6-detail")
    page.get_by_role("link", name="Rollback to this state").click()
    expect(page.locator("#rollback-blockers")).to_contain_text("Irreversible: ledger.0002_backfill")
    expect(page.locator("#rollback-confirm")).to_be_disabled()
    expect(page.locator("#rollback-dry-run-button")).to_be_disabled()
    shot(page, "7-irreversible")
    before = panel.everything()
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(re.compile(re.escape(CHANGELIST) + "$"))
    assert panel.everything() == before
