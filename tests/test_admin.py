"""The operations panel through Django's test client: every rule of the admin, against a
real release history (real migrations, a real git repository, the real test database)."""

from __future__ import annotations

import re
import threading
from contextlib import closing

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse

from django_rollback.locks import rollback_lock
from django_rollback.models import MigrationState, RollbackLog

from . import dbtools
from .gitrepo import git
from .panel.history import PanelHistory, database_url_of

CHANGELIST = "/admin/django_rollback/migrationstate/"
LOG_LIST = "/admin/django_rollback/rollbacklog/"
pytestmark = pytest.mark.usefixtures("inline_runner")


def preview_url(state: MigrationState) -> str:
    return f"{CHANGELIST}{state.pk}/rollback/"


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


VIEW = ("view_migrationstate", "view_rollbacklog")
OPERATOR = (*VIEW, "rollback_migrationstate")


@pytest.fixture
def admin(panel: PanelHistory, admin_client: Client) -> Client:
    return admin_client


def fingerprint(client: Client, state: MigrationState) -> str:
    page = client.get(preview_url(state)).content.decode()
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the changelist ------------------------------------------------------------------------


def test_changelist_shows_states_tags_markers_and_what_a_rollback_would_undo(
    admin: Client, panel: PanelHistory
) -> None:
    page = admin.get(CHANGELIST).content.decode()
    for tag, release in panel.releases.items():
        assert f'<span class="rollback-tag">{tag}</span>' in page
        assert f'title="{release.sha}"' in page  # the full hash on hover
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page, re.S)
    by_tag = {tag: next(r for r in rows if f">{tag}<" in r) for tag in panel.releases}
    assert ">current<" in by_tag["v2.0.0"] and ">latest<" in by_tag["v2.0.0"]
    assert "nothing to undo" in by_tag["v2.0.0"]
    assert "−3 migrations in 2 apps" in by_tag["v1.2.0"]
    assert "−4 migrations in 2 apps" in by_tag["v1.1.0"]
    assert "−6 migrations in 2 apps" in by_tag["v1.0.0"]
    assert ">drift<" not in page and 'id="rollback-drift"' not in page
    # newest first
    assert page.index(">v2.0.0<") < page.index(">v1.2.0<") < page.index(">v1.0.0<")
    assert "Save current state" in page


def test_changelist_marks_drift_after_a_manual_migrate(admin: Client) -> None:
    from django.core.management import call_command

    call_command("migrate", "ledger", "0002_backfill", verbosity=0)
    page = admin.get(CHANGELIST).content.decode()
    assert 'id="rollback-drift"' in page
    assert ">drift<" in page
    assert "Saved but no longer applied:" in page and "0003_entry_note" in page


def test_changelist_queries_do_not_grow_with_the_number_of_states(
    admin: Client, django_assert_max_num_queries
) -> None:
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(conn) as captured:
            assert admin.get(CHANGELIST).status_code == 200
        return len(captured)

    few = count()
    latest = MigrationState.objects.latest_state()
    assert latest is not None
    MigrationState.objects.bulk_create(
        MigrationState(commit=f"{n:040x}", tags=[f"old-{n}"], migrations=latest.migrations)
        for n in range(1, 1001)
    )
    many = count()
    assert few == many
    assert many <= 6, many  # session, user, overview (2), count, page


def test_search_by_commit_prefix_and_by_tag(admin: Client, panel: PanelHistory) -> None:
    sha = panel.releases["v1.1.0"].sha
    page = admin.get(CHANGELIST, {"q": sha[:7]}).content.decode()
    assert ">v1.1.0<" in page and ">v1.2.0<" not in page
    page = admin.get(CHANGELIST, {"q": "v1.2"}).content.decode()
    assert ">v1.2.0<" in page and ">v1.1.0<" not in page


def test_states_cannot_be_added_or_edited_and_only_superusers_delete(
    admin: Client, panel: PanelHistory, client: Client
) -> None:
    state = panel.state("v1.0.0")
    assert admin.get(f"{CHANGELIST}add/").status_code == 403
    assert admin.post(f"{CHANGELIST}{state.pk}/change/", {"commit": "x"}).status_code == 403
    assert admin.get(f"{CHANGELIST}{state.pk}/delete/").status_code == 200
    client.force_login(staff("operator", *OPERATOR))
    assert client.get(f"{CHANGELIST}{state.pk}/delete/").status_code == 403
    assert "delete_selected" not in client.get(CHANGELIST).content.decode()


# --- the detail page -----------------------------------------------------------------------


def test_detail_page_lists_migrations_per_app_and_the_diff(
    admin: Client, panel: PanelHistory
) -> None:
    state = panel.state("v1.1.0")
    page = admin.get(f"{CHANGELIST}{state.pk}/change/").content.decode()
    assert panel.releases["v1.1.0"].sha in page
    assert 'id="rollback-applied"' in page and "0003_item_sku" in page
    diff = page[page.index('id="rollback-diff"') : page.index('id="rollback-applied"')]
    assert "0004_stock, 0005_warehouse_city" in diff  # inventory
    assert "0002_backfill, 0003_entry_note" in diff  # ledger
    assert preview_url(state) in page and "Rollback to this state" in page


# --- the action ----------------------------------------------------------------------------


@pytest.mark.parametrize("picked", [[], ["v1.0.0", "v1.1.0"]])
def test_action_needs_exactly_one_state(
    admin: Client, panel: PanelHistory, picked: list[str]
) -> None:
    before = panel.everything()
    response = admin.post(
        CHANGELIST,
        {
            "action": "rollback_to_state",
            "index": "0",  # sent by the changelist's action bar
            "_selected_action": [panel.state(t).pk for t in picked],
        },
        follow=True,
    )
    assert response.status_code == 200  # back on the changelist, with the reason
    page = response.content.decode()
    assert "Select exactly one state" in page or "Items must be selected" in page
    assert panel.everything() == before


def test_action_with_one_state_leads_to_its_preview(admin: Client, panel: PanelHistory) -> None:
    state = panel.state("v1.2.0")
    response = admin.post(
        CHANGELIST, {"action": "rollback_to_state", "_selected_action": [state.pk]}
    )
    assert response.status_code == 302
    assert response["Location"] == preview_url(state)


# --- the preview ---------------------------------------------------------------------------


def test_preview_shows_everything_and_changes_nothing(admin: Client, panel: PanelHistory) -> None:
    before = panel.everything()
    page = admin.get(preview_url(panel.state("v1.2.0"))).content.decode()
    assert panel.everything() == before
    current, target = panel.releases["v2.0.0"].sha, panel.releases["v1.2.0"].sha
    assert f'title="{current}"' in page and f'title="{target}"' in page
    assert "3 migrations in 2 apps to unapply." in page  # plurals, not "app(s)" (issue 10)
    steps = re.findall(r"<li class=\"[^\"]*\">\s*<code>([a-z]+\.\d{4}\w*)</code>", page)
    assert sorted(steps) == [
        "inventory.0004_stock",
        "inventory.0005_warehouse_city",
        "ledger.0003_entry_note",
    ]
    assert steps.index("inventory.0005_warehouse_city") < steps.index("inventory.0004_stock")
    assert "Undo: Create model Stock" in page
    loss = page[page.index('id="rollback-data-loss"') :]
    assert re.search(r"table <code>inventory_stock</code></td>\s*<td[^>]*>3</td>", loss)
    assert re.search(r"column <code>inventory_warehouse.city</code></td>\s*<td[^>]*>2</td>", loss)
    assert re.search(r"column <code>ledger_entry.note</code></td>\s*<td[^>]*>3</td>", loss)
    if connection.features.can_rollback_ddl:
        assert "All or nothing: the whole plan runs in one transaction" in page
    else:
        assert "Not all or nothing" in page and "DDL is not transactional" in page
    radius = page[page.index('id="rollback-blast-radius"') :]
    mode = {"postgresql": "ACCESS EXCLUSIVE", "mysql": "EXCLUSIVE"}.get(
        connection.vendor, "EXCLUSIVE (whole database)"
    )
    assert re.search(
        r"<code>inventory\.0004_stock</code></td>\s*<td><code>inventory_stock</code></td>\s*"
        rf"<td>{re.escape(mode)}</td>\s*<td>drops the table</td>\s*<td[^>]*>3</td>",
        radius,
    ), radius[:2000]
    assert 'id="rollback-sql"' in page and "DROP TABLE" in page
    assert 'id="rollback-confirm"' in page and "Yes, roll back" in page
    confirm = re.search(r'<input[^>]*id="rollback-confirm"[^>]*>', page, re.S)
    assert confirm and "disabled" not in confirm.group(0)


def test_irreversible_step_disables_confirm_and_a_post_is_refused(
    admin: Client, panel: PanelHistory
) -> None:
    state = panel.state("v1.1.0")
    page = admin.get(preview_url(state)).content.decode()
    assert 'id="rollback-blockers"' in page
    assert "Irreversible: ledger.0002_backfill" in page
    confirm = re.search(r'<input[^>]*id="rollback-confirm"[^>]*>', page, re.S)
    assert confirm and "disabled" in confirm.group(0)
    before = panel.everything()
    token = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert token
    response = admin.post(
        preview_url(state), {"confirm": "1", "fingerprint": token.group(1)}, follow=True
    )
    assert any("Refusing to roll back" in m for m in messages_of(response))
    assert panel.everything() == before


def test_preview_of_the_current_state_says_nothing_to_do(
    admin: Client, panel: PanelHistory
) -> None:
    page = admin.get(preview_url(panel.state("v2.0.0"))).content.decode()
    assert "Nothing to do" in page
    assert re.search(r'<input[^>]*id="rollback-confirm"[^>]*disabled', page, re.S)


# --- executing -----------------------------------------------------------------------------


def test_confirm_rolls_back_to_exactly_the_target_release(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    response = admin.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    log = RollbackLog.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{LOG_LIST}{log.pk}/change/"
    release = panel.releases["v1.2.0"]
    assert dbtools.schema(panel.url) == release.schema
    assert dbtools.applied(panel.url) == release.applied
    assert [commit for commit, _tags in dbtools.saved_states(panel.url) or []] == [
        panel.releases[t].sha for t in ("v1.0.0", "v1.1.0", "v1.2.0")
    ]
    log = RollbackLog.objects.get()
    assert (log.status, log.user, log.source) == ("succeeded", "admin", "admin")
    assert log.to_commit == release.sha and log.to_tags == ["v1.2.0"]
    assert [s["tags"] for s in log.pruned_states] == [["v2.0.0"]]
    page = admin.get(response["Location"]).content.decode()  # the entry's page
    assert "Rollback to commit" in page and "started" in page and release.sha in page
    assert 'class="rollback-badge rollback-status-succeeded"' in page
    assert 'id="rollback-live-steps">3 of 3 done<' in page
    page = admin.get(CHANGELIST).content.decode()
    assert release.sha in page and "v1.2.0" in page
    assert ">rolled back<" in page and "deploy that release now" in page


def test_dry_run_records_the_plan_and_changes_nothing_else(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    before = panel.everything()
    token = fingerprint(admin, target)
    response = admin.post(preview_url(target), {"dry_run": "1", "fingerprint": token})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="rollback-dry-run"' in page and "inventory.0004_stock" in page
    after = panel.everything()
    assert after.pop("logs") != before.pop("logs")
    assert after == before
    assert RollbackLog.objects.get().status == "dry_run"


def test_a_changed_database_refuses_the_confirmation(admin: Client, panel: PanelHistory) -> None:
    from django.core.management import call_command

    target = panel.state("v1.0.0")
    token = fingerprint(admin, panel.state("v1.2.0"))  # a preview of another plan
    before = panel.everything()
    response = admin.post(
        preview_url(panel.state("v1.2.0")), {"confirm": "1", "fingerprint": token + "0"}
    )
    assert response.status_code == 302
    assert panel.everything() == before
    call_command("migrate", "ledger", "0002_backfill", verbosity=0)  # drift after the preview
    changed = panel.everything()
    response = admin.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    assert panel.everything() == changed
    assert not RollbackLog.objects.exists()


def test_a_second_post_is_refused_while_a_rollback_runs_and_after_it(
    admin: Client, panel: PanelHistory
) -> None:
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    before = panel.everything()
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        from django.db import connections

        other = connections.create_connection("default")
        try:
            with rollback_lock(other):
                held.set()
                release.wait(30)
        finally:
            other.close()

    worker = threading.Thread(target=hold_lock)
    worker.start()
    try:
        assert held.wait(10)
        response = admin.post(
            preview_url(target), {"confirm": "1", "fingerprint": token}, follow=True
        )
        assert any("Another rollback is running" in m for m in messages_of(response))
        assert panel.everything() == before
    finally:
        release.set()
        worker.join()
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    done = panel.everything()
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    response = admin.post(preview_url(target), {"confirm": "1", "fingerprint": token}, follow=True)
    assert any("already rolled back" in m for m in messages_of(response))
    assert panel.everything() == done
    assert RollbackLog.objects.filter(status="succeeded").count() == 1


def test_failure_leaves_the_database_untouched(admin: Client, panel: PanelHistory) -> None:
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    # The table that unapplying inventory.0004 drops is not there: that step fails after
    # another step of the plan has run.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE inventory_stock RENAME TO inventory_stock_away")
    try:
        before = panel.everything()
        response = admin.post(
            preview_url(target), {"confirm": "1", "fingerprint": token}, follow=True
        )
        # The rollback runs after the request: its outcome is on the entry's page.
        assert response.redirect_chain[-1][0].startswith(LOG_LIST)
        failed = re.findall(r'id="rollback-live-error">([^<]*)<', response.content.decode())
        assert failed and "Rollback failed" in failed[0] and "inventory.0004_stock" in failed[0]
        after = panel.everything()
        assert after.pop("logs") != before.pop("logs")  # the failed run is in the audit log
        assert RollbackLog.objects.get().status == "failed"
        if connection.features.can_rollback_ddl:
            assert after == before
        else:  # step by step: what ran before the failing step stays unapplied, as previewed
            assert "stay unapplied" in failed[0]
            assert after["states"] == before["states"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE inventory_stock_away RENAME TO inventory_stock")


@pytest.mark.skipif(dbtools.BACKEND == "sqlite", reason="lock timeouts need a database server")
def test_a_blocked_table_makes_the_admin_give_up_cleanly_and_name_the_session(
    admin: Client, panel: PanelHistory, settings
) -> None:  # type: ignore[no-untyped-def]
    """The admin goes through the same lock timeout and retries as the command."""
    settings.DJANGO_ROLLBACK = {
        **settings.DJANGO_ROLLBACK,
        "LOCK_TIMEOUT": 0.5,
        "LOCK_RETRIES": 1,
        "LOCK_RETRY_DELAY": 0.1,
        # step by step (MySQL), archiving is a write that makes an attempt unsafe to retry
        "ARCHIVE": dbtools.BACKEND != "mysql",
    }
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    before = panel.everything()
    connect = dbtools._my_connect if dbtools.BACKEND == "mysql" else dbtools._pg_connect
    with closing(connect(str(connection.settings_dict["NAME"]))) as other:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT CONNECTION_ID()"
                if dbtools.BACKEND == "mysql"
                else "SELECT pg_backend_pid()"
            )
            pid = cursor.fetchone()[0]
            cursor.execute("BEGIN")
            for table in ("inventory_warehouse", "inventory_stock", "ledger_entry"):
                cursor.execute(f'SELECT COUNT(*) FROM "{table}"')  # every table of the plan
                cursor.fetchall()
        try:
            response = admin.post(
                preview_url(target), {"confirm": "1", "fingerprint": token}, follow=True
            )
        finally:
            with other.cursor() as cursor:
                cursor.execute("ROLLBACK")
    # the confirmation ran the rollback (in the request here) and landed on its log entry
    assert response.redirect_chain[-1][0].startswith(LOG_LIST)
    message = RollbackLog.objects.get().error
    assert "Rollback gave up after 2 attempts" in message, message
    assert re.search(
        # MySQL does not say which table; PostgreSQL does
        r'could not lock (table "(inventory_warehouse|inventory_stock|ledger_entry)"'
        r"|a table of this step)",
        message,
    )
    assert f"pid {pid} " in message, message
    after = panel.everything()
    assert after.pop("logs") != before.pop("logs")
    assert after == before
    assert RollbackLog.objects.get().status == "failed"


# --- saving from the admin -----------------------------------------------------------------


def test_save_current_state_button(admin: Client, panel: PanelHistory) -> None:
    assert admin.get(reverse("admin:django_rollback_migrationstate_save")).status_code == 302
    assert MigrationState.objects.count() == 4
    response = admin.post(reverse("admin:django_rollback_migrationstate_save"), follow=True)
    assert any("was already saved" in m for m in messages_of(response))
    git(panel.repo, "commit", "-q", "--allow-empty", "-m", "hotfix")
    git(panel.repo, "tag", "v2.0.1")
    response = admin.post(reverse("admin:django_rollback_migrationstate_save"), follow=True)
    assert any(
        "State successfully created for commit" in m and "v2.0.1" in m
        for m in messages_of(response)
    )
    assert MigrationState.objects.latest_state().tags == ["v2.0.1"]  # type: ignore[union-attr]


# --- permissions and CSRF ------------------------------------------------------------------


def test_anonymous_users_go_to_the_login_page(panel: PanelHistory, client: Client) -> None:
    for url in (CHANGELIST, preview_url(panel.state("v1.2.0")), LOG_LIST):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    before = panel.everything()
    response = client.post(preview_url(panel.state("v1.2.0")), {"confirm": "1"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert panel.everything() == before


def test_staff_without_the_rollback_permission(panel: PanelHistory, client: Client) -> None:
    client.force_login(staff("viewer", *VIEW))
    page = client.get(CHANGELIST).content.decode()
    assert ">v1.2.0<" in page
    assert "rollback_to_state" not in page and "Save current state" not in page
    target = panel.state("v1.2.0")
    detail = client.get(f"{CHANGELIST}{target.pk}/change/").content.decode()
    assert "Rollback to this state" not in detail
    before = panel.everything()
    assert client.get(preview_url(target)).status_code == 403
    assert client.post(preview_url(target), {"confirm": "1"}).status_code == 403
    assert client.post(reverse("admin:django_rollback_migrationstate_save")).status_code == 403
    response = client.post(
        CHANGELIST, {"action": "rollback_to_state", "_selected_action": [target.pk]}
    )
    assert response.status_code in (200, 302)
    assert panel.everything() == before
    client.force_login(staff("stranger"))
    assert client.get(CHANGELIST).status_code == 403


def test_staff_with_the_rollback_permission_can_roll_back(
    panel: PanelHistory, client: Client
) -> None:
    client.force_login(staff("operator", *OPERATOR))
    assert "rollback_to_state" in client.get(CHANGELIST).content.decode()
    target = panel.state("v1.2.0")
    token = fingerprint(client, target)
    client.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema
    assert RollbackLog.objects.get().user == "operator"


def test_every_post_needs_the_csrf_token(panel: PanelHistory, admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = panel.everything()
    target = panel.state("v1.2.0")
    assert client.post(preview_url(target), {"confirm": "1"}).status_code == 403
    assert client.post(reverse("admin:django_rollback_migrationstate_save")).status_code == 403
    assert panel.everything() == before


# --- the audit log -------------------------------------------------------------------------


def test_log_admin_is_read_only_and_shows_the_whole_run(admin: Client, panel: PanelHistory) -> None:
    target = panel.state("v1.2.0")
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": fingerprint(admin, target)})
    log = RollbackLog.objects.get()
    page = admin.get(LOG_LIST).content.decode()
    assert "succeeded" in page and ">v2.0.0<" in page and ">v1.2.0<" in page and "admin" in page
    detail = admin.get(f"{LOG_LIST}{log.pk}/change/").content.decode()
    assert "inventory.0004_stock" in detail  # the plan
    assert "Unapplying inventory.0004_stock... OK" in detail  # the output
    assert panel.releases["v2.0.0"].sha in detail  # the pruned state
    assert admin.get(f"{LOG_LIST}add/").status_code == 403
    assert admin.get(f"{LOG_LIST}{log.pk}/delete/").status_code == 403  # kept forever
    assert admin.post(f"{LOG_LIST}{log.pk}/change/", {}).status_code == 403


def test_status_panel_tag_shows_the_deployed_commit_and_drift(
    panel: PanelHistory, admin_user: User, rf
) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command
    from django.template import Context, Template

    template = Template("{% load rollback_admin %}{% rollback_status %}")
    request = rf.get("/admin/")
    request.user = admin_user
    html = template.render(Context({"request": request}))
    assert panel.releases["v2.0.0"].sha in html and ">saved<" in html
    call_command("migrate", "ledger", "0002_backfill", verbosity=0)
    assert ">drift<" in template.render(Context({"request": request}))
    request.user = staff("stranger")
    assert "rollback-status-panel" not in template.render(Context({"request": request}))


def test_the_panel_knows_the_deployed_commit_without_git(
    admin: Client, panel: PanelHistory, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    image = tmp_path / "image"  # an image built without .git
    image.mkdir()
    sha = panel.releases["v2.0.0"].sha
    settings.DJANGO_ROLLBACK = {"REPO_PATH": str(image), "COMMIT": sha, "TAGS": ["v2.0.0"]}
    page = admin.get(CHANGELIST).content.decode()
    assert f'title="{sha}"' in page and ">saved<" in page
    target = panel.state("v1.2.0")
    token = fingerprint(admin, target)
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": token})
    assert dbtools.schema(panel.url) == panel.releases["v1.2.0"].schema


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_each_database_has_its_own_states_and_rollbacks(admin: Client, panel: PanelHistory) -> None:
    from django.core.management import call_command

    from django_rollback import services

    def migrate_other(*args: str) -> None:
        call_command("migrate", *args, database="other", verbosity=0)

    other_url = database_url_of("other")
    migrate_other("inventory", "0004_stock")  # 'other' is one release behind
    old, new = panel.releases["v1.2.0"].sha, panel.releases["v2.0.0"].sha
    # One code base plays both releases: v2.0.0's file is on disk while 'other' is at v1.2.0.
    services.save_state(database="other", commit=old, tags=["v1.2.0"], allow_unapplied=True)
    at_old = dbtools.everything(other_url)
    migrate_other()
    services.save_state(database="other", commit=new, tags=["v2.0.0"])
    default_before = panel.everything()

    page = admin.get(CHANGELIST, {"database": "other"}).content.decode()
    assert ">v1.2.0<" in page and ">v2.0.0<" in page and ">v1.0.0<" not in page
    assert "−1 migration in 1 app" in page  # inventory.0005, applied in 'other' since
    target = MigrationState.objects.using("other").get(commit=old)
    url = f"{preview_url(target)}?database=other"
    form = admin.get(url).content.decode()
    token = re.search(r'name="fingerprint" value="([0-9a-f]+)"', form)
    assert token, form
    response = admin.post(url, {"confirm": "1", "fingerprint": token.group(1)})
    entry = RollbackLog.objects.using("other").get()
    assert response.status_code == 302
    assert response["Location"] == f"{LOG_LIST}{entry.pk}/change/?database=other"
    after = dbtools.everything(other_url)
    assert after["schema"] == at_old["schema"] and after["applied"] == at_old["applied"]
    assert panel.everything() == default_before  # the default database did not move
    assert RollbackLog.objects.using("other").get().to_commit == old
    assert not RollbackLog.objects.exists()
    # a superuser deletes a state of 'other' through the action; 'default' keeps all of its own
    other_state = MigrationState.objects.using("other").get(commit=old)
    response = admin.post(
        f"{CHANGELIST}?database=other",
        {"action": "delete_selected", "_selected_action": [other_state.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not MigrationState.objects.using("other").exists()
    assert MigrationState.objects.count() == 4


def test_after_a_rollback_the_changelist_still_costs_six_queries(
    admin: Client, panel: PanelHistory
) -> None:
    from django.test.utils import CaptureQueriesContext

    target = panel.state("v1.2.0")
    admin.post(preview_url(target), {"confirm": "1", "fingerprint": fingerprint(admin, target)})
    with CaptureQueriesContext(connection) as captured:
        page = admin.get(CHANGELIST).content.decode()
    assert ">rolled back<" in page and panel.releases["v1.2.0"].sha[:10] in page
    assert len(captured) <= 6, [q["sql"][:80] for q in captured.captured_queries]
