"""Ctrl-C and SIGTERM during a rollback, a failing step, a dry run after a dead run, and
waiting for the lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import dbtools
from .projects import History, Project
from .shelf import make_shelf
from .terminal import project_env, stderr_line


@pytest.fixture
def shelf(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, dict[str, str]]:
    return make_shelf(tmp_path, databases)


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
        env=project_env(project, {"SHELF_REVERSE": "block", "SHELF_READY": str(ready)}),
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
