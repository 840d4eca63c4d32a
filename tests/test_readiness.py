"""Ready before the bad night: the readiness line of every save, and reviewed reverse
overrides for a third-party app's irreversible migration (the dress rehearsal is in
test_rehearse.py, the round trip in test_round_trip.py).

Every test deploys a real project (git repository, migration files, `manage.py` in a process
of its own) on the backend of DATABASE_URL, and reads the outcome through the raw drivers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, write_release
from .projects import Project, assert_refused, make_project
from .shop import SETTINGS, shelf_releases
from .two_releases import IRREVERSIBLE, REVERSIBLE, two_releases

VENDOR = Path(__file__).parent / "vendor"


# --- 1. readiness at every save ------------------------------------------------------------


def test_save_says_the_rollback_to_the_previous_state_is_possible(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas, _ = two_releases(tmp_path, databases, REVERSIBLE)
    out = project.ok("save_migrations_state")
    assert f"Rollback to commit \"{shas['v1']}\" ['v1'] is possible: 2 migrations in 1 app." in out
    # Saving again (every container start) says it again, and nothing was rolled back.
    assert "is possible: 2 migrations in 1 app." in project.ok("save_migrations_state")
    assert ("shelf", "0003_change") in dbtools.applied(project.url)
    document = json.loads(project.ok("save_migrations_state", "--json", "--require-rollback"))
    assert document["ok"] is True and document["command"] == "save"
    assert document["state"]["commit"] == shas["v2"]
    assert document["readiness"]["possible"] is True
    assert document["readiness"]["target"]["commit"] == shas["v1"]
    assert document["readiness"]["migrations"] == 2
    assert document["readiness"]["irreversible"] == []


def test_save_warns_when_the_rollback_is_impossible_and_the_gate_exits_2(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas, _ = two_releases(tmp_path, databases, IRREVERSIBLE)
    line = (
        f"a rollback to commit \"{shas['v1']}\" ['v1'] is NOT possible: irreversible: "
        "shelf.0003_change (RunPython without reverse_code)."
    )
    result = project.manage("save_migrations_state")
    assert result.returncode == 0, result.stderr
    assert f"Warning: {line}" in result.stderr
    # The deploy gate: exit 2 and one line, the state saved all the same.
    gated = project.manage("save_migrations_state", "--require-rollback")
    assert gated.returncode == 2, gated.stdout + gated.stderr
    errors = [x for x in gated.stderr.splitlines() if x.strip()]
    assert len(errors) == 1 and "Traceback" not in gated.stderr
    assert line[2:] in errors[0]
    assert [commit for commit, _ in dbtools.saved_states(project.url) or []] == [
        shas["v1"],
        shas["v2"],
    ]
    document = json.loads(
        project.manage("save_migrations_state", "--json", "--require-rollback").stdout
    )
    assert document["ok"] is False
    assert document["readiness"]["possible"] is False
    assert document["readiness"]["irreversible"] == [
        {"migration": "shelf.0003_change", "reason": "RunPython without reverse_code"}
    ]
    assert document["state"]["commit"] == shas["v2"]


def test_first_save_has_no_readiness_line(tmp_path: Path, databases: dbtools.Databases) -> None:
    releases = shelf_releases(REVERSIBLE)
    project, _ = make_project(tmp_path / "repo", databases, releases[:1])
    out = project.ok("save_migrations_state")
    assert "Rollback to" not in out
    assert json.loads(project.ok("save_migrations_state", "--json"))["readiness"] is None


# --- 2. reverse overrides for a third-party app --------------------------------------------

OVERRIDES = """
def restore_scope(apps, schema_editor):
    # Reviewed: the bootstrap token the vendor's migration adds goes away again.
    apps.get_model("legacy_tokens", "Token").objects.filter(key="bootstrap").delete()
"""


def vendor_releases(reverse: str | None) -> list[tuple[str, dict[str, str | None]]]:
    """v1: the shelf app alone; v2: the installed third-party app legacy_tokens added, with
    DJANGO_ROLLBACK["REVERSE"] set to `reverse` (a Python literal) when given."""
    first = shelf_releases(REVERSIBLE)[0]
    settings = SETTINGS.format(apps=["django_rollback", "shelf", "legacy_tokens"])
    if reverse is not None:
        settings += f'DJANGO_ROLLBACK["REVERSE"] = {reverse}\n'
    second: dict[str, str | None] = {
        "shop/settings.py": settings,
        "shop/rollback.py": OVERRIDES,
    }
    return [first, ("v2", second)]


@pytest.fixture
def vendor_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """legacy_tokens is installed, not part of the project's repository."""
    monkeypatch.setenv("PYTHONPATH", str(VENDOR))


def deploy_vendor(
    tmp_path: Path, databases: dbtools.Databases, reverse: str | None
) -> tuple[Project, dict[str, str], subprocess.CompletedProcess[str]]:
    releases = vendor_releases(reverse)
    project, shas = make_project(tmp_path / "repo", databases, releases[:1])
    write_release(project.path, releases[1][1])
    shas["v2"] = commit_release(project.path, "v2")
    project.ok("migrate", "--no-input")
    return project, shas, project.manage("save_migrations_state")


@pytest.mark.usefixtures("vendor_on_path")
def test_third_party_irreversible_migration_blocks_without_an_override(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas, saved = deploy_vendor(tmp_path, databases, None)
    assert "is NOT possible: irreversible: legacy_tokens.0002_fill_scope" in saved.stderr
    assert_refused(
        project, "rollback_migrations", says="Irreversible: legacy_tokens.0002_fill_scope"
    )


@pytest.mark.usefixtures("vendor_on_path")
@pytest.mark.parametrize(
    ("reverse", "marker"),
    [
        ('{"legacy_tokens.0002_fill_scope": "noop"}', "reverse from settings: no-op"),
        (
            '{"legacy_tokens.0002_fill_scope": "shop.rollback.restore_scope"}',
            "reverse from settings: shop.rollback.restore_scope()",
        ),
        (
            '{"legacy_tokens.0002_fill_scope": {"sql": "DELETE FROM legacy_tokens_token WHERE scope = \'read\'"}}',
            "reverse from settings: SQL",
        ),
    ],
    ids=["noop", "function", "sql"],
)
def test_reviewed_override_makes_the_third_party_migration_reversible(
    tmp_path: Path, databases: dbtools.Databases, reverse: str, marker: str
) -> None:
    project, shas, saved = deploy_vendor(tmp_path, databases, reverse)
    assert saved.returncode == 0, saved.stderr
    assert "is possible: 2 migrations in 1 app." in saved.stdout, saved.stdout + saved.stderr
    check = project.manage("check")
    assert check.returncode == 0 and "django_rollback.W" not in check.stdout + check.stderr
    preview = project.ok("rollback_migrations", "--fake")
    assert f"note: {marker}" in preview
    before_schema = dbtools.schema(project.url)
    assert any("legacy_tokens_token" in line for line in before_schema)
    project.ok("rollback_migrations")
    assert not any("legacy_tokens" in app for app, _ in dbtools.applied(project.url))
    assert "legacy_tokens_token" not in dbtools.tables(project.url)
    # The audit log keeps which override ran.
    [plan_json] = dbtools.query(
        project.url,
        "SELECT plan FROM django_rollback_rollbacklog WHERE status = 'succeeded'",
    )[0]
    plan = json.loads(plan_json) if isinstance(plan_json, str) else plan_json
    step = next(s for s in plan["steps"] if s["migration"] == "legacy_tokens.0002_fill_scope")
    assert step["reverse_override"]["kind"] in {"noop", "function", "sql"}
    [[output]] = dbtools.query(
        project.url, "SELECT output FROM django_rollback_rollbacklog WHERE status = 'succeeded'"
    )
    assert f"Unapplying legacy_tokens.0002_fill_scope... OK ({marker}" in output


@pytest.mark.usefixtures("vendor_on_path")
def test_check_warns_about_overrides_that_name_nothing_or_a_reversible_migration(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, _, _ = deploy_vendor(
        tmp_path,
        databases,
        '{"legacy_tokens.0009_gone": "noop", "shelf.0001_initial": "noop", '
        '"legacy_tokens.0002_fill_scope": "no.such.module.fn"}',
    )
    result = project.manage("check")
    out = result.stdout + result.stderr
    assert "django_rollback.W001" in out and "legacy_tokens.0009_gone" in out
    assert "django_rollback.W002" in out and "shelf.0001_initial" in out
    assert "django_rollback.W003" in out and "no.such.module.fn" in out
