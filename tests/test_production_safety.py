"""A rollback on a busy database: a session holds a lock on a table of the plan, the site
keeps querying that table, the rollback waits at most its lock timeout per attempt, names who
blocks it, retries, and either succeeds once the lock is free or gives up with nothing
changed. The preview's sizes come from the catalog above a threshold. The same through a
real PgBouncer in transaction-pooling mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from . import dbtools
from .pgbouncer import advisory_locks, through
from .projects import Project, make_project
from .shop import shelf_releases

server_only = pytest.mark.skipif(
    dbtools.BACKEND == "sqlite", reason="lock timeouts need a database server"
)
postgres_only = pytest.mark.skipif(
    dbtools.BACKEND != "postgresql", reason="PgBouncer and pg_locks are PostgreSQL's"
)

# v2 adds a column (0002) and one more (0003): unapplying them drops both columns of
# shelf_book, which needs the table's exclusive lock.
STEP_3 = (
    '        migrations.AddField(model_name="book", name="pages",'
    " field=models.IntegerField(null=True)),\n"
)
# The settings read DJANGO_ROLLBACK keys and extra DATABASES options from the environment,
# so each test picks its own without a new checkout.
SETTINGS_TAIL = """
import json as _json
import os as _os

DJANGO_ROLLBACK.update(_json.loads(_os.environ.get("ROLLBACK_SETTINGS", "{}")))
DATABASES["default"].update(_json.loads(_os.environ.get("DATABASE_OPTIONS", "{}")))
"""
LOCK_TIMEOUT = 1.0


def releases() -> list[tuple[str, dict[str, str | None]]]:
    (v1, first), (v2, second) = shelf_releases(STEP_3)
    first = {**first, "shop/settings.py": (first["shop/settings.py"] or "") + SETTINGS_TAIL}
    return [(v1, first), (v2, second)]


class Shelf:
    """v2 deployed once; every test works on a copy of that database."""

    def __init__(self, databases: dbtools.Databases, root: Path) -> None:
        self.databases = databases
        self.project, self.shas = make_project(root, databases, releases())
        self.template = self.project.url
        dbtools.execute(
            self.template,
            "INSERT INTO shelf_book (title, isbn) VALUES "
            + ", ".join(f"('book {n}', '{n:013d}')" for n in range(2000)),
        )
        self.v2_schema = dbtools.schema(self.template)

    def copy(self) -> Project:
        return Project(self.project.path, self.databases.clone(self.template, "safety"))


@pytest.fixture(scope="module")
def shelf(databases: dbtools.Databases, tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf(databases, tmp_path_factory.mktemp("safety"))


def env(url: str, database: dict[str, object], rollback: dict[str, object]) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "DATABASE_OPTIONS": json.dumps(database),
        "ROLLBACK_SETTINGS": json.dumps(rollback),
    }


def start(
    project: Project,
    url: str,
    *args: str,
    database: dict[str, object] | None = None,
    **rollback: object,
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "rollback_migrations", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env(url, database or {}, rollback),
        },
    )


def read_until(process: subprocess.Popen, marker: str) -> str:
    """The output up to the first line holding `marker`."""
    assert process.stdout is not None
    seen = ""
    while marker not in seen:
        line = process.stdout.readline()
        assert line, f"the rollback ended before {marker!r}:\n{seen}{process.communicate()}"
        seen += line
    return seen


@contextmanager
def holding_table(url: str, table: str) -> Iterator[int]:
    """A session that read the table in a transaction it keeps open (the long report query
    or the idle-in-transaction worker of real life); yields its pid (or thread id)."""
    connect = dbtools._my_connect if dbtools.BACKEND == "mysql" else dbtools._pg_connect
    with closing(connect(urlparse(url).path.lstrip("/"))) as conn:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pg_backend_pid()"
                if dbtools.BACKEND == "postgresql"
                else "SELECT CONNECTION_ID()"
            )
            pid = cursor.fetchone()[0]
            cursor.execute("BEGIN")
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')
            cursor.fetchall()
        try:
            yield pid
        finally:
            with conn.cursor() as cursor:
                cursor.execute("ROLLBACK")


class Site(threading.Thread):
    """The site: short queries on the table, one after the other, each timed."""

    def __init__(self, url: str, table: str) -> None:
        super().__init__(daemon=True)
        self.url, self.table = url, table
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        connect = dbtools._my_connect if dbtools.BACKEND == "mysql" else dbtools._pg_connect
        with closing(connect(urlparse(self.url).path.lstrip("/"))) as conn:
            while not self.stop.is_set():
                began = time.perf_counter()
                with conn.cursor() as cursor:
                    cursor.execute(f'SELECT title FROM "{self.table}" WHERE id = 1')
                    cursor.fetchall()
                self.latencies.append(time.perf_counter() - began)
                time.sleep(0.02)

    def __enter__(self) -> Site:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(10)


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest) -> str:
    """How the rollback reaches the server: directly, or through PgBouncer."""
    if request.param == "pgbouncer" and dbtools.BACKEND != "postgresql":
        pytest.skip("PgBouncer fronts PostgreSQL")
    return str(request.param)


def connect(request: pytest.FixtureRequest, route: str, url: str) -> tuple[str, dict[str, object]]:
    """The URL the rollback uses and its DATABASES options. Django asks for
    DISABLE_SERVER_SIDE_CURSORS behind a transaction pooler; LOCK_SCOPE "auto" reads it."""
    if route == "direct":
        return url, {}
    return through(request.getfixturevalue("pgbouncer"), url), {"DISABLE_SERVER_SIDE_CURSORS": True}


def v1_applied(shelf: Shelf) -> set[tuple[str, str]]:
    return {
        key
        for key in dbtools.applied(shelf.template)
        if key not in {("shelf", "0002_book_isbn"), ("shelf", "0003_change")}
    }


@server_only
def test_blocked_rollback_retries_then_succeeds_once_the_lock_is_released(
    shelf: Shelf, route: str, request: pytest.FixtureRequest
) -> None:
    project = shelf.copy()
    url, options = connect(request, route, project.url)
    with holding_table(project.url, "shelf_book") as pid:
        process = start(
            project,
            url,
            "--lock-timeout",
            str(LOCK_TIMEOUT),
            "--retries",
            "20",
            database=options,
            LOCK_RETRY_DELAY=0.2,
        )
        seen = read_until(process, "Attempt 2 of 21")
        assert dbtools.schema(project.url) == shelf.v2_schema  # nothing half done meanwhile
    out, err = process.communicate(timeout=120)
    out = seen + out
    assert process.returncode == 0, out + err
    assert f'could not lock table "shelf_book" within {LOCK_TIMEOUT:g}s' in out
    assert f"held by pid {pid} (idle in transaction" in out
    assert "Rollback successfully finished" in out
    schema = " ".join(dbtools.schema(project.url))
    assert "isbn" not in schema and "pages" not in schema
    assert dbtools.applied(project.url) == v1_applied(shelf)
    [(status, _, _, error)] = dbtools.logs(project.url)
    assert (status, error) == ("succeeded", "")
    if dbtools.BACKEND == "postgresql":
        assert advisory_locks(project.url) == 0  # nothing left behind in the pool


@server_only
def test_blocked_rollback_gives_up_cleanly_and_never_stalls_the_site_longer_than_the_timeout(
    shelf: Shelf, route: str, request: pytest.FixtureRequest
) -> None:
    project = shelf.copy()
    url, options = connect(request, route, project.url)
    before = dbtools.everything(project.url)
    with holding_table(project.url, "shelf_book") as pid, Site(project.url, "shelf_book") as site:
        time.sleep(0.2)  # the site is running before the rollback starts
        process = start(
            project,
            url,
            "--lock-timeout",
            str(LOCK_TIMEOUT),
            "--retries",
            "2",
            database=options,
            LOCK_RETRY_DELAY=0.3,
        )
        out, err = process.communicate(timeout=120)
    assert process.returncode == 1, out + err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert "Rollback gave up after 3 attempts" in line, line
    assert 'could not lock table "shelf_book"' in line and f"pid {pid} " in line, line
    assert line.endswith("the database is unchanged."), line
    assert out.count("lock not available") == 2, out  # the third is the failure itself
    assert "Attempt 2 of 3" in out and out.endswith("Unapplying shelf.0003_change... failed\n"), out
    after = dbtools.everything(project.url)
    assert {k: v for k, v in after.items() if k != "logs"} == {
        k: v for k, v in before.items() if k != "logs"
    }
    [(status, _, _, error)] = dbtools.logs(project.url)
    assert status == "failed" and error == line.removeprefix("CommandError: ")
    if dbtools.BACKEND == "postgresql":
        assert advisory_locks(project.url) == 0
    # The site's queries queued behind the rollback's lock request (so this measured the
    # right thing), and never for longer than the lock timeout (plus a margin for a busy
    # machine): the timeout took the rollback out of the queue each time.
    longest = max(site.latencies)
    print(f"site: {len(site.latencies)} queries, longest {longest:.3f}s ({route})")
    assert longest > LOCK_TIMEOUT / 2, site.latencies
    assert longest < LOCK_TIMEOUT + 0.75, longest


@server_only
def test_preview_estimates_big_tables_and_counts_on_request(shelf: Shelf) -> None:
    project = shelf.copy()
    dbtools.execute(
        project.url,
        'ANALYZE "shelf_book"' if dbtools.BACKEND == "postgresql" else 'ANALYZE TABLE "shelf_book"',
    )
    base = {
        "DATABASE_URL": project.url,
        "ROLLBACK_SETTINGS": json.dumps({"ESTIMATE_ROWS_ABOVE": 100}),
    }
    estimated = json.loads(
        project.manage("rollback_migrations", "--fake", "--json", env=base).stdout
    )
    exact = json.loads(
        project.manage("rollback_migrations", "--fake", "--json", "--exact-counts", env=base).stdout
    )
    book = estimated["plan"]["tables"]["shelf_book"]
    assert book["estimated"] is True and book["bytes"] > 0
    assert 1000 <= book["rows"] <= 4000, book  # 2001 rows: the catalog's guess, not a count
    assert exact["plan"]["tables"]["shelf_book"] == {**book, "rows": 2001, "estimated": False}
    [isbn] = [
        loss
        for step in estimated["plan"]["steps"]
        for loss in step["data_loss"]
        if loss["column"] == "isbn"
    ]
    assert isbn["estimated"] is True and 1000 <= isbn["rows"] <= 4000, isbn
    [pages] = [
        loss
        for step in estimated["plan"]["steps"]
        for loss in step["data_loss"]
        if loss["column"] == "pages"
    ]
    assert pages == {
        "table": "shelf_book",
        "column": "pages",
        "rows": 0,
        "estimated": True,
        "archived": True,  # issue 12: what the step drops is kept
        "join_table": False,
    }
    [isbn_exact] = [
        loss
        for step in exact["plan"]["steps"]
        for loss in step["data_loss"]
        if loss["column"] == "isbn"
    ]
    assert isbn_exact == {
        "table": "shelf_book",
        "column": "isbn",
        "rows": 2000,
        "estimated": False,
        "archived": True,
        "join_table": False,
    }
    text = project.manage("rollback_migrations", "--fake", env=base)
    assert 'drops column "shelf_book"."isbn" (≈ ' in text.stderr + text.stdout
    assert "rows" in text.stdout and "≈ " in text.stdout


def test_preview_shows_the_locks_and_sizes_of_each_step(shelf: Shelf) -> None:
    project = shelf.copy()
    document = json.loads(project.ok("rollback_migrations", "--fake", "--json"))
    steps = {step["migration"]: step for step in document["plan"]["steps"]}
    mode = {"postgresql": "ACCESS EXCLUSIVE", "mysql": "EXCLUSIVE"}.get(
        dbtools.BACKEND, "EXCLUSIVE (whole database)"
    )
    assert steps["shelf.0002_book_isbn"]["locks"] == [
        {
            "table": "shelf_book",
            "mode": mode,
            "actions": ["drops column isbn"],
            "rewrites": False,
            "builds_index": False,
        }
    ]
    assert steps["shelf.0003_change"]["locks"][0]["actions"] == ["drops column pages"]
    book = document["plan"]["tables"]["shelf_book"]
    assert book["rows"] == 2001 and book["estimated"] is False  # below the threshold: counted
    out = project.ok("rollback_migrations", "--fake")
    assert f'locks "shelf_book" {mode}: drops column isbn [2,001 rows' in out


@postgres_only
def test_rollback_lock_through_pgbouncer_refuses_a_second_rollback_and_leaves_nothing_held(
    shelf: Shelf, pgbouncer: int
) -> None:
    project = shelf.copy()
    url = through(pgbouncer, project.url)
    options = {"DISABLE_SERVER_SIDE_CURSORS": True}
    # Another rollback holds the lock in its transaction (as a transaction-scoped one does).
    from django_rollback.locks import LOCK_KEY

    name = urlparse(project.url).path.lstrip("/")
    with closing(dbtools._pg_connect(name)) as conn, conn.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        process = start(project, url, database=options)
        out, err = process.communicate(timeout=60)
        cursor.execute("ROLLBACK")
    assert process.returncode == 1 and "Another rollback is running" in err, out + err
    assert dbtools.schema(project.url) == shelf.v2_schema
    process = start(project, url, database=options)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert dbtools.applied(project.url) == v1_applied(shelf)
    assert advisory_locks(project.url) == 0


# --- the lock of each kind of operation (no database needed) ---------------------------------


def test_undo_locks_per_operation() -> None:
    from django.db import connection, models
    from django.db.migrations import operations as ops
    from django.db.migrations.state import ModelState, ProjectState

    from django_rollback.radius import StepLocks, undo_locks

    def state() -> ProjectState:
        author = ModelState("app", "Author", [("id", models.AutoField(primary_key=True))])
        book = ModelState(
            "app",
            "Book",
            [
                ("id", models.AutoField(primary_key=True)),
                ("title", models.CharField(max_length=50)),
                ("author", models.ForeignKey("app.Author", models.CASCADE)),
            ],
            {"indexes": [models.Index(fields=["title"], name="title_idx")]},
        )
        return ProjectState({("app", "author"): author, ("app", "book"): book})

    def locks(operation: ops.base.Operation) -> list[tuple[str, str, tuple[str, ...], bool, bool]]:
        before, after = state(), state()
        operation.state_forwards("app", after)
        found = StepLocks("postgresql")
        undo_locks(
            connection, "app", operation, before, after, found, lambda m: f"app_{m.name_lower}"
        )
        return [(x.table, x.mode, x.actions, x.rewrites, x.builds_index) for x in found.result()]

    assert locks(ops.RemoveIndex("book", "title_idx")) == [
        ("app_book", "SHARE", ("re-creates an index",), False, True)
    ]
    assert locks(ops.AddIndex("book", models.Index(fields=["id"], name="id_idx"))) == [
        ("app_book", "ACCESS EXCLUSIVE", ("drops an index",), False, False)
    ]
    if connection.vendor != "sqlite":  # SQLite remakes the table for every AlterField
        assert locks(ops.AlterField("book", "title", models.TextField()))[0][3] is True
        assert (
            locks(ops.AlterField("book", "title", models.CharField(max_length=50)))[0][3] is False
        )
    sqlite = connection.vendor == "sqlite"  # re-adding a NOT NULL column remakes its table
    assert locks(ops.RemoveField("book", "author")) == [
        ("app_book", "ACCESS EXCLUSIVE", ("re-adds column author",), sqlite, False),
        ("app_author", "SHARE ROW EXCLUSIVE", ("adds a foreign key to it",), False, False),
    ]
    assert locks(ops.DeleteModel("book"))[0][:3] == (
        "app_book",
        "ACCESS EXCLUSIVE",
        ("re-creates the table (empty)",),
    )
    assert locks(ops.RunSQL("SELECT 1", "SELECT 1")) == []
