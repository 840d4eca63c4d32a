"""The archive used again and again for the same tables and columns.

The bookshop's v2 adds tables (reviews with foreign keys, tags, the books' many-to-many) and
columns (isbn, pages, editor): rollback to v1, deploy v2 again, roll back again, with or
without restoring in between. Every archive must stay apart from the others (on PostgreSQL
the moved tables take their indexes, constraints and sequences along), every restore must
leave v2's schema exactly as the release made it, and restore_rollback_archive picks the
newest restorable archive by default and an older one by its log id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from . import dbtools
from .projects import Project, assert_refused
from .test_archive import released
from .test_production_safety import (
    LOCK_TIMEOUT,
    Shelf,
    holding_table,
    read_until,
    server_only,
    start,
)

ROUNDS = 3


def tag_rows(url: str) -> list[tuple]:
    return [tuple(r) for r in dbtools.query(url, "SELECT id, name FROM shelf_tag ORDER BY id")]


def isbns(url: str) -> list[tuple]:
    return [tuple(r) for r in dbtools.query(url, "SELECT id, isbn FROM shelf_book ORDER BY id")]


def write_round(url: str, number: int) -> None:
    """Rows of this round only: tags with keys of their own, an isbn on every book."""
    dbtools.execute(
        url, f"INSERT INTO shelf_tag (id, name) VALUES ({number * 10}, 'round {number}')"
    )
    dbtools.execute(url, f"UPDATE shelf_book SET isbn = '{number:013d}'")


def last_log_id(url: str) -> int:
    return int(dbtools.query(url, "SELECT MAX(id) FROM django_rollback_rollbacklog")[0][0])


def redeploy(project: Project) -> None:
    project.ok("migrate", "--no-input")
    project.ok("save_migrations_state")


@pytest.fixture
def bookshop(tmp_path: Path, databases: dbtools.Databases) -> tuple[Project, list[str], list[str]]:
    """The bookshop at v2 with rows; v1's and v2's schemas."""
    project, _ = released(tmp_path, databases)
    v2 = dbtools.schema(project.url)
    project.ok("rollback_migrations")
    v1 = dbtools.schema(project.url)
    redeploy(project)
    assert dbtools.schema(project.url) == v2
    return project, v1, v2


def test_rollback_redeploy_again_and_again_then_restore_newest_then_older(
    bookshop: tuple[Project, list[str], list[str]],
) -> None:
    project, v1, v2 = bookshop
    logs = []
    for number in range(1, ROUNDS + 1):
        write_round(project.url, number)
        project.ok("rollback_migrations")
        logs.append(last_log_id(project.url))
        assert dbtools.schema(project.url) == v1, f"round {number}"
        redeploy(project)
        assert dbtools.schema(project.url) == v2, f"round {number}"
    if dbtools.BACKEND == "postgresql":
        # Tables, indexes, constraints and sequences: each under a name of its archive's.
        moved = dbtools.query(
            project.url,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = '{dbtools.ARCHIVE_SCHEMA}' AND c.relkind IN ('r', 'i', 'S')",
        )
        names = [name for (name,) in moved]
        assert all(re.match(r"log\d+_\d+_", name) for name in names), names
        assert {f"log{log}" for log in logs} <= {name.split("_")[0] for name in names}
        assert any(name.endswith("_pkey") for name in names), names
        assert any(name.endswith("_seq") for name in names), names
    # Four archives now (the fixture's and one per round), none restored.
    listing = json.loads(project.ok("restore_rollback_archive", "--list", "--json"))
    kept = [a["log_id"] for a in listing["archives"] if a["status"] == "kept"]
    assert set(logs) <= set(kept)

    # By default: the newest one.
    document = json.loads(project.ok("restore_rollback_archive", "--json"))
    assert document["log_id"] == logs[-1]
    assert tag_rows(project.url) == [(30, "round 3")]
    assert {isbn for _, isbn in isbns(project.url)} == {f"{3:013d}"}
    assert dbtools.schema(project.url) == v2

    # An older one by its log id: its rows come back beside the newer ones, its values win.
    document = json.loads(project.ok("restore_rollback_archive", str(logs[0]), "--json"))
    assert document["log_id"] == logs[0]
    assert tag_rows(project.url) == [(10, "round 1"), (30, "round 3")]
    assert {isbn for _, isbn in isbns(project.url)} == {f"{1:013d}"}
    assert dbtools.schema(project.url) == v2

    # The default now is the newest of those left: round 2's.
    document = json.loads(project.ok("restore_rollback_archive", "--json"))
    assert document["log_id"] == logs[1]
    assert_refused(project, "restore_rollback_archive", str(logs[1]), says="already restored")


def test_rollback_redeploy_restore_again_and_again(
    bookshop: tuple[Project, list[str], list[str]],
) -> None:
    project, v1, v2 = bookshop
    project.ok("restore_rollback_archive")  # the fixture's rollback
    expected = tag_rows(project.url)
    for number in range(1, ROUNDS + 1):
        write_round(project.url, number)
        expected = [*expected, (number * 10, f"round {number}")]
        project.ok("rollback_migrations")
        assert dbtools.schema(project.url) == v1, f"round {number}"
        redeploy(project)
        assert tag_rows(project.url) == []
        document = json.loads(project.ok("restore_rollback_archive", "--json"))
        assert document["log_id"] == last_log_id(project.url)
        assert tag_rows(project.url) == expected, f"round {number}"
        assert {isbn for _, isbn in isbns(project.url)} == {f"{number:013d}"}
        assert dbtools.schema(project.url) == v2, f"round {number}"
        # New rows after the restore get keys of their own.
        dbtools.execute(project.url, f"INSERT INTO shelf_tag (name) VALUES ('new {number}')")
        expected = tag_rows(project.url)
        assert expected[-1][0] > number * 10


def test_a_name_taken_in_the_archive_is_refused_before_the_first_step(
    bookshop: tuple[Project, list[str], list[str]],
) -> None:
    """Log entries deleted (or the database restored from a backup) while the archive kept
    its tables: the next rollback's archive would get a name that is taken."""
    project, _, _ = bookshop
    taken = next_archive_name(project.url, last_log_id(project.url) + 1)
    dbtools.execute(project.url, f"CREATE TABLE {taken} (id integer)")
    result = assert_refused(project, "rollback_migrations", "--no-input", says="archive")
    line = result.stderr.strip()
    assert taken.split(".")[-1].strip('"') in line, line
    assert "nothing was changed" in line, line


def next_archive_name(url: str, log_id: int) -> str:
    """The name the first archive table of rollback log entry `log_id` gets."""
    names = dbtools.archive_tables(url)
    assert names, "the fixture's rollback archived nothing"
    # Same shape as the kept ones, with the log id replaced.
    if dbtools.BACKEND == "postgresql":
        name = re.sub(r"^log\d+_", f"log{log_id}_", names[0])
        return f'"{dbtools.ARCHIVE_SCHEMA}"."{name}"'
    name = re.sub(r"_\d+_", f"_{log_id}_", names[0], count=1)
    return f'"{name}"'


# --- a lock timeout after the archive copied data (step by step on MySQL/MariaDB) --------------


@pytest.fixture(scope="module")
def busy(databases: dbtools.Databases, tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf(databases, tmp_path_factory.mktemp("busy"))


@server_only
def test_a_blocked_attempt_drops_its_archive_copies_and_is_retried(busy: Shelf) -> None:
    project = busy.copy()
    values = isbns(project.url)
    with holding_table(project.url, "shelf_book"):
        process = start(
            project,
            project.url,
            "--lock-timeout",
            str(LOCK_TIMEOUT),
            "--retries",
            "20",
            LOCK_RETRY_DELAY=0.2,
        )
        read_until(process, "Attempt 2 of 21")
        assert dbtools.schema(project.url) == busy.v2_schema
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert "Rollback successfully finished" in out
    # One archive, of the attempt that succeeded: each dropped column once, every value once.
    tables = dbtools.archive_tables(project.url)
    assert len(tables) == 2, tables
    for table in tables:
        name = f'"{dbtools.ARCHIVE_SCHEMA}"."{table}"' if dbtools.BACKEND == "postgresql" else table
        assert dbtools.query(project.url, f"SELECT COUNT(*) FROM {name}")[0][0] == len(values)

    redeploy(project)
    project.ok("restore_rollback_archive")
    assert dbtools.schema(project.url) == busy.v2_schema
    assert isbns(project.url) == values


@server_only
def test_a_rollback_that_gives_up_leaves_no_archive_copies(busy: Shelf) -> None:
    project = busy.copy()
    before = dbtools.everything(project.url)
    with holding_table(project.url, "shelf_book"):
        process = start(project, project.url, "--lock-timeout", str(LOCK_TIMEOUT), "--retries", "1")
        out, err = process.communicate(timeout=120)
    assert process.returncode == 1, out + err
    assert "Rollback gave up after 2 attempts" in err, err
    after = dbtools.everything(project.url)
    assert dbtools.archive_tables(project.url) == []
    assert {k: v for k, v in after.items() if k != "logs"} == {
        k: v for k, v in before.items() if k != "logs"
    }


# --- keys of rows written after a redeploy ------------------------------------------------------


def test_rows_written_after_a_redeploy_do_not_take_the_keys_of_archived_rows(
    bookshop: tuple[Project, list[str], list[str]],
) -> None:
    """The table comes back empty when v2 is deployed again, its key counter started afresh.
    save_migrations_state moves the counter past the archived keys, so the rows the site
    writes now get keys of their own, and a later restore puts the archived rows back beside
    them instead of overwriting them."""
    project, _, _ = bookshop
    write_round(project.url, 1)
    archived = tag_rows(project.url)
    assert archived
    project.ok("rollback_migrations")
    redeploy(project)
    assert tag_rows(project.url) == []
    # The site writes rows with keys from the database.
    dbtools.execute(project.url, "INSERT INTO shelf_tag (name) VALUES ('after the redeploy')")
    new = tag_rows(project.url)
    assert new[0][0] > max(key for key, _ in archived), new
    project.ok("restore_rollback_archive")
    assert tag_rows(project.url) == sorted(archived + new)
