"""Issue 10: the commands never do what a Django user did not ask for, and always tell the
same truth about where the database stands (--check, --list, the admin's two panels)."""

from __future__ import annotations

import html
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

import pytest

from django_rollback.locks import sqlite_lock_path

from . import dbtools
from .gitrepo import git
from .projects import History, Project, assert_refused, make_project
from .shop import shelf_releases

# --- helpers -------------------------------------------------------------------------------


def _env(project: Project, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DATABASE_URL": project.url,
        "PYTHONDONTWRITEBYTECODE": "1",
        **(extra or {}),
    }


class Terminal:
    """manage.py run on a pseudo-terminal, as an operator types it."""

    def __init__(self, project: Project, *args: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=project.path,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_env(project),
            close_fds=True,
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str) -> str:
        """Everything printed until `text` appears (or the command ends)."""
        while text not in self.output:
            ready, _, _ = select.select([self.master], [], [], 120)
            assert ready, f"no {text!r} in:\n{self.output}"
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            self.output += chunk.decode(errors="replace")
        return self.output

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def finish(self) -> int:
        self.read_until("\0")  # everything until the end
        code = self.process.wait(timeout=120)
        os.close(self.master)
        return code


def stderr_line(result: subprocess.CompletedProcess) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line.removeprefix("CommandError: ")


# --- 1. --sql only prints; --dry-run is --fake ---------------------------------------------


def test_sql_alone_only_prints_the_sql_like_sqlmigrate(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--sql", "-t", "v1.2.0")
    assert result.returncode == 0, result.stderr
    assert "-- Unapply orders.0004_b_order_priority" in result.stdout
    assert "Rollback successfully" not in result.stdout and "Unapplying" not in result.stdout
    assert dbtools.everything(project.url) == before  # not even a dry-run log entry


def test_execute_needs_sql_and_sql_execute_prints_and_rolls_back(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    assert_refused(
        project, "rollback_migrations", "--execute", says="--execute only goes with --sql"
    )
    assert_refused(
        project, "rollback_migrations", "--fake", "--sql", "--execute", says="--execute only"
    )
    out = project.ok("rollback_migrations", "--sql", "--execute", "--no-input", "-t", "v1.2.0")
    assert "SQL of the plan:" in out and "-- Unapply orders.0004_b_order_priority" in out
    assert "Rollback successfully finished" in out
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


def test_dry_run_is_the_clear_name_of_fake(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    dry = project.ok("rollback_migrations", "--dry-run", "-t", "v1.2.0")
    fake = project.ok("rollback_migrations", "--fake", "-t", "v1.2.0")
    assert dry == fake and "Dry run finished: 3 migrations would be unapplied" in dry
    after = dbtools.everything(project.url)
    assert [log[0] for log in after.pop("logs")] == ["dry_run", "dry_run"]  # type: ignore[union-attr]
    before.pop("logs")
    assert after == before


# --- 2. the prompt on a terminal ------------------------------------------------------------


def test_a_rollback_on_a_terminal_asks_and_no_cancels(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    terminal = Terminal(project, "rollback_migrations", "-t", "v1.0.0")
    shown = terminal.read_until("Type 'yes' to roll back")
    assert "Rollback from commit" in shown and "12 migrations in " in shown
    assert 'drops table "shipping_shipment" (4 rows)' in shown
    terminal.type("no")
    assert terminal.finish() == 1
    assert "Rollback cancelled: nothing was changed." in terminal.output
    assert dbtools.everything(project.url) == before


def test_a_rollback_on_a_terminal_runs_after_yes(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    terminal = Terminal(project, "rollback_migrations", "-t", "v1.2.0")
    terminal.read_until("Type 'yes' to roll back")
    terminal.type("yes")
    assert terminal.finish() == 0, terminal.output
    assert "Rollback successfully finished" in terminal.output
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


@pytest.mark.parametrize("flag", ["--no-input", "--noinput"])
def test_no_input_on_a_terminal_does_not_ask(shop: History, flag: str) -> None:
    project = shop.deploy("v1.3.0")
    terminal = Terminal(project, "rollback_migrations", flag, "-t", "v1.2.0")
    assert terminal.finish() == 0, terminal.output
    assert "Type 'yes'" not in terminal.output
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


def test_without_a_terminal_it_does_not_ask(shop: History) -> None:
    project = shop.deploy("v1.3.0")  # Project.manage: stdin is /dev/null, as in an entrypoint
    out = project.ok("rollback_migrations", "-t", "v1.2.0")
    assert "Type 'yes'" not in out and "Rollback successfully finished" in out


# --- 3. saving right after a rollback ----------------------------------------------------------


def test_save_refuses_unapplied_migrations_after_a_rollback_until_migrate(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    result = assert_refused(
        project, "save_migrations_state", says="Not saved: 3 migrations on disk"
    )
    line = stderr_line(result)
    assert "orders.0004_b_order_priority" in line
    assert "deploy the release it went back to" in line and "run migrate" in line
    assert "--allow-unapplied" in line
    # The fix, either way: the older release saves (already saved) ...
    older = Project(shop.releases["v1.2.0"].worktree, project.url)
    assert "was already saved" in older.ok("save_migrations_state")
    # ... or migrate forward again; the same newer commit then saves normally.
    project.ok("migrate", "--no-input")
    out = project.ok("save_migrations_state")
    assert f'State successfully created for commit "{shop.releases["v1.3.0"].sha}"' in out
    assert project.ok("rollback_migrations", "--check").startswith("OK:")


def test_allow_unapplied_saves_deliberately(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    result = project.manage("save_migrations_state", "--allow-unapplied")
    assert result.returncode == 0, result.stderr
    assert "saved although 3 migrations on disk are not applied" in result.stderr
    states = dbtools.saved_states(project.url)
    assert states is not None and states[-1][0] == shop.releases["v1.3.0"].sha


# --- 4. one truth: --check, --list, the index panel and the states list ----------------------


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


# --- 5. Ctrl-C and SIGTERM -------------------------------------------------------------------

REVERSE_CODE = """
import os
import time
from pathlib import Path


def reverse(apps, schema_editor):
    mode = os.environ.get("SHELF_REVERSE", "")
    if mode == "block":  # a long data migration, interrupted by the operator
        Path(os.environ["SHELF_READY"]).write_text("running")
        while True:
            time.sleep(0.05)
    if mode == "violate":  # a reverse that breaks a constraint
        apps.get_model("shelf", "Book").objects.create(title=None)
"""
# Unapplied in reverse order: the column "note" is dropped first, then the reverse code runs.
OPERATIONS = (
    "        migrations.RunPython(migrations.RunPython.noop, reverse),\n"
    '        migrations.AddField(model_name="book", name="note", '
    "field=models.CharField(max_length=20, null=True)),\n"
)


@pytest.fixture
def shelf(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, dict[str, str]]:
    return make_project(tmp_path / "shelf", databases, shelf_releases(OPERATIONS, REVERSE_CODE))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_rollback_says_what_it_changed_and_closes_its_log_entry(
    shelf: tuple[Project, dict[str, str]], tmp_path: Path, signum: int, code: int
) -> None:
    project, _shas = shelf
    before = dbtools.everything(project.url)
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rollback_migrations", "-t", "v1"],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(project, {"SHELF_REVERSE": "block", "SHELF_READY": str(ready)}),
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stdout + stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    after = dbtools.everything(project.url)
    logs = after.pop("logs")
    assert logs[-1][0] == "interrupted", logs  # type: ignore[index]
    if dbtools.BACKEND == "mysql":  # DDL is not transactional: the column is gone
        assert "Interrupted at shelf.0003_change" in line
        return
    assert "Interrupted: nothing was changed" in line
    before.pop("logs")
    assert after == before


def test_a_dry_run_cleans_a_stale_running_entry(shelf: tuple[Project, dict[str, str]]) -> None:
    project, _shas = shelf
    project.ok("rollback_migrations", "--fake", "-t", "v1")
    dbtools.execute(project.url, "UPDATE django_rollback_rollbacklog SET status = 'running'")
    project.ok("rollback_migrations", "--dry-run", "-t", "v1")
    logs = dbtools.logs(project.url)
    assert logs is not None and [log[0] for log in logs] == ["interrupted", "dry_run"]


def test_a_failing_step_reports_the_first_error(shelf: tuple[Project, dict[str, str]]) -> None:
    project, _shas = shelf
    result = project.manage("rollback_migrations", "-t", "v1", env={"SHELF_REVERSE": "violate"})
    assert result.returncode == 1
    line = stderr_line(result)
    assert line.startswith("Rollback failed at shelf.0003_change:"), line
    assert "An error occurred in the current transaction" not in line
    assert "title" in line.lower() or "null" in line.lower(), line


def test_a_command_waiting_for_the_lock_says_so(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    with dbtools.rollback_lock_held(project.url):
        result = project.manage("save_migrations_state", "--wait", "0.5")
    assert result.returncode == 1
    assert "Waiting up to 0.5s for the rollback running on database 'default'" in result.stdout
    assert "A rollback is running" in stderr_line(result)


# --- 6. the SQLite lock is never beside the database ----------------------------------------


@pytest.mark.skipif(dbtools.BACKEND != "sqlite", reason="the lock of SQLite databases")
def test_the_sqlite_lock_is_not_a_file_beside_the_database(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    database = "/" + project.url.split(":///", 1)[1].lstrip("/")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    assert not Path(f"{database}.rollback-lock").exists()
    assert sqlite_lock_path(database).startswith(tempfile.gettempdir())
    assert not any(Path(database).parent.glob("*rollback-lock*"))


# --- 7. -v, --version ------------------------------------------------------------------------


def test_verbosity_zero_prints_the_last_line_and_two_the_applied_set(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    out = project.ok("save_migrations_state", "-v", "0")
    assert out.strip().splitlines() == [
        f"State for commit \"{shop.releases['v1.3.0'].sha}\" ['v1.3.0'] was already saved."
    ]
    out = project.ok("save_migrations_state", "-v", "2")
    count = len(dbtools.applied(project.url))
    assert f"Applied ({count} migrations):" in out and "\n  orders: 0001_initial, " in out
    out = project.ok("rollback_migrations", "-v", "0", "-t", "v1.2.0")
    [line] = out.strip().splitlines()
    assert line.startswith("Rollback successfully finished")


def test_version_names_this_package() -> None:
    from django_rollback import __version__

    result = subprocess.run(
        [sys.executable, "-m", "django", "rollback_migrations", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == f"django-rollback {__version__}", result.stderr


# --- 8. messages -------------------------------------------------------------------------------


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


def test_json_list_carries_the_standing(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    document = json.loads(project.ok("rollback_migrations", "--list", "--json"))
    assert document["standing"]["status"] == "ok"
    assert document["standing"]["message"] == project.ok("rollback_migrations", "--check").strip()


def test_no_color_on_a_terminal(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    colored = Terminal(project, "rollback_migrations", "--check")
    assert colored.finish() == 0 and "\x1b[" in colored.output
    plain = Terminal(project, "rollback_migrations", "--check", "--no-color")
    assert plain.finish() == 0 and "\x1b[" not in plain.output
    assert plain.output.strip().startswith("OK: database 'default' matches")
