"""Every bad input: one clear line, a non-zero exit, no traceback, the database as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import dbtools
from .gitrepo import git, init_repo
from .projects import History, Project, assert_refused, make_project
from .shop import shelf_releases
from .terminal import stderr_line


@pytest.fixture
def v110(shop: History) -> Project:
    return shop.deploy("v1.1.0")


def test_unknown_tag(v110: Project) -> None:
    assert_refused(v110, "rollback_migrations", "-t", "v9.9.9", says='Unknown tag "v9.9.9"')


def test_unknown_commit(v110: Project) -> None:
    assert_refused(v110, "rollback_migrations", "-c", "deadbeef", says='Unknown commit "deadbeef"')


@pytest.mark.parametrize("value", ["xyz123", "abc", "g" * 40, "a" * 41])
def test_not_a_commit_hash(v110: Project, value: str) -> None:
    assert_refused(v110, "rollback_migrations", "-c", value, says="is not a commit hash")


def test_ambiguous_commit_prefix_lists_candidates(v110: Project) -> None:
    for commit in ("abcd" + "1" * 36, "abcd" + "2" * 36):
        dbtools.execute(
            v110.url,
            'INSERT INTO django_rollback_migrationstate ("commit", tags, migrations, squashes, '
            f"saved_at) VALUES ('{commit}', '[]', '[]', '{{}}', CURRENT_TIMESTAMP)",
        )
    result = assert_refused(v110, "rollback_migrations", "-c", "ABCD", says="ambiguous")
    assert "abcd11111111" in result.stderr and "abcd22222222" in result.stderr


def test_tag_and_commit_together(v110: Project) -> None:
    assert_refused(v110, "rollback_migrations", "-t", "v1.0.0", "-c", "abcd", says="not both")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["rollback_migrations", "-c", "abcd", "--tag", "v1.0.0"],
            "CommandError: Choose -c/--commit or -t/--tag, not both.",
        ),
        (
            ["save_migrations_state", "--shared-only", "--tenants-only"],
            "CommandError: Choose --shared-only or --tenants-only, not both.",
        ),
        (
            ["restore_rollback_archive", "--list", "--purge", "1"],
            "CommandError: Choose --list or --purge, not both.",
        ),
        (
            ["rollback_migrations", "--lock-timeout", "soon"],
            "CommandError: Argument --lock-timeout: invalid float value: 'soon': "
            "see manage.py rollback_migrations --help.",
        ),
        (
            ["rollback_migrations", "--fake", "--no-such-flag"],
            "CommandError: Unrecognized arguments: --no-such-flag: "
            "see manage.py rollback_migrations --help.",
        ),
    ],
)
def test_options_argparse_refuses_in_one_line(v110: Project, args: list[str], says: str) -> None:
    """A mutually exclusive group, a bad value, an unknown flag: argparse's own refusals, from
    a shell, are one line and status 1 like the others (not its usage block and status 2, which
    --check and --require-rollback reserve for a deploy that must stop)."""
    result = assert_refused(v110, *args, says=says)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == says


def test_options_argparse_refuses_with_json_give_an_error_document(v110: Project) -> None:
    args = ("rollback_migrations", "--json", "--retries", "x")
    result = assert_refused(v110, *args, says="invalid int value: 'x'")
    assert json.loads(result.stdout) == {"ok": False, "error": stderr_line(result)}


@pytest.mark.parametrize("target", [["-t", "v1.0.0"], ["-c", "abcd"], ["--fake"]])
def test_list_with_a_target(v110: Project, target: list[str]) -> None:
    assert_refused(v110, "rollback_migrations", "--list", *target, says="--list only lists")


def test_path_missing(v110: Project) -> None:
    assert_refused(v110, "rollback_migrations", "-p", "/no/such/dir", says="does not exist")


def test_path_not_a_git_repository(v110: Project, tmp_path: Path) -> None:
    assert_refused(
        v110, "rollback_migrations", "-p", str(tmp_path), says="not inside a git repository"
    )


def test_repository_without_commits(v110: Project, tmp_path: Path) -> None:
    empty = init_repo(tmp_path / "empty")
    assert_refused(v110, "save_migrations_state", "-p", str(empty), says="has no commits yet")
    assert_refused(v110, "rollback_migrations", "-p", str(empty), says="has no commits yet")


def test_head_never_saved(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0", own_checkout=tmp_path / "checkout")
    git(project.path, "commit", "-q", "--allow-empty", "-m", "hotfix, never deployed")
    assert_refused(
        project, "rollback_migrations", says="has no saved state: run save_migrations_state"
    )


def test_target_never_saved(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0", own_checkout=tmp_path / "checkout")
    git(project.path, "commit", "-q", "--allow-empty", "-m", "never deployed")
    unsaved = git(project.path, "rev-parse", "HEAD")
    tag = f"unsaved-{unsaved[:8]}"
    git(project.path, "tag", tag)
    git(project.path, "checkout", "-q", "--detach", "v1.1.0")
    assert_refused(project, "rollback_migrations", "-t", tag, says="whose state was never saved")
    assert_refused(project, "rollback_migrations", "-c", unsaved[:10], says="was never saved")


def test_no_previous_state(shop: History) -> None:
    project = shop.deploy("v1.0.0")
    assert_refused(project, "rollback_migrations", says="nothing to roll back to")


def test_target_equal_to_current_is_nothing_to_do(v110: Project) -> None:
    before = dbtools.everything(v110.url)
    out = v110.ok("rollback_migrations", "-t", "v1.1.0")
    assert "Nothing to do" in out
    assert dbtools.everything(v110.url) == before


def test_target_newer_than_current(shop: History) -> None:
    # The database went to v1.3.0, but this is the v1.1.0 image: it cannot go "back" to v1.3.0.
    project = shop.deploy("v1.3.0")
    older = Project(shop.releases["v1.1.0"].worktree, project.url)
    assert_refused(older, "rollback_migrations", "-t", "v1.3.0", says="a rollback only goes back")


def test_migration_file_missing_for_a_step(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.3.0", own_checkout=tmp_path / "checkout")
    (project.path / "orders/migrations/0005_merge.py").unlink()
    assert_refused(project, "rollback_migrations", says="Migration file missing: orders.0005_merge")


def test_migration_file_missing_under_another_one(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.3.0", own_checkout=tmp_path / "checkout")
    (project.path / "shipping/migrations/0002_backfill.py").unlink()
    assert_refused(project, "rollback_migrations", says="Cannot load the migration files")


def test_tables_not_migrated_yet(v110: Project) -> None:
    v110.ok("migrate", "django_rollback", "zero")
    for command in ("save_migrations_state", "rollback_migrations"):
        assert_refused(v110, command, says="run `manage.py migrate` first")


def test_database_down(shop: History, tmp_path: Path) -> None:
    if dbtools.BACKEND == "postgresql":
        url = "postgres://postgres@127.0.0.1:1/nowhere"
    elif dbtools.BACKEND == "mysql":
        url = "mysql://root@127.0.0.1:1/nowhere"
    else:
        url = f"sqlite:///{tmp_path}/missing-dir/db.sqlite3"
    project = Project(shop.releases["v1.1.0"].worktree, url)
    for args in (
        ["save_migrations_state"],
        ["rollback_migrations"],
        ["rollback_migrations", "--list"],
    ):
        result = project.manage(*args)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(
            "CommandError: Cannot connect to database 'default'"
        )
        assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_database_alias(v110: Project) -> None:
    assert_refused(
        v110, "rollback_migrations", "--database", "other", says="Unknown database alias"
    )


def test_log_level_errors(v110: Project) -> None:
    assert_refused(
        v110,
        "save_migrations_state",
        "-l",
        "deploy",
        "--log-level",
        "LOUD",
        says="Unknown log level",
    )
    assert_refused(v110, "save_migrations_state", "--log-level", "INFO", says="needs -l/--logger")


def test_irreversible_step_is_named_and_nothing_runs(
    databases: dbtools.Databases, tmp_path: Path
) -> None:
    project, _ = make_project(
        tmp_path / "shelf",
        databases,
        shelf_releases(
            "        migrations.RunPython(forwards),\n",
            "def forwards(apps, schema_editor):\n    pass\n",
        ),
    )
    assert_refused(
        project,
        "rollback_migrations",
        says="Irreversible: shelf.0003_change (RunPython without reverse_code)",
    )
    result = assert_refused(project, "rollback_migrations", "--fake", says="would be refused")
    assert "Blocked: Irreversible: shelf.0003_change" in result.stdout


def test_failing_step_leaves_everything_as_it_was(
    databases: dbtools.Databases, tmp_path: Path
) -> None:
    # Backwards, 0003 first drops `pages` (fine), then its reverse code fails.
    project, shas = make_project(
        tmp_path / "shelf",
        databases,
        shelf_releases(
            "        migrations.RunPython(migrations.RunPython.noop, boom),\n"
            '        migrations.AddField(model_name="book", name="pages",'
            " field=models.IntegerField(null=True)),\n",
            'def boom(apps, schema_editor):\n    raise RuntimeError("reverse code failed")\n',
        ),
    )
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Rollback failed at shelf.0003_change: reverse code failed" in result.stderr
    after = dbtools.everything(project.url)
    failed_log = after.pop("logs")[-1]
    before.pop("logs")
    assert failed_log[:3] == ("failed", shas["v2"], shas["v1"])
    if dbtools.BACKEND == "mysql":
        # No transactional DDL: the column dropped before the failure stays dropped, nothing
        # is recorded as unapplied, the saved states stay, and the message says so.
        assert "0 steps before it stay unapplied; saved states unchanged" in result.stderr
        assert '"pages"' in str(before.pop("schema"))
        assert '"pages"' not in str(after.pop("schema"))
        # ... and its values were archived before the drop (issue 12): nothing is lost
        assert before.pop("archives") == [] and len(after.pop("archives")) == 1
        assert after == before
        return
    assert "the database is unchanged" in result.stderr
    assert after == before


def test_second_rollback_while_one_runs_is_refused(v110: Project) -> None:
    with dbtools.rollback_lock_held(v110.url):
        assert_refused(v110, "rollback_migrations", says="Another rollback is running")
    # A rollback whose process died left its row "running"; the next one marks it.
    dbtools.execute(
        v110.url,
        "INSERT INTO django_rollback_rollbacklog (started_at, status, database, from_commit, "
        'from_tags, to_commit, to_tags, plan, output, error, "user", source, host, '
        "pruned_states, fingerprint, steps_total, steps_done, running_step) VALUES "
        "(CURRENT_TIMESTAMP, 'running', 'default', 'a', '[]', 'b', '[]', "
        "'[]', '', '', '', 'command', '', '[]', '', 0, 0, '')",
    )
    v110.ok("rollback_migrations")  # the lock is free again
    assert [row[0] for row in dbtools.logs(v110.url)] == ["interrupted", "succeeded"]
