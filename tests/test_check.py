"""One truth about where the database stands: --check, --list, the admin's index panel
and the states list say the same."""

from __future__ import annotations

import html
import json
import re
from io import StringIO

from .projects import History


def _standing_in(page: str) -> str:
    found = re.search(r'<span class="rollback-standing">(.*?)</span>', page, re.S)
    assert found, page
    return html.unescape(found.group(1)).strip()


def _four_sentences(client, rf, user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from django.core.management import CommandError, call_command
    from django.template import Context, Template

    out = StringIO()
    try:
        call_command("rollback_migrations", "--check", stdout=out)
        check = out.getvalue().strip()
    except CommandError as exc:
        check = str(exc)
    listed = StringIO()
    call_command("rollback_migrations", "--list", "--json", stdout=listed)
    text_list = StringIO()
    call_command("rollback_migrations", "--list", stdout=text_list)
    last_line = text_list.getvalue().strip().splitlines()[-1]
    request = rf.get("/admin/")
    request.user = user
    index = Template("{% load rollback_admin %}{% rollback_status %}").render(
        Context({"request": request})
    )
    states_list = client.get("/admin/django_rollback/migrationstate/").content.decode()
    return {
        "check": check,
        "list --json": json.loads(listed.getvalue())["standing"]["message"],
        # The text list ends with the sentence unless all is well (its "*" line says so).
        "list": last_line if "* = the current commit" not in last_line else check,
        "index": _standing_in(index),
        "states list": _standing_in(states_list),
    }


def test_check_list_index_panel_and_states_list_say_the_same(  # type: ignore[no-untyped-def]
    admin_client, panel, admin_user, rf
) -> None:
    from django.core.management import call_command

    from django_rollback import services

    said = _four_sentences(admin_client, rf, admin_user)
    assert len(set(said.values())) == 1, said
    assert said["check"].startswith("OK: database 'default' matches the saved state of commit")

    call_command("migrate", "ledger", "0002_backfill", verbosity=0)  # drift
    said = _four_sentences(admin_client, rf, admin_user)
    assert len(set(said.values())) == 1, said
    assert "no longer matches the saved state" in said["check"]
    call_command("migrate", verbosity=0)

    plan = services.plan_rollback(tag="v1.2.0")
    services.execute(plan)  # HEAD (v2.0.0) is now rolled back from
    said = _four_sentences(admin_client, rf, admin_user)
    assert len(set(said.values())) == 1, said
    sentence = said["check"]
    assert "has no saved state" in sentence and "rolled back to commit" in sentence
    assert "deploy that release now, or run migrate to return to this one" in sentence
    assert panel.releases["v1.2.0"].sha in sentence


def test_json_list_carries_the_standing(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    document = json.loads(project.ok("rollback_migrations", "--list", "--json"))
    assert document["standing"]["status"] == "ok"
    assert document["standing"]["message"] == project.ok("rollback_migrations", "--check").strip()
