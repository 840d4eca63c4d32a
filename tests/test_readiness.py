"""Ready before the bad night: the readiness line of every save, reviewed reverse overrides
for a third-party app's irreversible migration, the dress rehearsal, and the round trip.

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

VENDOR = Path(__file__).parent / "vendor"

REVERSIBLE = '        migrations.AddField(model_name="book", name="pages", field=models.IntegerField(null=True)),\n'
IRREVERSIBLE = "        migrations.RunPython(lambda apps, se: None),\n"


def two_releases(
    tmp_path: Path, databases: dbtools.Databases, operations: str, extra: str = ""
) -> tuple[Project, dict[str, str], list[tuple[str, dict[str, str | None]]]]:
    """The one-app shelf project with v1 deployed; v2 written and committed, not deployed."""
    releases = shelf_releases(operations, extra)
    project, shas = make_project(tmp_path / "repo", databases, releases[:1])
    write_release(project.path, releases[1][1])
    shas["v2"] = commit_release(project.path, "v2")
    project.ok("migrate", "--no-input")
    return project, shas, releases


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


# --- 3. the dress rehearsal ----------------------------------------------------------------

# The reverse code copies the ISBN into the title, which is NOT NULL: fine while every book
# has an ISBN, an IntegrityError with the first book that has none.
TITLE_FROM_ISBN = """
def title_from_isbn(apps, schema_editor):
    Book = apps.get_model("shelf", "Book")
    for book in Book.objects.order_by("pk"):
        Book.objects.filter(pk=book.pk).update(title=book.isbn)
"""
REHEARSED = "        migrations.RunPython(migrations.RunPython.noop, title_from_isbn),\n"


def rehearsal_project(
    tmp_path: Path, databases: dbtools.Databases
) -> tuple[Project, dict[str, str]]:
    project, shas = make_project(
        tmp_path / "repo", databases, shelf_releases(REHEARSED, TITLE_FROM_ISBN)
    )
    dbtools.execute(project.url, "UPDATE shelf_book SET isbn = '9780441013593'")
    return project, shas


def everything_but_logs(url: str) -> dict[str, object]:
    found = dbtools.everything(url)
    found.pop("logs")
    return found


@pytest.mark.skipif(dbtools.BACKEND == "mysql", reason="refused there; see the next test")
def test_rehearsal_runs_every_step_times_it_and_changes_nothing(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas = rehearsal_project(tmp_path, databases)
    before = everything_but_logs(project.url)
    result = project.manage("rollback_migrations", "--rehearse", "-t", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unapplying shelf.0003_change... OK (" in result.stdout
    assert "Unapplying shelf.0002_book_isbn... OK (" in result.stdout
    assert "Rehearsal finished: 2 migrations unapplied in " in result.stdout
    assert "locks" in result.stderr  # the warning about the locks held until it ends
    assert everything_but_logs(project.url) == before
    assert [row[0] for row in dbtools.logs(project.url) or []] == ["rehearsal"]
    document = json.loads(project.ok("rollback_migrations", "--rehearse", "--json"))
    assert document["result"]["status"] == "rehearsed"
    assert set(document["result"]["step_seconds"]) == {"shelf.0003_change", "shelf.0002_book_isbn"}
    assert everything_but_logs(project.url) == before
    # And the real rollback afterwards works as rehearsed.
    project.ok("rollback_migrations")
    assert ("shelf", "0003_change") not in dbtools.applied(project.url)


@pytest.mark.skipif(dbtools.BACKEND == "mysql", reason="refused there; see the next test")
def test_rehearsal_that_fails_on_real_rows_names_the_step_and_leaves_everything(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    project, shas = rehearsal_project(tmp_path, databases)
    # A production row the test data never had: a book without an ISBN.
    dbtools.execute(project.url, "INSERT INTO shelf_book (title, isbn) VALUES ('Solaris', NULL)")
    before = everything_but_logs(project.url)
    result = project.manage("rollback_migrations", "--rehearse")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "Rehearsal: rollback failed at shelf.0003_change:" in error
    assert "nothing was changed" in error
    assert everything_but_logs(project.url) == before
    [(status, _, _, logged)] = dbtools.logs(project.url) or []
    assert status == "rehearsal" and "shelf.0003_change" in logged
    # The real rollback fails at the same step, with the same reason.
    real = project.manage("rollback_migrations")
    assert real.returncode == 1
    real_error = real.stderr.strip().splitlines()[-1]
    assert "Rollback failed at shelf.0003_change:" in real_error
    assert (
        error.split("shelf.0003_change:")[1].split(";")[0]
        == (real_error.split("shelf.0003_change:")[1].split(";")[0])
    )


@pytest.mark.skipif(dbtools.BACKEND != "mysql", reason="MySQL/MariaDB only")
def test_rehearsal_is_refused_on_mysql(tmp_path: Path, databases: dbtools.Databases) -> None:
    project, _ = rehearsal_project(tmp_path, databases)
    assert_refused(project, "rollback_migrations", "--rehearse", says="Cannot rehearse on")


# --- 4. the round trip ---------------------------------------------------------------------


def test_round_trip_passes_when_the_reverse_restores_the_schema(
    tmp_path: Path, databases: dbtools.Databases
) -> None:
    operations = (
        REVERSIBLE
        + '        migrations.AddIndex(model_name="book", index=models.Index(fields=["title"], name="shelf_title_idx")),\n'
    )
    project, shas = make_project(tmp_path / "repo", databases, shelf_releases(operations))
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--round-trip", "v1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Round trip v1 → HEAD → v1 → HEAD passed: 2 migrations" in result.stdout
    assert dbtools.everything(project.url) == before  # the project's database untouched


FORGETFUL = """

class ForgetfulAlterField(migrations.AlterField):
    \"\"\"Gives the column a database default, and forgets to take it away backwards.\"\"\"

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass
"""


@pytest.mark.parametrize(
    ("operations", "extra", "differences"),
    [
        (
            # The reverse forgets the index that the forward SQL created; migrating forward
            # again then trips over it.
            '        migrations.RunSQL("CREATE INDEX shelf_title_idx ON shelf_book (title)", migrations.RunSQL.noop),\n',
            "",
            [
                'table "shelf_book": index',
                "shelf_title_idx",
                "on (title) unexpected",
                "migrating forward again failed",
            ],
        ),
        (
            # The reverse leaves the column with the default the forward gave it.
            '        ForgetfulAlterField(model_name="book", name="title", field=models.CharField(max_length=50, db_default="untitled")),\n',
            FORGETFUL,
            ['table "shelf_book", column "title": default', "untitled", "expected None"],
        ),
    ],
    ids=["index", "default"],
)
def test_round_trip_catches_a_schema_the_reverse_does_not_restore(
    tmp_path: Path,
    databases: dbtools.Databases,
    operations: str,
    extra: str,
    differences: list[str],
) -> None:
    project, _ = make_project(tmp_path / "repo", databases, shelf_releases(operations, extra))
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--round-trip", "v1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for words in differences:
        assert words in result.stdout, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Round trip v1 → HEAD → v1 → HEAD failed: " in errors[0]
    assert dbtools.everything(project.url) == before


def test_schema_comparison_names_every_kind_of_difference() -> None:
    from collections import Counter

    from django_rollback.roundtrip import compare

    def table(default: str | None, null: bool, kind: str) -> dict[str, object]:
        return {
            "columns": {"title": {"type": "CharField(50)", "null": null, "default": default}},
            "constraints": Counter({(kind, "shelf_title_idx", ("title",)): 1}),
        }

    reference = {"shelf_book": table(None, False, "index (btree)"), "gone": table(None, True, "")}
    found = {
        "shelf_book": table("'untitled'", True, "unique index"),
        "extra": table(None, True, ""),
    }
    assert compare(reference, found) == [
        'table "gone": missing',
        'table "extra": unexpected (not in the reference schema)',
        'table "shelf_book", column "title": null True, expected False',
        'table "shelf_book", column "title": default "\'untitled\'", expected None',
        'table "shelf_book": index (btree) "shelf_title_idx" on (title) missing',
        'table "shelf_book": unique index "shelf_title_idx" on (title) unexpected',
    ]
    assert compare(reference, reference) == []
