"""The rollback lock and the moments a rollback can be stopped.

- Ctrl-C or SIGTERM at any moment of a rollback (a step, the pause between lock retries)
  closes its log entry at once, says so in one line and exits 130 or 143.
- The steps a message counts as done come from what the steps did, not from their output.
- Behind PgBouncer in transaction pooling, every command takes the transaction-scoped
  lock: nothing stays behind on a pooled server connection.
- A rehearsal waits for a table lock no longer than its --lock-timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import dbtools
from .pgbouncer import POOLED_OPTIONS, advisory_lock_holders, through
from .projects import Project, make_project
from .shop import SETTINGS, migration, shelf_releases
from .test_production_safety import (
    LOCK_TIMEOUT,
    SETTINGS_TAIL,
    Shelf,
    connect,
    holding_table,
    read_until,
    start,
)

server_only = pytest.mark.skipif(
    dbtools.BACKEND == "sqlite", reason="lock timeouts need a database server"
)
postgres_only = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql", reason="PgBouncer, rehearsals and pg_locks are PostgreSQL's"
)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture(scope="module")
def shelf(databases: dbtools.Databases, tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf(databases, tmp_path_factory.mktemp("locks"))


def one_line(stderr: str) -> str:
    """The one line a stopped or failed command prints, without Django's prefix."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0].removeprefix("CommandError: ")


def log_entries(url: str) -> list[tuple[str, str, int]]:
    """(status, error, steps_done) of each rollback log entry, oldest first."""
    return [
        (str(status), str(error), int(done))
        for status, error, done in dbtools.query(
            url, "SELECT status, error, steps_done FROM django_rollback_rollbacklog ORDER BY id"
        )
    ]


# --- 2. a signal during the pause between lock retries --------------------------------------


@server_only
@pytest.mark.parametrize(
    ("signum", "route"),
    [(signal.SIGINT, "direct"), (signal.SIGTERM, "direct"), (signal.SIGINT, "pgbouncer")],
    ids=["sigint", "sigterm", "sigint-pgbouncer"],
)
def test_a_signal_during_the_pause_between_attempts_closes_the_log_entry_at_once(
    shelf: Shelf, signum: signal.Signals, route: str, request: pytest.FixtureRequest
) -> None:
    if route == "pgbouncer" and dbtools.BACKEND != "postgresql":
        pytest.skip("PgBouncer fronts PostgreSQL")
    project = shelf.copy()
    url, options = connect(request, route, project.url)
    with holding_table(project.url, "shelf_book"):
        process = start(
            project,
            url,
            "--lock-timeout",
            str(LOCK_TIMEOUT),
            "--retries",
            "3",
            database=options,
            LOCK_RETRY_DELAY=60,  # the pause the signal lands in
        )
        read_until(process, "Attempt 1 of 4")
        began = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        seconds = time.monotonic() - began
    assert process.returncode == EXIT_CODES[signum], out + err
    assert seconds < 20, seconds  # at once, not after the pause
    line = one_line(err)
    assert line == "Interrupted: nothing was changed (the plan ran in one transaction)." or (
        # step by step (MySQL), nothing had run either
        line.startswith("Interrupted at shelf.0003_change: 0 steps before it stay unapplied")
    ), line
    # Closed by the process itself, not left "running" for a later command to notice.
    assert log_entries(project.url) == [("interrupted", line, 0)]
    assert dbtools.schema(project.url) == shelf.v2_schema
    if dbtools.BACKEND == "postgresql":
        assert advisory_lock_holders(project.url) == []
    # The next rollback is not refused: the lock was released with the process.
    process = start(project, url, database=options)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err


# --- 5. steps counted from what they did: a step reversed by an override --------------------

# v2 adds 0003, a migration that cannot run in a transaction (so the plan runs step by step on
# every backend), whose reverse fails or hangs on request, and 0004, irreversible, reversed by
# an override from the settings. Unapplied newest first: 0004 (override) finishes, then 0003.
UNDO_CODE = """
import os
import time
from pathlib import Path


def undo(apps, schema_editor):
    mode = os.environ.get("SHELF_REVERSE", "")
    if mode == "fail":
        raise RuntimeError("the reverse of 0003 failed on purpose")
    if mode == "hang":
        Path(os.environ["SHELF_READY"]).write_text("running")
        time.sleep(120)
"""
STEP_3 = "        migrations.RunPython(migrations.RunPython.noop, undo),\n"
STEP_4 = migration(
    [("shelf", "0003_change")],
    "        migrations.RunPython(migrations.RunPython.noop),\n",  # no reverse
)
REVERSE = {"shelf.0004_irreversible": "noop"}


def override_releases() -> list[tuple[str, dict[str, str | None]]]:
    (v1, first), (v2, second) = shelf_releases(STEP_3, UNDO_CODE)
    settings = SETTINGS.format(apps=["django_rollback", "shelf"]) + SETTINGS_TAIL
    second = {
        **second,
        "shop/settings.py": settings + f'DJANGO_ROLLBACK["REVERSE"] = {REVERSE!r}\n',
        "shelf/migrations/0003_change.py": migration(
            [("shelf", "0002_book_isbn")], STEP_3, UNDO_CODE, atomic=False
        ),
        "shelf/migrations/0004_irreversible.py": STEP_4,
    }
    return [(v1, first), (v2, second)]


@pytest.fixture(scope="module")
def overridden(databases: dbtools.Databases, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """v2 deployed once; each test works on a copy of its database."""
    project, _ = make_project(tmp_path_factory.mktemp("override"), databases, override_releases())
    return project


def copy_of(project: Project, databases: dbtools.Databases) -> Project:
    return Project(project.path, databases.clone(project.url, "override"))


def test_a_failure_after_an_overridden_step_counts_that_step_as_done(
    overridden: Project, databases: dbtools.Databases
) -> None:
    project = copy_of(overridden, databases)
    result = project.manage(
        "rollback_migrations", "-t", "v1", "--no-archive", env={"SHELF_REVERSE": "fail"}
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Unapplying shelf.0004_irreversible... OK" in result.stdout  # reversed by "noop"
    line = one_line(result.stderr)
    assert line == (
        "Rollback failed at shelf.0003_change: the reverse of 0003 failed on purpose; "
        "1 step before it stays unapplied; saved states unchanged."
    ), line
    assert ("shelf", "0004_irreversible") not in dbtools.applied(project.url)
    assert log_entries(project.url) == [("failed", line, 1)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_during_a_step_after_an_overridden_step_counts_that_step_as_done(
    overridden: Project, databases: dbtools.Databases, tmp_path: Path, signum: signal.Signals
) -> None:
    project = copy_of(overridden, databases)
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rollback_migrations", "-t", "v1", "--no-archive"],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DATABASE_URL": project.url,
            "PYTHONDONTWRITEBYTECODE": "1",
            "SHELF_REVERSE": "hang",
            "SHELF_READY": str(ready),
        },
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():  # 0003's reverse is running
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_CODES[signum], out + err
    line = one_line(err)
    assert line == (
        "Interrupted at shelf.0003_change: 1 step before it stays unapplied; saved states "
        "unchanged. Run the same rollback again to finish it."
    ), line
    assert log_entries(project.url) == [("interrupted", line, 1)]


# --- 5b. a rehearsal waits no longer than --lock-timeout -------------------------------------


@postgres_only
def test_a_rehearsal_waits_for_a_table_lock_no_longer_than_its_lock_timeout(shelf: Shelf) -> None:
    project = shelf.copy()
    with holding_table(project.url, "shelf_book"):
        began = time.monotonic()
        # The setting would wait a minute; the option says one second.
        process = start(project, project.url, "--rehearse", "--lock-timeout", "1", LOCK_TIMEOUT=60)
        try:
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        seconds = time.monotonic() - began
    assert process.returncode == 1, out + err
    warning, line = [line for line in err.splitlines() if line.strip()]
    assert warning.startswith("Warning: the rehearsal runs every step for real"), err
    line = line.removeprefix("CommandError: ")
    assert line.startswith("Rehearsal: rollback failed at shelf.0003_change: "), line
    assert "lock timeout" in line, line
    assert seconds < 30, seconds  # the process starts in a few seconds; the lock wait is 1 s
    [(status, error, _)] = log_entries(project.url)
    assert (status, error) == ("rehearsal", line)
    assert dbtools.schema(project.url) == shelf.v2_schema


# --- 3. PgBouncer: no lock stays behind on a pooled server connection -----------------------


def manage_all(project: Project, url: str, commands: list[list[str]]) -> list[tuple[int, str]]:
    """Run the commands at once through `url` (each a manage.py command line); returns each
    one's exit status and output, in order."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATABASE_URL": url,
        "DATABASE_OPTIONS": json.dumps(POOLED_OPTIONS),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=project.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
        )
        for command in commands
    ]
    return [(process.wait(300), process.communicate()[0]) for process in processes]


@postgres_only
def test_behind_pgbouncer_no_command_leaves_the_rollback_lock_on_a_pooled_connection(
    shelf: Shelf, pgbouncer: int
) -> None:
    project = shelf.copy()
    url = through(pgbouncer, project.url)
    saves = [["save_migrations_state"]] * 6

    def nothing_held(after: str) -> None:
        holders = advisory_lock_holders(project.url)
        assert holders == [], f"after {after}: advisory locks held by {holders}"

    for round_ in range(2):
        outcomes = manage_all(project, url, saves)
        assert [out for code, out in outcomes if code != 0] == []
        nothing_held(f"parallel saves (round {round_ + 1})")
    [(code, out)] = manage_all(project, url, [["rollback_migrations", "--rehearse"]])
    assert code == 0, out
    nothing_held("a rehearsal")
    outcomes = manage_all(project, url, [["rollback_migrations", "--fake"]] * 4)
    assert [out for code, out in outcomes if code != 0] == []
    nothing_held("parallel dry runs (stale-entry cleanup)")
    # A rollback with saves racing it (it waits for theirs): those before it save, those
    # after it are refused (the newer code is still deployed), none waits for a lock that
    # nobody holds.
    [(code, out), *racing] = manage_all(
        project, url, [["rollback_migrations", "-t", "v1", "--wait", "60"]] + saves[:4]
    )
    assert code == 0, out
    assert all(code == 0 or "Not saved" in out for code, out in racing), racing
    nothing_held("a rollback and saves racing it")
    [(code, out)] = manage_all(project, url, [["migrate", "--no-input"]])
    assert code == 0, out
    [(code, out)] = manage_all(project, url, [["restore_rollback_archive"]])
    assert code == 0, out
    nothing_held("a restore")
    outcomes = manage_all(project, url, saves)
    assert [out for code, out in outcomes if code != 0] == []
    nothing_held("the last saves")
    # The next command finds no rollback running, on whichever server connection it lands.
    [(code, out)] = manage_all(project, url, [["rollback_migrations", "-t", "v1", "--fake"]])
    assert code == 0 and "A rollback is running" not in out, out


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_admins_busy_check_sees_a_running_rollback_with_the_transaction_lock(settings) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    from django_rollback.background import _refuse_if_busy
    from django_rollback.exceptions import RollbackInProgressError

    settings.DJANGO_ROLLBACK = {"LOCK_SCOPE": "transaction"}  # as behind PgBouncer
    url = dbtools._pg_url(str(connection.settings_dict["NAME"]))
    with dbtools.rollback_lock_held(url), pytest.raises(RollbackInProgressError):
        _refuse_if_busy(connection.alias)
    _refuse_if_busy(connection.alias)  # free again: no refusal
    assert advisory_lock_holders(url) == []
