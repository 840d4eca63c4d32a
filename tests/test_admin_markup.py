"""The admin in each Django version's markup, links that stay on the selected database, and
pages that say things once, in the admin's formats (issue 10/11: admin part)."""

from __future__ import annotations

import re

import django
import pytest
from django.test import Client
from django.utils import timezone
from django.utils.formats import date_format

from django_rollback import planning
from django_rollback.models import MigrationState, RollbackLog

from . import dbtools
from .panel.history import PanelHistory
from .test_admin import CHANGELIST, LOG_LIST, fingerprint, preview_url

DJANGO_6 = django.VERSION >= (6, 0)
# The confirmation starts the rollback outside the request; here it runs in it.
pytestmark = pytest.mark.usefixtures("inline_runner")


@pytest.fixture
def admin(panel: PanelHistory, admin_client: Client) -> Client:
    return admin_client


def breadcrumbs_of(page: str) -> str:
    """The breadcrumbs element, as Django of this version marks it up (and styles it)."""
    pattern = (
        r'<ol class="breadcrumbs">.*?</ol>' if DJANGO_6 else r'<div class="breadcrumbs">.*?</div>'
    )
    found = re.search(pattern, page, re.S)
    assert found, page[:3000]
    return found.group(0)


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_preview_breadcrumbs_follow_the_django_version_and_keep_the_database(
    admin: Client, panel: PanelHistory
) -> None:
    from django_rollback import services

    state = panel.state("v1.2.0")
    crumbs = breadcrumbs_of(admin.get(preview_url(state)).content.decode())
    assert f'href="{CHANGELIST}{state.pk}/change/"' in crumbs
    assert ("<li" in crumbs) is DJANGO_6 and ("&rsaquo;" in crumbs) is not DJANGO_6

    saved = services.save_state(
        database="other", commit=panel.releases["v2.0.0"].sha, allow_unapplied=True
    )
    other = admin.get(f"{preview_url(saved.state)}?database=other").content.decode()
    crumbs = breadcrumbs_of(other)
    assert f'href="{CHANGELIST}?database=other"' in crumbs
    assert f'href="{CHANGELIST}{saved.state.pk}/change/?database=other"' in crumbs


def test_the_banner_sits_below_the_title_row_in_both_versions(
    admin: Client, panel: PanelHistory
) -> None:
    page = admin.get(CHANGELIST).content.decode()
    banner = page.index('id="rollback-overview"')
    tools_end = page.index("</ul>", page.index('class="object-tools"'))
    assert tools_end < banner
    if DJANGO_6:  # the title row (h1 + object tools) is a flex box: it closes before the banner
        assert "</div>" in page[tools_end:banner]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_save_button_and_status_tag_link_keep_the_database(
    admin: Client, panel: PanelHistory, admin_user, rf
) -> None:  # type: ignore[no-untyped-def]
    from django.template import Context, Template

    page = admin.get(CHANGELIST, {"database": "other"}).content.decode()
    assert 'action="/admin/django_rollback/migrationstate/save/?database=other"' in page
    template = Template('{% load rollback_admin %}{% rollback_status "other" %}')
    request = rf.get("/admin/")
    request.user = admin_user
    html = template.render(Context({"request": request}))
    assert f'href="{CHANGELIST}?database=other"' in html


def test_the_confirmation_does_not_compute_sql(
    admin: Client, panel: PanelHistory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)  # the preview shows the SQL, so it computes it

    def no_sql(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the confirming POST computed SQL it does not show")

    monkeypatch.setattr(planning, "_collect_sql", no_sql)
    response = admin.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    # the confirmation lands on the rollback's log entry (it runs outside the request)
    assert response.status_code == 302 and response["Location"].startswith(LOG_LIST)
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema


def test_the_dry_run_page_says_it_once_and_links_its_audit_entry(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    page = admin.post(preview_url(target), {"dry_run": "1", "fingerprint": token})
    html = page.content.decode()
    log = RollbackLog.objects.get()
    assert html.count("nothing was changed") == 1, html
    assert f'href="{LOG_LIST}{log.pk}/change/"' in html
    assert "DROP TABLE" in html  # the dry run still shows the SQL


def test_after_head_was_rolled_back_no_rollback_is_offered(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": fingerprint(admin, target)})
    page = admin.get(CHANGELIST).content.decode()
    # HEAD (v2.0.0) has no state until v1.2.0 is deployed: the preview would refuse them all
    assert 'id="rollback-not-offered"' in page
    assert 'value="rollback_to_state"' not in page
    assert "−" not in page and "nothing to undo" not in page
    detail = admin.get(f"{CHANGELIST}{panel.state('v1.0.0').pk}/change/").content.decode()
    assert "Rollback to this state" not in detail and 'id="rollback-not-offered"' in detail


def test_before_it_the_action_and_summaries_are_there(admin: Client, panel: PanelHistory) -> None:
    page = admin.get(CHANGELIST).content.decode()
    assert 'value="rollback_to_state"' in page and "−3 migrations in 2 apps" in page
    assert 'id="rollback-not-offered"' not in page


def test_dates_are_in_the_admins_format_pruned_states_included(
    admin: Client, panel: PanelHistory
) -> None:
    pruned = panel.state("v2.0.0")
    saved_at = date_format(timezone.localtime(pruned.saved_at), "DATETIME_FORMAT")
    target = panel.state("v1.2.0")
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": fingerprint(admin, target)})
    log = RollbackLog.objects.get()
    page = admin.get(f"{LOG_LIST}{log.pk}/change/").content.decode()
    pruned_field = page[page.index("field-pruned_display") :]
    assert saved_at in pruned_field
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", page)  # no raw ISO timestamp anywhere
    assert not MigrationState.objects.filter(pk=pruned.pk).exists()
