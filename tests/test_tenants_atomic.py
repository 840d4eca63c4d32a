"""--atomic on a real django-tenants project (tests/tenants_project.py): every schema commits or
none does, and a coordinator killed at any phase leaves prepared transactions that the next
command resolves the right way (django_rollback/fleet/atomic.py, recovery.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from . import dbtools
from .test_tenants import (
    EARLY,
    LATE,
    TenantHistory,
    TenantProject,
    dumps,
    needs_postgresql,
    run_json,
    statuses,
    tenants,  # noqa: F401  # the module-scoped fixture, built once for this module too
)

ROLLBACK = ["rollback_migrations", "-t", "v1.0.0", "--skip-unsaved", "--atomic", "--jobs", "1"]


def applied(url: str) -> dict[str, set[tuple[str, str]]]:
    """Each schema's applied set, as its own django_migrations has it."""
    return {
        schema: set(dbtools.query(url, f"SELECT app, name FROM {schema}.django_migrations"))
        for schema in ("public", *EARLY, LATE)
    }


def prepared_xacts(url: str) -> list[str]:
    return [
        row[0]
        for row in dbtools.query(
            url,
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
            "AND gid LIKE 'djrb:%'",
        )
    ]


def assert_whole_fleet_at(history: TenantHistory, url: str, tag: str) -> None:
    after = dumps(url)
    for schema in ("public", *EARLY):
        assert after[schema] == history.releases[tag].schemas[schema], (tag, schema)
    assert after[LATE] == history.releases["v2.0.0"].schemas[LATE]  # never rolled back


def busy_reader(url: str, table: str):  # type: ignore[no-untyped-def]
    """A session of the site reading `table`: its lock keeps the table from being altered."""
    import psycopg2  # the PostgreSQL leg has it

    reader = psycopg2.connect(url)
    with reader.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
    return reader


@needs_postgresql
def test_atomic_failure_in_one_tenant_changes_no_schema(tenants: TenantHistory) -> None:  # noqa: F811
    project = tenants.deploy()
    before_dumps, before_applied = dumps(project.url), applied(project.url)
    reader = busy_reader(project.url, "gamma.notes_comment")  # gamma runs last of the tenants
    try:
        result = project.manage(*ROLLBACK, "--lock-timeout", "1", "--retries", "0")
    finally:
        reader.close()

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "[prepared 2 of 4]" in result.stdout, result.stdout  # alpha and beta were prepared
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("] gamma: failed:" in line for line in errors), errors
    assert any(line.startswith("alpha: aborted:") for line in errors), errors
    assert "Nothing was changed in any schema (--atomic)" in errors[-1], errors
    assert dumps(project.url) == before_dumps
    assert applied(project.url) == before_applied
    assert prepared_xacts(project.url) == []
    assert dbtools.query(project.url, "SELECT status FROM alpha.django_rollback_rollbacklog") == [
        ("failed",)
    ]
    assert dbtools.query(
        project.url, "SELECT decision, resolved_at IS NOT NULL FROM django_rollback_fleetdecision"
    ) == [("abort", True)]

    code, document = run_json(project, *ROLLBACK[1:])

    assert code == 0, document
    # Three tenants at the same place share one plan; public has its own.
    assert document["plans_built"] == 2, document
    assert {t["schema"]: t["plan_of"] for t in document["targets"]} == {
        "alpha": "alpha",
        "beta": "alpha",
        "gamma": "alpha",
        LATE: None,
        "public": "public",
    }
    assert statuses(document) == {
        "alpha": "succeeded",
        "beta": "succeeded",
        "gamma": "succeeded",
        LATE: "skipped",
        "public": "succeeded",
    }
    assert_whole_fleet_at(tenants, project.url, "v1.0.0")
    assert prepared_xacts(project.url) == []


@needs_postgresql
def test_atomic_with_worker_processes(tenants: TenantHistory) -> None:  # noqa: F811
    """Tenants prepared in forked workers, committed (or rolled back) by the coordinator."""
    project = tenants.deploy()
    before_dumps, before_applied = dumps(project.url), applied(project.url)
    parallel = [*ROLLBACK[:-1], "3"]  # --jobs 3
    reader = busy_reader(project.url, "beta.notes_comment")
    try:
        result = project.manage(*parallel, "--lock-timeout", "1", "--retries", "0")
    finally:
        reader.close()

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert dumps(project.url) == before_dumps
    assert applied(project.url) == before_applied
    assert prepared_xacts(project.url) == []

    code, document = run_json(project, *parallel[1:])

    assert code == 0, document
    assert_whole_fleet_at(tenants, project.url, "v1.0.0")
    assert prepared_xacts(project.url) == []


def _killed_at(
    project: TenantProject, phase: str, while_paused: Callable[[], None] | None = None
) -> str:
    """Run the atomic rollback until it pauses at `phase` (then call `while_paused`), SIGKILL
    it there; its stdout."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", *ROLLBACK],
        cwd=project.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tenantsite.settings",
            "DATABASE_URL": project.url,
            "DJANGO_ROLLBACK_TEST_PAUSE": phase,
        },
    )
    try:
        deadline = time.monotonic() + 180
        assert process.stderr is not None
        while True:
            line = process.stderr.readline()
            assert line or process.poll() is None, process.communicate()
            if f"paused at {phase}" in line:
                break
            assert time.monotonic() < deadline, f"never paused at {phase}"
        if while_paused is not None:
            while_paused()
        process.send_signal(signal.SIGKILL)
        out, _err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL
    return out


@needs_postgresql
@pytest.mark.parametrize(
    ("phase", "left", "resolved_to"),
    [
        ("before-prepare", 0, "v2.0.0"),
        ("during-prepare", 1, "v2.0.0"),
        ("after-prepare", 4, "v2.0.0"),
        ("during-commit", 3, "v1.0.0"),
    ],
)
def test_a_killed_coordinator_is_resolved_by_the_next_command(
    tenants: TenantHistory,  # noqa: F811
    phase: str,
    left: int,
    resolved_to: str,
) -> None:
    project = tenants.deploy()
    before_applied = applied(project.url)

    _killed_at(project, phase)

    assert len(prepared_xacts(project.url)) == left
    # --check (of the public schema) finds and resolves them first.
    check = project.manage("rollback_migrations", "--check")
    assert "Traceback" not in check.stderr, check.stderr
    if left:
        action = "committed" if resolved_to == "v1.0.0" else "rolled back"
        assert f"Recovered {left} prepared transaction" in check.stderr, check.stderr
        assert f": {action} (" in check.stderr, check.stderr
    assert prepared_xacts(project.url) == []
    # Nothing half committed: every schema at the same release.
    assert_whole_fleet_at(tenants, project.url, resolved_to)
    if resolved_to == "v2.0.0":
        assert applied(project.url) == before_applied

    # The same command again finishes the job, and leaves nothing prepared.
    code, document = run_json(project, *ROLLBACK[1:])
    assert code == 0, document
    assert_whole_fleet_at(tenants, project.url, "v1.0.0")
    assert prepared_xacts(project.url) == []


@needs_postgresql
def test_the_transactions_of_a_live_coordinator_are_left_to_it(
    tenants: TenantHistory,  # noqa: F811
) -> None:
    project = tenants.deploy()
    seen: list[str] = []

    def check_while_paused() -> None:
        check = project.manage("rollback_migrations", "--check")
        seen.append(check.stderr)
        assert len(prepared_xacts(project.url)) == 4  # nothing resolved under it

    _killed_at(project, "after-prepare", check_while_paused)

    assert "Left 4 prepared transactions" in seen[0], seen
    assert "its coordinator is still running" in seen[0], seen
    check = project.manage("rollback_migrations", "--check")
    assert "Recovered 4 prepared transactions" in check.stderr, check.stderr
    assert prepared_xacts(project.url) == []
    assert_whole_fleet_at(tenants, project.url, "v2.0.0")


POSTGRES_BIN = Path("/usr/lib/postgresql")


@needs_postgresql
def test_atomic_refused_in_one_line_where_two_phase_commit_is_off(
    tenants: TenantHistory,  # noqa: F811
) -> None:
    """A second, throwaway PostgreSQL server started with max_prepared_transactions = 0 (the
    shared one is never restarted), holding a copy of the project's database."""
    cluster = _throwaway_cluster()
    project = tenants.deploy()
    url = f"postgres://postgres@127.0.0.1:{cluster}/tenants"
    dump = subprocess.run(["pg_dump", "--no-owner", project.url], capture_output=True, check=True)
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", url],
        input=dump.stdout,
        capture_output=True,
        check=True,
    )

    def schema_dump() -> list[str]:
        """Schema and rows of every schema, without pg_dump's random \\restrict token."""
        dump = subprocess.run(["pg_dump", url], capture_output=True, text=True, check=True)
        return [line for line in dump.stdout.splitlines() if "restrict " not in line]

    before = schema_dump()
    moved = TenantProject(project.path, url)

    result = moved.manage(*ROLLBACK)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "max_prepared_transactions" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert schema_dump() == before
    decisions = subprocess.run(
        ["psql", "-Atc", "SELECT COUNT(*) FROM django_rollback_fleetdecision", url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert decisions.stdout.strip() == "0"


def _throwaway_cluster() -> int:
    versions = sorted(POSTGRES_BIN.glob("*/bin/initdb"))
    if not versions or os.geteuid() != 0 and not os.access(versions[-1], os.X_OK):
        pytest.skip("initdb is needed to start a server with max_prepared_transactions = 0")
    bindir = versions[-1].parent
    # initdb and postgres refuse to run as root; the postgres user needs a folder it can reach.
    folder = Path(tempfile.mkdtemp(prefix="djrb-pg-"))
    _FOLDERS.append(folder)
    folder.chmod(0o777)
    data = folder / "pgdata"
    run_as = ["su", "postgres", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(
        [*run_as, f"{bindir}/initdb -A trust -U postgres -D {data}"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB "
        "-c max_prepared_transactions=0 -c fsync=off"
    )
    subprocess.run(
        [*run_as, f"{bindir}/pg_ctl -D {data} -o '{options}' -w -l {folder}/log start"],
        check=True,
        capture_output=True,
    )
    _STARTED.append((run_as, f"{bindir}/pg_ctl -D {data} -m immediate -w stop"))
    subprocess.run(
        [
            "psql",
            "-q",
            f"postgres://postgres@127.0.0.1:{port}/postgres",
            "-c",
            "CREATE DATABASE tenants",
        ],
        check=True,
        capture_output=True,
    )
    return port


_STARTED: list[tuple[list[str], str]] = []
_FOLDERS: list[Path] = []


@pytest.fixture(autouse=True)
def _stop_throwaway_clusters():  # type: ignore[no-untyped-def]
    yield
    while _STARTED:
        run_as, command = _STARTED.pop()
        subprocess.run([*run_as, command], capture_output=True)
    while _FOLDERS:
        shutil.rmtree(_FOLDERS.pop(), ignore_errors=True)
