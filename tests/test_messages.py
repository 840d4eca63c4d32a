"""The messages of the commands: flags named, paths, tags, plurals, short hashes, colour."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import git
from .projects import History, Project, assert_refused
from .shelf import make_shelf
from .terminal import Terminal, stderr_line


@pytest.fixture
def shelf(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, dict[str, str]]:
    return make_shelf(tmp_path, databases)


def test_current_commit_blames_its_own_flag(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    result = assert_refused(
        project, "rollback_migrations", "--current-commit", "abc", says='--current-commit "abc"'
    )
    assert "--commit " not in result.stderr.replace("--current-commit", "")


def test_path_messages(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0")
    line = stderr_line(
        assert_refused(project, "rollback_migrations", "-p", "/nonexistent", says="does not exist")
    )
    assert "DJANGO_ROLLBACK_COMMIT" not in line
    out = project.ok("rollback_migrations", "--list", "-p", str(tmp_path))
    assert out.lower().count("the current commit is unknown") == 1, out
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(
        other,
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    out = project.ok("rollback_migrations", "--list", "-p", str(other))
    assert "[]" not in out and "(no tags)" in out


def test_unknown_tag_lists_the_nearest_known_ones(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    line = stderr_line(
        assert_refused(project, "rollback_migrations", "-t", "v1.2", says='Unknown tag "v1.2"')
    )
    assert "Nearest known tags: v1.2.0" in line


def test_tag_adds_to_gits_tags_and_warns_when_git_disagrees(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0")
    sha = shop.releases["v1.1.0"].sha
    result = project.manage("save_migrations_state", "--tag", "hotfix")
    assert result.returncode == 0, result.stderr
    assert f"Tags of commit \"{sha}\" ['hotfix', 'v1.1.0'] refreshed." in result.stdout
    assert "git does not tag commit" in result.stderr and "hotfix" in result.stderr
    out = project.ok("save_migrations_state", "--tag", "v1.1.0", "--replace-tags")
    assert f"State for commit \"{sha}\" ['v1.1.0'] was already saved." in out


def test_plurals(shelf: tuple[Project, dict[str, str]]) -> None:
    from django_rollback.planning import DataLoss

    # (": lost" since issue 12: a DataLoss not archived says so)
    assert DataLoss("t", None, 1).describe() == 'drops table "t" (1 row): lost'
    assert DataLoss("t", "c", 1).describe() == 'drops column "t"."c" (1 non-null value): lost'
    project, _shas = shelf
    out = project.ok("rollback_migrations", "--fake", "-t", "v1")
    assert "2 migrations in 1 app to unapply." in out


def test_one_short_hash_length(panel) -> None:  # type: ignore[no-untyped-def]
    from django_rollback.admin.common import commit_code
    from django_rollback.models import SHORT_COMMIT_LENGTH, MigrationState, RollbackLog

    state = MigrationState.objects.latest_state()
    assert state is not None and len(state.short_commit) == SHORT_COMMIT_LENGTH
    assert f">{state.short_commit}<" in commit_code(state.commit)
    assert str(RollbackLog(from_commit=state.commit, to_commit=state.commit, status="x")) == (
        f"{state.short_commit} → {state.short_commit} (x)"
    )
    assert str(RollbackLog._meta.verbose_name_plural) == "rollback log entries"


def test_no_color_on_a_terminal(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    colored = Terminal(project, "rollback_migrations", "--check")
    assert colored.finish() == 0 and "\x1b[" in colored.output
    plain = Terminal(project, "rollback_migrations", "--check", "--no-color")
    assert plain.finish() == 0 and "\x1b[" not in plain.output
    assert plain.output.strip().startswith("OK: database 'default' matches")
