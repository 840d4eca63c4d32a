"""--all-databases: one command over every alias of DATABASES with saved states. A small project
with two aliases (two PostgreSQL databases, both migrated), released twice, driven through
manage.py subprocesses; with and without --atomic."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, init_repo, write_release
from .projects import Project
from .shop import ID, MANAGE, migration

needs_postgresql = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql", reason="two PostgreSQL databases (and --atomic) needed"
)

SETTINGS = """\
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
SECRET_KEY = "two"
USE_TZ = True
DATABASES = {"default": env.db("DATABASE_URL"), "reports": env.db("REPORTS_URL")}
INSTALLED_APPS = ["django.contrib.contenttypes", "django_rollback", "notes"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
"""

NOTES_0001 = migration(
    [],
    f"""\
        migrations.CreateModel(name="Note", fields=[
            {ID}, ("title", models.CharField(max_length=100)),
        ]),
""",
)
NOTES_0002 = migration(
    [("notes", "0001_initial")],
    f"""\
        migrations.CreateModel(name="Label", fields=[
            {ID}, ("name", models.CharField(max_length=30)),
        ]),
""",
)
MODELS_V1 = "from django.db import models\n\n\nclass Note(models.Model):\n" + (
    "    title = models.CharField(max_length=100)\n"
)
MODELS_V2 = (
    MODELS_V1 + "\n\nclass Label(models.Model):\n    name = models.CharField(max_length=30)\n"
)


@dataclass
class TwoDatabases(Project):
    reports: str = ""

    def manage(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return super().manage(
            *args,
            env={
                "DJANGO_SETTINGS_MODULE": "twodb.settings",
                "REPORTS_URL": self.reports,
                **(env or {}),
            },
        )


@pytest.fixture
def project(tmp_path: Path, databases: dbtools.Databases) -> TwoDatabases:
    if dbtools.BACKEND != "postgresql":
        pytest.skip("two PostgreSQL databases needed")
    repo = init_repo(tmp_path / "repo")
    deployed = TwoDatabases(repo, databases.new_url("twodef"), databases.new_url("tworep"))
    releases: list[tuple[str, dict[str, str | None]]] = [
        (
            "v1",
            {
                "manage.py": MANAGE.replace("shop.settings", "twodb.settings"),
                "twodb/__init__.py": "",
                "twodb/settings.py": SETTINGS,
                "notes/__init__.py": "",
                "notes/migrations/__init__.py": "",
                "notes/models.py": MODELS_V1,
                "notes/migrations/0001_initial.py": NOTES_0001,
            },
        ),
        ("v2", {"notes/models.py": MODELS_V2, "notes/migrations/0002_label.py": NOTES_0002}),
    ]
    for tag, files in releases:
        write_release(repo, files)
        commit_release(repo, tag)
        for alias in ("default", "reports"):
            deployed.ok("migrate", "--database", alias, "--no-input")
            deployed.ok("save_migrations_state", "--database", alias)
    return deployed


def has_labels(url: str) -> bool:
    return bool(dbtools.query(url, "SELECT 1 FROM pg_tables WHERE tablename = 'notes_label'"))


def prepared(url: str) -> list[tuple]:
    return dbtools.query(
        url, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
    )


def run(project: TwoDatabases, *args: str) -> tuple[int, dict]:
    result = project.manage("rollback_migrations", "-t", "v1", "--all-databases", *args, "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


@needs_postgresql
def test_all_databases_in_one_command_every_one_or_none(project: TwoDatabases) -> None:
    import psycopg2  # the PostgreSQL leg has it

    reader = psycopg2.connect(project.reports)  # the reports site reads its labels
    with reader.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM notes_label")
    try:
        code, document = run(project, "--atomic", "--lock-timeout", "1", "--retries", "0")
    finally:
        reader.close()

    assert code == 1, document
    entries = {entry["database"]: entry["status"] for entry in document["targets"]}
    assert entries == {"default": "aborted", "reports": "failed"}, document
    assert document["databases"] == ["default", "reports"]
    assert has_labels(project.url) and has_labels(project.reports)  # nothing changed anywhere
    assert prepared(project.url) == [] and prepared(project.reports) == []

    code, document = run(project, "--atomic")

    assert code == 0, document
    assert [(e["database"], e["status"]) for e in document["targets"]] == [
        ("default", "succeeded"),
        ("reports", "succeeded"),
    ]
    assert document["plans_built"] == 2  # one per database: plans never cross aliases
    assert not has_labels(project.url) and not has_labels(project.reports)
    assert prepared(project.url) == [] and prepared(project.reports) == []

    code, document = run(project)

    assert code == 0, document
    assert {e["status"] for e in document["targets"]} == {"done"}


def states(url: str) -> list[tuple]:
    return dbtools.query(url, "SELECT commit, tags FROM django_rollback_migrationstate ORDER BY id")


@needs_postgresql
def test_save_in_every_database_at_once(
    project: TwoDatabases, databases: dbtools.Databases
) -> None:
    repo = project.path
    write_release(repo, {"notes/README": "v3 changes no migration\n"})
    v3 = commit_release(repo, "v3")

    result = project.manage("save_migrations_state", "--all-databases", "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["databases"] == ["default", "reports"]
    assert [(t["database"], t["kind"], t["ok"]) for t in document["targets"]] == [
        ("default", "database", True),
        ("reports", "database", True),
    ]
    for url in (project.url, project.reports):
        assert states(url)[-1] == (v3, ["v3"])

    # A database that is not migrated: that one fails in one line, the other is saved.
    empty = databases.new_url("twoempty")
    write_release(repo, {"notes/README": "v4\n"})
    v4 = commit_release(repo, "v4")
    result = project.manage("save_migrations_state", "--all-databases", env={"REPORTS_URL": empty})

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "reports: failed: The django_rollback tables do not exist in database 'reports'" in (
        result.stderr
    )
    assert "Saved the state of 1 of 2 targets in databases default, reports. Failed: reports." in (
        result.stderr
    )
    assert states(project.url)[-1] == (v4, ["v4"])
    assert states(project.reports)[-1] == (v3, ["v3"])


@needs_postgresql
def test_a_database_that_does_not_answer(project: TwoDatabases) -> None:
    gone = {"REPORTS_URL": "postgres://postgres@127.0.0.1:1/reports"}  # nothing listens there
    before = states(project.url)

    result = project.manage(
        "rollback_migrations", "-t", "v1", "--all-databases", "--no-input", env=gone
    )

    # "Every database" must not quietly mean the others: refused, nothing changed.
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("CommandError: Database error on 'reports': "), lines
    assert lines[0].endswith(
        "Nothing was changed: bring it back, or roll the other databases back one by one "
        "with --database."
    )
    assert has_labels(project.url)

    # A save goes on with the others: that alias fails in one line.
    result = project.manage("save_migrations_state", "--all-databases", env=gone)

    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("reports: failed: Cannot connect to database 'reports': "), lines
    assert "Saved the state of 1 of 2 targets" in lines[-1], lines
    assert len(states(project.url)) == len(before)  # saved again: the same commit, updated
