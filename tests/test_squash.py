"""A squash that a newer release ships is recorded by its `migrate` (Django records a squash
as applied once everything it replaces is), though nothing of it runs. A rollback to the
release before it must leave django_migrations exactly as the target's state saved it, and
the drift check must treat a squash as what it replaces (as the planner does).

As django-cms 5.0.13 → 5.1.3 did: release 1 has cms 0001..0003; release 2 adds
0001_squashed_0003 (replacing them, the old files kept) and a new 0004."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import commit_release, git, init_repo, write_release
from .projects import Project
from .shop import ID, MANAGE, SETTINGS, app_files, migration

SQUASH = ("cms", "0001_squashed_0003_page_slug")
REPLACED = [("cms", "0001_initial"), ("cms", "0002_page_title"), ("cms", "0003_page_slug")]
CREATE_PAGE = f'        migrations.CreateModel(name="Page", fields=[{ID}]),\n'
ADD_TITLE = (
    '        migrations.AddField(model_name="page", name="title",'
    ' field=models.CharField(max_length=50, default="")),\n'
)
ADD_SLUG = (
    '        migrations.AddField(model_name="page", name="slug",'
    " field=models.CharField(max_length=50, null=True)),\n"
)
ADD_DEPTH = (
    '        migrations.AddField(model_name="page", name="depth",'
    " field=models.IntegerField(default=0)),\n"
)
ADD_ROWS = (
    "        migrations.RunPython(lambda apps, se: apps.get_model('cms', 'Page')"
    ".objects.create(title='home', slug='home'), migrations.RunPython.noop),\n"
)


def releases() -> list[tuple[str, dict[str, str | None]]]:
    first: dict[str, str | None] = {
        "manage.py": MANAGE,
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS.format(apps=["django_rollback", "cms"]),
        **app_files("cms"),
        "cms/migrations/__init__.py": "",
        "cms/migrations/0001_initial.py": migration([], CREATE_PAGE),
        "cms/migrations/0002_page_title.py": migration([REPLACED[0]], ADD_TITLE),
        "cms/migrations/0003_page_slug.py": migration([REPLACED[1]], ADD_SLUG + ADD_ROWS),
    }
    second: dict[str, str | None] = {
        f"cms/migrations/{SQUASH[1]}.py": migration(
            [], CREATE_PAGE + ADD_TITLE + ADD_SLUG + ADD_ROWS, replaces=REPLACED
        ),
        "cms/migrations/0004_page_depth.py": migration([REPLACED[2]], ADD_DEPTH),
    }
    return [("v1", first), ("v2", second)]


@dataclass
class Deployed:
    project: Project
    schema: dict[str, list[str]]
    applied: dict[str, set[tuple[str, str]]]


@pytest.fixture
def cms(databases: dbtools.Databases, tmp_path: Path) -> Deployed:
    """v1 then v2 deployed on one database; what each left is kept."""
    repo = init_repo(tmp_path / "cms")
    project = Project(repo, databases.new_url("squash"))
    deployed = Deployed(project, {}, {})
    for tag, files in releases():
        write_release(repo, files)
        commit_release(repo, tag)
        project.deploy()
        deployed.schema[tag] = dbtools.schema(project.url)
        deployed.applied[tag] = dbtools.applied(project.url)
    return deployed


def test_newer_migrate_records_the_squash(cms: Deployed) -> None:
    # The premise: v2's migrate recorded the squash although nothing of it ran.
    assert SQUASH not in cms.applied["v1"]
    assert cms.applied["v2"] == cms.applied["v1"] | {SQUASH, ("cms", "0004_page_depth")}


def test_rollback_leaves_exactly_the_targets_rows_and_check_passes(cms: Deployed) -> None:
    project = cms.project
    out = project.ok("rollback_migrations", "-t", "v1", "--fake")
    assert "cms.0001_squashed_0003_page_slug" in out  # the preview says the record goes
    project.ok("rollback_migrations", "-t", "v1", "--no-input")
    assert dbtools.applied(project.url) == cms.applied["v1"]
    assert dbtools.schema(project.url) == cms.schema["v1"]
    # The older release deployed: its drift check passes at once, before any save.
    git(project.path, "checkout", "-q", "v1")
    result = project.manage("rollback_migrations", "--check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
    # ... and the newer release comes back: migrate records the squash again.
    git(project.path, "checkout", "-q", "v2")
    project.deploy()
    assert dbtools.applied(project.url) == cms.applied["v2"]
    assert dbtools.schema(project.url) == cms.schema["v2"]


def test_drift_check_takes_a_squash_as_what_it_replaces(cms: Deployed) -> None:
    project = cms.project
    insert_squash = (
        "INSERT INTO django_migrations (app, name, applied) "
        f"VALUES ('{SQUASH[0]}', '{SQUASH[1]}', CURRENT_TIMESTAMP)"
    )
    delete_squash = f"DELETE FROM django_migrations WHERE name = '{SQUASH[1]}'"
    # v2's state has the squash row; without it, what it replaces is all applied: no drift.
    dbtools.execute(project.url, delete_squash)
    result = project.manage("rollback_migrations", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    dbtools.execute(project.url, insert_squash)
    # A squash row left behind (as a rollback without steps leaves it) while the release
    # whose state lacks it runs: not on disk, but the rollback's audit entry knew it.
    project.ok("rollback_migrations", "-t", "v1", "--no-input")
    git(project.path, "checkout", "-q", "v1")
    dbtools.execute(project.url, insert_squash)
    result = project.manage("rollback_migrations", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    # A migration that is really missing still counts as drift.
    dbtools.execute(project.url, "DELETE FROM django_migrations WHERE name = '0003_page_slug'")
    result = project.manage("rollback_migrations", "--check")
    assert result.returncode != 0 and "1 saved but not applied" in result.stdout + result.stderr


def test_a_release_that_only_ships_a_squash_is_rolled_back_to_the_targets_rows(
    databases: dbtools.Databases, tmp_path: Path
) -> None:
    """v2 adds the squash and nothing else: its migrate records the squash and runs nothing,
    so the rollback to v1 has no step to unapply, yet the record must go."""
    repo = init_repo(tmp_path / "cms")
    project = Project(repo, databases.new_url("squashonly"))
    (_, first), (_, second) = releases()
    only_the_squash = {f"cms/migrations/{SQUASH[1]}.py": second[f"cms/migrations/{SQUASH[1]}.py"]}
    applied = {}
    for tag, files in [("v1", first), ("v2", only_the_squash)]:
        write_release(repo, files)
        commit_release(repo, tag)
        project.deploy()
        applied[tag] = dbtools.applied(project.url)
    assert applied["v2"] == applied["v1"] | {SQUASH}  # the premise
    schema = dbtools.schema(project.url)
    preview = project.ok("rollback_migrations", "-t", "v1", "--fake")
    assert SQUASH[1] in preview, preview  # the preview says the record goes
    project.ok("rollback_migrations", "-t", "v1", "--no-input")
    assert dbtools.applied(project.url) == applied["v1"]
    assert dbtools.schema(project.url) == schema
    git(project.path, "checkout", "-q", "v1")
    result = project.manage("rollback_migrations", "--check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
