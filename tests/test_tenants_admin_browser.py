"""The fleet admin in a real Chromium, on the django-tenants demo project (demo/build_tenants.py:
public and tenants alpha, beta, gamma from v1.0.0, delta from v2.0.0) served by its own
`manage.py runserver`, so that the rollback runs in the real detached runner. Screenshots land
in test-artifacts/screens/tenants/."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from . import dbtools
from .browser import ARTIFACTS

REPO = Path(__file__).resolve().parent.parent
CHANGELIST = "/admin/django_rollback/migrationstate/"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        dbtools.BACKEND != "postgresql",
        reason="django-tenants keeps each tenant in a PostgreSQL schema: PostgreSQL only",
    ),
]


def shot(page: Page, name: str) -> None:
    folder = ARTIFACTS / "screens" / "tenants"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def tenant_site(tmp_path: Path, databases: dbtools.Databases) -> Iterator[str]:
    """The demo's tenant project deployed and served; yields its base URL."""
    url = databases.new_url("tadmin")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "demo" / "build_tenants.py"),
            str(site),
            "--database-url",
            url,
            "--force",
        ],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "tenantsite.admin_settings",
        "PYTHONPATH": str(REPO),
        "DJANGO_SUPERUSER_PASSWORD": "admin",
    }
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
        ],
        cwd=site,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=site,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_fleet_preview_run_and_log_page(browser_page: Page, tenant_site: str) -> None:
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{tenant_site}/admin/login/?next={CHANGELIST}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(CHANGELIST) + "$"))

    # The list: how many of the five schemas stand at each saved state.
    rows = page.locator("#result_list tbody tr")
    expect(rows.filter(has_text="v2.0.0").locator(".rollback-fleet-count")).to_have_text("5 of 5")
    expect(rows.filter(has_text="v1.1.0").locator(".rollback-fleet-count")).to_have_text("0 of 5")
    shot(page, "1-changelist")

    # The preview: the plan once per group with its number of targets, and the exception.
    rows.filter(has_text="v1.1.0").locator("a").first.click()
    page.goto(page.url.replace("/change/", "/rollback/"))
    expect(page.locator("#rollback-fleet-refusal")).to_contain_text("delta")
    expect(page.locator("#rollback-confirm")).to_be_disabled()
    page.click("#rollback-skip-unsaved")
    groups = page.locator(".rollback-fleet-group h2")
    expect(groups.first).to_have_text("3 targets (tenant schemas)")
    expect(groups.nth(1)).to_have_text("1 target (the public schema)")
    # notes is a tenant app: its step changes the tenants' tables and nothing in public.
    tenant_group, public_group = page.locator(".rollback-fleet-group").all()
    expect(tenant_group).to_contain_text("Undo: Create model Comment")
    # What it drops, counted in each tenant (the demo's tenants hold 3, 5 and 2 comments).
    expect(tenant_group.locator(".rollback-fleet-losses")).to_have_text(
        'notes.0003_comment: drops table "notes_comment": 10 rows in 3 of 3 schemas '
        "(most in beta: 5): archived (restorable)"
    )
    expect(public_group.locator(".rollback-routed-out")).to_have_text(
        "does nothing in this database: the routers keep notes out of it (database 'default', "
        "schema public); only its record is removed"
    )
    expect(public_group).not_to_contain_text("Undo:")
    expect(page.locator("#rollback-fleet-total")).to_contain_text("4 of 5 targets")
    expect(page.locator("#rollback-fleet-exceptions")).to_contain_text("delta")
    expect(page.locator("#rollback-fleet-exceptions")).to_contain_text("skipped")
    shot(page, "2-fleet-preview")

    # Run: the log entry follows it; once done it lists every target's outcome.
    page.click("#rollback-confirm")
    expect(page).to_have_url(re.compile(r"/rollbacklog/\d+/change/"))
    shot(page, "3-fleet-log-started")
    expect(page.locator("#rollback-live label").nth(1)).to_have_text("targets")
    # The live page (live.js) follows the entry and reloads itself once it has ended.
    expect(page.locator(".rollback-fleet-summary")).to_contain_text("succeeded 4", timeout=90_000)
    targets = page.locator(".rollback-fleet-targets tbody tr")
    expect(targets).to_have_count(5)
    for schema in ("alpha", "beta", "gamma", "public"):
        expect(targets.filter(has_text=schema)).to_contain_text("succeeded")
    expect(targets.filter(has_text="delta")).to_contain_text("skipped")
    expect(page.locator(".rollback-fleet-summary")).to_contain_text("succeeded 4")
    shot(page, "4-fleet-log-done")

    # The list again: public and the three early tenants are at v1.1.0 now.
    page.goto(f"{tenant_site}{CHANGELIST}")
    expect(
        page.locator("#result_list tbody tr")
        .filter(has_text="v1.1.0")
        .locator(".rollback-fleet-count")
    ).to_have_text("4 of 5")
    shot(page, "5-changelist-after")
