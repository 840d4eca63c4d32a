"""Upgrading in place from django-rollback 0.4.0.

0.4.0's code is not available, so what it leaves behind is recreated with raw SQL from the
shop's real release history: the database v1.1.0 left, with 0.4.0's own migration row
(`django_rollback.0001_initial`) instead of ours, no tables of ours, and its table
`django_rollback_appsstate` holding one row per release it saved (v1.0.0 and v1.1.0): the
newest migration of each app by django_migrations.id, as [id, app, name] JSON. Then v1.2.0
ships with this package, and the entrypoint runs migrate and save_migrations_state.
"""

from __future__ import annotations

import json

import pytest

from . import dbtools
from .projects import History, Project, assert_refused

OLD_TABLE = "django_rollback_appsstate"
OLD_DDL = {
    "postgresql": '"id" serial NOT NULL PRIMARY KEY, "commit" varchar(40) NOT NULL, '
    '"migrations" text NOT NULL, "timestamp" timestamp with time zone NOT NULL',
    "mysql": '"id" integer AUTO_INCREMENT NOT NULL PRIMARY KEY, "commit" varchar(40) NOT NULL, '
    '"migrations" longtext NOT NULL, "timestamp" datetime(6) NOT NULL',
    "sqlite": '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "commit" varchar(40) NOT NULL, '
    '"migrations" text NOT NULL, "timestamp" datetime NOT NULL',
}[dbtools.BACKEND]
SAVED_AT = {"v1.0.0": "2026-01-05 10:00:00", "v1.1.0": "2026-02-09 16:30:00"}


def create_old_table(url: str) -> None:
    dbtools.execute(url, f'CREATE TABLE "{OLD_TABLE}" ({OLD_DDL})')


def newest_per_app(url: str, applied: set[tuple[str, str]]) -> list[list[object]]:
    """What 0.4.0 saved: [id, app, name] of the newest row of each app, by id, among the
    migrations a release had applied."""
    newest: dict[str, tuple[int, str]] = {}
    for row_id, app, name in dbtools.query(url, "SELECT id, app, name FROM django_migrations"):
        if (app, name) in applied and (app not in newest or row_id > newest[app][0]):
            newest[app] = (row_id, name)
    return [[row_id, app, name] for app, (row_id, name) in sorted(newest.items())]


def as_0_4_0_left_it(
    shop: History, renamed: dict[tuple[str, str], str] | None = None
) -> tuple[Project, dict[str, list[list[object]]]]:
    """The v1.1.0 database as 0.4.0 would have left it, and v1.2.0's checkout on it.
    `renamed` changes the name of a saved migration (a file that is gone since)."""
    project = shop.deploy("v1.1.0")
    project.path = shop.releases["v1.2.0"].worktree
    url = project.url
    for table in (
        "django_rollback_rollbacklog",
        "django_rollback_migrationstate",
        "django_rollback_fleetdecision",  # 0008_fleet_decisions: 0.4.0 had no such table
    ):
        dbtools.execute(url, f'DROP TABLE "{table}"')
    dbtools.execute(
        url,
        "DELETE FROM django_migrations WHERE app = 'django_rollback' AND name <> '0001_initial'",
    )
    create_old_table(url)
    saved = {}
    for tag in ("v1.0.0", "v1.1.0"):
        release = shop.releases[tag]
        applied = {k for k in release.applied if k[0] != "django_rollback"}
        applied.add(("django_rollback", "0001_initial"))
        rows = newest_per_app(url, applied)
        for row in rows:
            row[2] = (renamed or {}).get((str(row[1]), str(row[2])), row[2])
        saved[tag] = rows
        stamp = SAVED_AT[tag] + ("+00" if dbtools.BACKEND == "postgresql" else "")
        dbtools.execute(
            url,
            f'INSERT INTO "{OLD_TABLE}" ("commit", "migrations", "timestamp") '
            f"VALUES ('{release.sha}', '{json.dumps(rows)}', '{stamp}')",
        )
    return project, saved


def saved_state(url: str, sha: str) -> tuple[set[tuple[str, str]], list[str], list[list[str]]]:
    [(migrations, tags, unresolved)] = dbtools.query(
        url,
        "SELECT migrations, tags, unresolved FROM django_rollback_migrationstate "
        f"WHERE \"commit\" = '{sha}'",
    )
    load = (lambda v: json.loads(v)) if isinstance(migrations, str) else (lambda v: v)
    return {(a, n) for a, n in load(migrations)}, load(tags), load(unresolved)


def reference_schema(shop: History, tag: str) -> list[str]:
    """The schema `tag` left, plus 0.4.0's table, which the upgrade keeps."""
    url = shop.databases.clone(shop.releases[tag].template_url, "ref")
    create_old_table(url)
    return dbtools.schema(url)


@pytest.fixture
def upgraded(shop: History) -> Project:
    project, _ = as_0_4_0_left_it(shop)
    out = project.ok("migrate", "--no-input")
    assert "Applying django_rollback.0002_upgrade_from_0_4_0... OK" in out
    assert "Applying catalog.0004_rename_product_name_title... OK" in out
    out = project.ok("save_migrations_state")
    assert f'State successfully created for commit "{shop.releases["v1.2.0"].sha}"' in out
    return project


def test_migrate_creates_our_tables_and_converts_the_saved_states(
    shop: History, upgraded: Project
) -> None:
    states = dbtools.saved_states(upgraded.url)
    assert states is not None
    assert [commit for commit, _ in states] == [
        shop.releases[tag].sha for tag in ("v1.0.0", "v1.1.0", "v1.2.0")
    ]
    for tag in ("v1.0.0", "v1.1.0"):
        migrations, tags, unresolved = saved_state(upgraded.url, shop.releases[tag].sha)
        # The full set is what this package itself saved for that release (its own
        # migrations aside: 0.4.0 had only its 0001_initial).
        expected = {k for k in shop.releases[tag].applied if k[0] != "django_rollback"}
        assert migrations == expected | {("django_rollback", "0001_initial")}
        assert (tags, unresolved) == ([tag], [])
    # 0.4.0's table is kept as it was, for one release.
    assert len(dbtools.query(upgraded.url, f'SELECT id FROM "{OLD_TABLE}"')) == 2
    # Undoing 0002 and applying it again converts nothing twice.
    # (Every column but the last, `readiness`: 0006 adds it, so going back to 0001 drops
    # what the save recorded there, and the next save records it again.)
    table = "SELECT * FROM django_rollback_migrationstate"
    before = [row[:-1] for row in dbtools.query(upgraded.url, table)]
    upgraded.ok("migrate", "django_rollback", "0001_initial")
    upgraded.ok("migrate", "--no-input")
    assert [row[:-1] for row in dbtools.query(upgraded.url, table)] == before


def test_list_shows_the_old_releases_with_their_tags_and_times(
    shop: History, upgraded: Project
) -> None:
    out = upgraded.ok("rollback_migrations", "--list").splitlines()
    found = {}
    for tag in ("v1.2.0", "v1.1.0", "v1.0.0"):
        [(index, line)] = [
            (i, line) for i, line in enumerate(out) if shop.releases[tag].sha[:10] in line
        ]
        assert line.rstrip().endswith(tag), line
        assert SAVED_AT.get(tag, "") in line, line
        found[tag] = index
    assert found["v1.2.0"] < found["v1.1.0"] < found["v1.0.0"]  # newest first


def test_roll_back_by_tag_then_by_prefix_to_states_0_4_0_saved(
    shop: History, upgraded: Project
) -> None:
    out = upgraded.ok("rollback_migrations", "-t", "v1.1.0")
    assert "Rollback successfully finished" in out
    v110 = shop.releases["v1.1.0"]
    assert dbtools.schema(upgraded.url) == reference_schema(shop, "v1.1.0")
    assert dbtools.applied(upgraded.url) == v110.applied
    assert dbtools.row_counts(upgraded.url) == v110.rows

    upgraded.path = v110.worktree  # the v1.1.0 image is deployed; then it goes back too
    v100 = shop.releases["v1.0.0"]
    upgraded.ok("rollback_migrations", "-c", v100.sha[:7])
    assert dbtools.schema(upgraded.url) == reference_schema(shop, "v1.0.0")
    assert dbtools.applied(upgraded.url) == v100.applied
    assert dbtools.row_counts(upgraded.url) == v100.rows
    states = dbtools.saved_states(upgraded.url)
    assert states is not None and [c for c, _ in states] == [v100.sha]


def test_a_state_whose_migration_file_is_gone_is_kept_but_refused(shop: History) -> None:
    gone = ("catalog", "0002_seed_before_rename")
    project, _ = as_0_4_0_left_it(shop, renamed={("catalog", "0002_seed"): gone[1]})
    project.ok("migrate", "--no-input")  # no crash
    project.ok("save_migrations_state")
    v100 = shop.releases["v1.0.0"]
    migrations, tags, unresolved = saved_state(project.url, v100.sha)
    assert unresolved == [list(gone)] and gone in migrations and tags == ["v1.0.0"]
    listing = project.ok("rollback_migrations", "--list")
    assert "not a rollback target: no file for catalog.0002_seed_before_rename" in listing
    assert_refused(
        project,
        "rollback_migrations",
        "-t",
        "v1.0.0",
        says="these migration files were not on disk: catalog.0002_seed_before_rename;",
    )
    # The other state 0.4.0 saved is complete and still a target.
    project.ok("rollback_migrations", "-t", "v1.1.0")
    assert dbtools.schema(project.url) == reference_schema(shop, "v1.1.0")


def test_a_database_of_the_previous_version_gets_the_same_tables(shop: History) -> None:
    # Saved by this package before 0002 existed: 0001 recorded, no `unresolved` column.
    project = shop.deploy("v1.1.0")
    dbtools.execute(
        project.url,
        "DELETE FROM django_migrations WHERE app = 'django_rollback' AND name <> '0001_initial'",
    )
    dbtools.execute(
        project.url, 'ALTER TABLE "django_rollback_migrationstate" DROP COLUMN "unresolved"'
    )
    # Nor the columns of the later migrations (0004_readiness, 0005_archive, 0006_progress,
    # 0007_approvals).
    later = {
        "django_rollback_migrationstate": ["readiness"],
        "django_rollback_rollbacklog": ["archive", "fingerprint", "steps_total", "steps_done"]
        + ["running_step", "step_started_at", "pid", "heartbeat_at"]
        + ["expires_at", "approval_trail"],
    }
    for table, columns in later.items():
        for column in columns:
            dbtools.execute(project.url, f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    dbtools.execute(project.url, 'DROP TABLE "django_rollback_fleetdecision"')  # 0008 makes it
    project.ok("migrate", "--no-input")
    v110 = shop.releases["v1.1.0"]
    assert dbtools.schema(project.url) == v110.schema
    assert dbtools.applied(project.url) == v110.applied
    project.ok("rollback_migrations")
    assert dbtools.schema(project.url) == shop.releases["v1.0.0"].schema


# --- the conversion, in process ---------------------------------------------------------


def _migration(app: str, name: str, deps=(), replaces=()):  # type: ignore[no-untyped-def]
    from django.db.migrations import Migration

    migration = Migration(name, app)
    migration.dependencies = list(deps)
    migration.replaces = list(replaces)
    return migration


def test_full_set_is_the_ancestors_with_squashes_as_django_records_them() -> None:
    from django.db.migrations.graph import MigrationGraph

    from django_rollback.upgrade import full_applied_set

    graph = MigrationGraph()
    a1, a2, a3 = ("a", "0001"), ("a", "0002"), ("a", "0003")
    squash = ("a", "0001_squashed_0002")
    b1, c1 = ("b", "0001"), ("c", "0001")
    nodes = {
        a1: [],
        a2: [a1],
        a3: [a2],
        squash: [],
        b1: [a2],
        c1: [squash],
    }
    for key, deps in nodes.items():
        replaces = [a1, a2] if key == squash else []
        graph.add_node(key, _migration(*key, deps=deps, replaces=replaces))
    for key, deps in nodes.items():
        for dep in deps:
            graph.add_dependency(None, key, dep)

    found = full_applied_set(graph, (b1,))
    assert found.applied == {a1, a2, b1, squash} and not found.unresolved
    found = full_applied_set(graph, (c1,))  # applied through the squash
    assert found.applied == {squash, a1, a2, c1}
    # Django records a squash once all it replaces is applied, after what followed it: the
    # rows older than the save say what else was applied.
    found = full_applied_set(graph, (squash,), frozenset({a1, a2, a3}))
    assert found.applied == {a1, a2, a3, squash}
    found = full_applied_set(graph, (a1, ("d", "0007_gone")))
    assert found.applied == {a1, ("d", "0007_gone")}
    assert found.unresolved == {("d", "0007_gone")}


def test_old_rows_are_read_in_the_order_0_4_0_listed_them(transactional_db) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone

    from django.db import connection

    from django_rollback.upgrade import read_old_states

    quote = connection.ops.quote_name
    ddl = OLD_DDL.replace('"', "`") if connection.vendor == "mysql" else OLD_DDL
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {quote(OLD_TABLE)} ({ddl})")
        try:
            for commit, day in (("b" * 40, 2), ("A" * 40, 1), ("c" * 40, 3)):
                when = datetime(2026, 1, day, 12, tzinfo=timezone.utc)
                cursor.execute(
                    f"INSERT INTO {quote(OLD_TABLE)} ({quote('commit')}, {quote('migrations')}, "
                    f"{quote('timestamp')}) VALUES (%s, %s, %s)",
                    [commit, '[[3, "a", "0002"]]', connection.ops.adapt_datetimefield_value(when)],
                )
            found = read_old_states(connection)
        finally:
            cursor.execute(f"DROP TABLE {quote(OLD_TABLE)}")
    assert [(s.commit[0], s.saved_at.day if s.saved_at else None) for s in found] == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
    ]
    assert found[0].newest == (("a", "0002"),)
