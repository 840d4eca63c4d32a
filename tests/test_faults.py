"""Faults: the rollback process killed at random moments, its connection cut, saves and
rollbacks racing each other, the audit write failing. After each, the database is either
exactly as before or exactly as after a complete rollback, and nothing is lost or hidden.

PostgreSQL only: it is the backend that promises all or nothing under a server-side lock.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from . import dbtools
from .gitrepo import git
from .projects import History, Project, make_project
from .shop import ID, migration, shelf_releases

pytestmark = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql",
    reason="fault tests run on PostgreSQL only (kills, pg_terminate_backend, advisory lock)",
)

SLOW_SECONDS = 0.6
KILLS = 20
SEED = int(os.environ.get("FAULT_SEED", "5"))

# v2 of a one-app project: three steps to unapply, the middle one slow (reverse SQL that
# sleeps), with data migrations that update and delete rows on the way back.
STEP_3 = (
    "        migrations.RunPython(fill_isbn, clear_isbn),\n"
    f'        migrations.RunSQL("SELECT 1", "SELECT pg_sleep({SLOW_SECONDS})"),\n'
    '        migrations.AddField(model_name="book", name="pages",'
    " field=models.IntegerField(null=True)),\n"
)
STEP_3_CODE = """
def fill_isbn(apps, schema_editor):
    apps.get_model("shelf", "Book").objects.update(isbn="0000000000000")


def clear_isbn(apps, schema_editor):
    apps.get_model("shelf", "Book").objects.update(isbn=None)
"""
STEP_4 = migration(
    [("shelf", "0003_change")],
    f'        migrations.CreateModel(name="Review", fields=[{ID}, '
    '("stars", models.IntegerField()), ("book", models.ForeignKey('
    'on_delete=django.db.models.deletion.CASCADE, to="shelf.book"))]),\n'
    "        migrations.RunPython(add_reviews, remove_reviews),\n",
    """
def add_reviews(apps, schema_editor):
    Review = apps.get_model("shelf", "Review")
    for book in apps.get_model("shelf", "Book").objects.all():
        Review.objects.create(book=book, stars=5)


def remove_reviews(apps, schema_editor):
    apps.get_model("shelf", "Review").objects.all().delete()
""",
)


def releases() -> list[tuple[str, dict[str, str | None]]]:
    (v1, first), (v2, second) = shelf_releases(STEP_3, STEP_3_CODE)
    return [(v1, first), (v2, {**second, "shelf/migrations/0004_review.py": STEP_4})]


def start(project: Project, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DATABASE_URL": project.url,
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )


def until_steps_start(process: subprocess.Popen) -> str:
    """Read the output up to the moment the first step starts."""
    assert process.stdout is not None
    seen = ""
    while not seen.endswith("Unapplying"):
        char = process.stdout.read(1)
        assert char, f"the rollback ended before its steps: {seen}"
        seen += char
    return seen


def settle(url: str, timeout: float = 30.0) -> None:
    """Wait until the server has noticed every dead client of this database (and so rolled
    back its transaction and released its advisory lock)."""
    name = urlparse(url).path.lstrip("/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(count,)] = dbtools.query(
            url,
            "SELECT COUNT(*) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        if count == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"connections to {name} still open after {timeout}s")


def without_logs(snapshot: dict) -> dict:
    return {key: value for key, value in snapshot.items() if key != "logs"}


class Shelf:
    """A deployed v2 (template database) and what the rollback to v1 leaves behind."""

    def __init__(self, databases: dbtools.Databases, root: Path) -> None:
        self.databases = databases
        self.project, self.shas = make_project(root, databases, releases())
        self.template = self.project.url
        self.before = dbtools.everything(self.template)
        reference = self.copy()
        process = start(reference, "rollback_migrations")
        head = until_steps_start(process)
        started = time.perf_counter()
        out, err = process.communicate()
        # From the first step to the exit: the window the kills aim at.
        self.seconds = time.perf_counter() - started
        assert process.returncode == 0 and "Unapplying shelf.0003_change" in out, head + out + err
        self.after = dbtools.everything(reference.url)
        assert self.after["logs"] == [("succeeded", self.shas["v2"], self.shas["v1"], "")]
        assert self.after["schema"] != self.before["schema"]

    def copy(self) -> Project:
        return Project(self.project.path, self.databases.clone(self.template, "fault"))

    def running_row(self) -> tuple:
        return ("running", self.shas["v2"], self.shas["v1"], "")

    def interrupted_row(self) -> tuple:
        return ("interrupted", self.shas["v2"], self.shas["v1"], "The rollback process stopped")

    def assert_untouched_then_rerun(self, project: Project, *, failed: str = "") -> None:
        """Exactly as before, with a "running" row at most (a "failed" row saying `failed`
        when the process lived to write it), and a new run succeeds and marks a "running"
        row interrupted."""
        now = dbtools.everything(project.url)
        assert without_logs(now) == without_logs(self.before)
        if failed:
            [(status, *_, error)] = now["logs"]
            assert status == "failed" and failed in error, now["logs"]
            stays = now["logs"]
        else:
            assert now["logs"] in ([], [self.running_row()]), now["logs"]
            stays = [self.interrupted_row()] if now["logs"] else []
        out = project.ok("rollback_migrations")
        assert "Rollback successfully finished" in out
        final = dbtools.everything(project.url)
        assert without_logs(final) == without_logs(self.after)
        # The interrupted entry names where it stopped: compare the start of its message.
        assert [(*row[:3], row[3][: len(self.interrupted_row()[3])]) for row in final["logs"]] == [
            (*row[:3], row[3][: len(self.interrupted_row()[3])])
            for row in stays + self.after["logs"]
        ]


@pytest.fixture(scope="module")
def shelf(databases: dbtools.Databases, tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf(databases, tmp_path_factory.mktemp("faults") / "shelf")


def test_sigkill_at_random_moments_leaves_before_or_after_and_rerun_succeeds(
    shelf: Shelf,
) -> None:
    rng = random.Random(SEED)
    moments = sorted(rng.uniform(0, shelf.seconds) for _ in range(KILLS))
    outcomes = {"unchanged": 0, "complete": 0}
    for moment in moments:
        project = shelf.copy()
        process = start(project, "rollback_migrations")
        until_steps_start(process)
        time.sleep(moment)
        process.kill()
        process.communicate()
        settle(project.url)
        now = dbtools.everything(project.url)
        if without_logs(now) == without_logs(shelf.after):
            # Killed after the commit: complete, and the log row says so.
            assert now["logs"] == shelf.after["logs"], (moment, now["logs"])
            outcomes["complete"] += 1
        else:
            shelf.assert_untouched_then_rerun(project)
            outcomes["unchanged"] += 1
    print(
        f"kills {[round(m, 2) for m in moments]}s into {shelf.seconds:.2f}s "
        f"(seed {SEED}): {outcomes}"
    )
    assert outcomes["unchanged"] >= KILLS // 2, outcomes  # most kills hit the running rollback


def test_connection_terminated_during_the_slow_step(shelf: Shelf) -> None:
    project = shelf.copy()
    process = start(project, "rollback_migrations")
    name = urlparse(project.url).path.lstrip("/")
    deadline = time.monotonic() + 60
    terminated = []
    while not terminated and time.monotonic() < deadline:
        terminated = dbtools.query(
            project.url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
        )
        time.sleep(0.02)
    assert terminated == [(True,)]
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    assert "Rollback failed at shelf.0003_change" in line
    assert "the database is unchanged" in line
    settle(project.url)
    # Django reconnects for the audit write, so the log says what happened.
    shelf.assert_untouched_then_rerun(project, failed="Rollback failed at shelf.0003_change")


def test_sixteen_parallel_saves_of_one_commit_make_one_row(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0", own_checkout=tmp_path / "checkout")
    git(project.path, "commit", "-q", "--allow-empty", "-m", "hotfix")
    sha = git(project.path, "rev-parse", "HEAD")
    processes = [start(project, "save_migrations_state") for _ in range(16)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0] * 16, results
    assert "Traceback" not in "".join(err for _, _, err in results)
    created = [out for _, out, _ in results if "State successfully created" in out]
    assert len(created) == 1
    commits = [commit for commit, _ in dbtools.saved_states(project.url)]
    assert commits == [shop.releases["v1.0.0"].sha, shop.releases["v1.1.0"].sha, sha]


def test_two_parallel_rollbacks_one_runs_the_other_refuses(shelf: Shelf) -> None:
    project = shelf.copy()
    first, second = (start(project, "rollback_migrations") for _ in range(2))
    results = [(p.wait(timeout=120), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    [(_, winner_out, _)] = [r for r in results if r[0] == 0]
    [(_, loser_out, loser_err)] = [r for r in results if r[0] == 1]
    assert "Traceback" not in loser_err
    [line] = [line for line in loser_err.splitlines() if line.strip()]
    assert any(
        reason in line
        for reason in (
            "Another rollback is running",
            "changed since this plan was made",
            "was already rolled back",
        )
    ), line
    assert "Unapplying" not in loser_out
    for step in ("shelf.0004_review", "shelf.0003_change", "shelf.0002_book_isbn"):
        assert winner_out.count(f"Unapplying {step}...") == 1
    settle(project.url)
    assert dbtools.everything(project.url) == shelf.after


def test_failing_audit_write_neither_undoes_nor_hides_the_rollback(shelf: Shelf) -> None:
    project = shelf.copy()
    dbtools.execute(
        project.url,
        "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$; "
        "CREATE TRIGGER refuse_update BEFORE UPDATE ON django_rollback_rollbacklog "
        "FOR EACH ROW EXECUTE FUNCTION refuse_update();",
    )
    result = project.manage("rollback_migrations")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Rollback successfully finished" in result.stdout
    assert "Traceback" not in result.stderr
    assert "could not be updated: disk full (simulated)" in result.stderr
    dbtools.execute(
        project.url,
        "DROP TRIGGER refuse_update ON django_rollback_rollbacklog; DROP FUNCTION refuse_update();",
    )
    now = dbtools.everything(project.url)
    assert without_logs(now) == without_logs(shelf.after)
    assert now["logs"] == [shelf.running_row()]  # the row that could not be closed
