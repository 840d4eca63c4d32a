"""Databases for the release-cycle tests, and honest views of them through the raw drivers
(sqlite3, psycopg2 + pg_dump, MySQLdb), never through the code under test."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlparse

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL.startswith(("postgres://", "postgresql://")):
    BACKEND = "postgresql"
elif DATABASE_URL.startswith("mysql://"):
    BACKEND = "mysql"  # MySQL or MariaDB
else:
    BACKEND = "sqlite"
PG_ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
APP_TABLES = ("catalog_", "orders_", "shipping_", "shelf_", "stock_", "inventory_", "ledger_")


def _pg_connect(dbname: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg2

    parsed = urlparse(DATABASE_URL)
    conn = psycopg2.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password or None,
        dbname=dbname,
    )
    conn.autocommit = True
    return conn


def _my_connect(dbname: str | None = None):  # type: ignore[no-untyped-def]
    import MySQLdb

    parsed = urlparse(DATABASE_URL)
    options = dict(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        passwd=parsed.password or "",
        charset="utf8mb4",
        autocommit=True,
    )
    if dbname:
        options["db"] = dbname
    conn = MySQLdb.connect(**options)
    with conn.cursor() as cursor:
        # Double quotes name identifiers, as in PostgreSQL and SQLite: tests share their SQL.
        cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
    return conn


def _server_connect(dbname: str | None = None):  # type: ignore[no-untyped-def]
    return _my_connect(dbname) if BACKEND == "mysql" else _pg_connect(dbname or "postgres")


def _pg_url(dbname: str) -> str:
    parsed = urlparse(DATABASE_URL)
    return parsed._replace(path=f"/{dbname}").geturl()


def _dbname(url: str) -> str:
    return urlparse(url).path.lstrip("/")


class Databases:
    """Creates, clones and drops the throwaway databases of one test session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.created: list[str] = []

    def new_url(self, label: str) -> str:
        name = f"dr_{label}_{uuid.uuid4().hex[:8]}"
        if BACKEND == "sqlite":
            return f"sqlite:///{self.folder / (name + '.sqlite3')}"
        with closing(_server_connect()) as conn, conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _pg_url(name)

    def clone(self, template_url: str, label: str) -> str:
        name = f"dr_{label}_{uuid.uuid4().hex[:8]}"
        if BACKEND == "sqlite":
            target = self.folder / (name + ".sqlite3")
            shutil.copyfile(urlparse(template_url).path, target)
            return f"sqlite:///{target}"
        if BACKEND == "mysql":
            _my_clone(_dbname(template_url), name)
        else:
            with closing(_pg_connect()) as conn, conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_dbname(template_url)}"')
        self.created.append(name)
        return _pg_url(name)

    def drop_all(self) -> None:
        if BACKEND == "sqlite":
            return
        force = " WITH (FORCE)" if BACKEND == "postgresql" else ""
        with closing(_server_connect()) as conn, conn.cursor() as cursor:
            for name in self.created:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')


def _my_clone(source: str, name: str) -> None:
    """MySQL has no template databases: re-create each table from SHOW CREATE TABLE (keys,
    foreign keys and the AUTO_INCREMENT counter included) and copy its rows."""
    with closing(_my_connect()) as conn, conn.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    with closing(_my_connect(name)) as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0")
        for table in tables(_pg_url(source)):
            cursor.execute(f'SHOW CREATE TABLE "{source}"."{table}"')
            cursor.execute(cursor.fetchone()[1])
            cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{source}"."{table}"')


def query(url: str, sql: str) -> list[tuple]:
    if BACKEND == "sqlite":
        with closing(sqlite3.connect(urlparse(url).path)) as conn:
            return conn.execute(sql).fetchall()
    with closing(_server_connect(_dbname(url))) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall()) if cursor.description else []


def execute(url: str, sql: str) -> None:
    if BACKEND == "sqlite":
        with closing(sqlite3.connect(urlparse(url).path)) as conn:
            conn.execute(sql)
            conn.commit()
        return
    query(url, sql)


def tables(url: str) -> list[str]:
    if BACKEND == "sqlite":
        rows = query(
            url, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    elif BACKEND == "mysql":
        rows = query(
            url,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
        )
    else:
        rows = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    # The archives a rollback keeps are not part of the schema a release defines.
    return sorted(r[0] for r in rows if not r[0].startswith(ARCHIVE_PREFIX))


ARCHIVE_PREFIX = "django_rollback_archive_"  # SQLite, MySQL; on PostgreSQL a schema of its own
ARCHIVE_SCHEMA = "django_rollback_archive"


def archive_tables(url: str) -> list[str]:
    """The archive tables rollbacks kept in this database."""
    if BACKEND == "postgresql":
        rows = query(url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{ARCHIVE_SCHEMA}'")
        return sorted(r[0] for r in rows)
    if BACKEND == "sqlite":
        rows = query(url, "SELECT name FROM sqlite_master WHERE type='table'")
    else:
        rows = query(
            url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
    return sorted(r[0] for r in rows if r[0].startswith(ARCHIVE_PREFIX))


def schema(url: str) -> list[str]:
    """The whole schema as sorted-where-order-is-meaningless lines (column order ignored:
    unapplying RemoveField re-adds the column at the end of the table)."""
    if BACKEND == "postgresql":
        return _pg_schema(url)
    if BACKEND == "mysql":
        return _my_schema(url)
    lines: list[str] = []
    with closing(sqlite3.connect(urlparse(url).path)) as conn:
        for table in tables(url):
            for _cid, name, type_, notnull, default, pk in conn.execute(
                f'PRAGMA table_info("{table}")'
            ):
                lines.append(f"{table}.{name} {type_} notnull={notnull} default={default} pk={pk}")
            for row in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
                lines.append(f"{table} fk {row[3]} -> {row[2]}.{row[4]} deferred={row[5]}/{row[6]}")
            for _, index, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")'):
                cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{index}")')]
                shown = "auto" if index.startswith("sqlite_autoindex") else index
                lines.append(f"{table} index {shown} unique={unique} origin={origin} {cols}")
    return sorted(lines)


def pg_schema_of(url: str, name: str) -> list[str]:
    """One PostgreSQL schema's dump (a django-tenants tenant, or public), as schema() has it."""
    return _pg_schema(url, f"--schema={name}")


def _pg_schema(url: str, only: str | None = None) -> list[str]:
    parsed = urlparse(url)
    dump = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            only or f"--exclude-schema={ARCHIVE_SCHEMA}",
            "-h",
            parsed.hostname or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            _dbname(url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: list[str] = []
    block: list[str] | None = None
    head = ""
    for line in dump.splitlines():
        if not line.strip() or line.startswith(
            ("--", "SET ", "SELECT pg_catalog.set_config", "\\")
        ):
            continue
        if block is not None:
            if line.startswith(")"):
                out.append(head + " " + " | ".join(sorted(block)) + line)
                block = None
            else:
                block.append(line.strip().rstrip(","))
        elif line.startswith("CREATE TABLE"):
            head, block = line, []
        else:
            out.append(line)
    return out


def _my_schema(url: str) -> list[str]:
    """SHOW CREATE TABLE of every table, its lines sorted and the AUTO_INCREMENT counter
    (which tracks rows, not schema) left out."""
    out: list[str] = []
    with closing(_my_connect(_dbname(url))) as conn, conn.cursor() as cursor:
        for table in tables(url):
            cursor.execute(f'SHOW CREATE TABLE "{table}"')
            lines = cursor.fetchone()[1].splitlines()
            body = sorted(line.strip().rstrip(",") for line in lines[1:-1])
            tail = re.sub(r" AUTO_INCREMENT=\d+", "", lines[-1])
            out.append(f"{lines[0]} {' | '.join(body)} {tail}")
    return sorted(out)


def applied(url: str) -> set[tuple[str, str]]:
    return {(a, n) for a, n in query(url, "SELECT app, name FROM django_migrations")}


def row_counts(url: str) -> dict[str, int]:
    return {
        t: query(url, f'SELECT COUNT(*) FROM "{t}"')[0][0]
        for t in tables(url)
        if t.startswith(APP_TABLES)
    }


def saved_states(url: str) -> list[tuple[str, str]] | None:
    """(commit, tags) of the saved states, oldest first (None: no table)."""
    if "django_rollback_migrationstate" not in tables(url):
        return None
    return [
        (c, t)
        for c, t in query(
            url, 'SELECT "commit", tags FROM django_rollback_migrationstate ORDER BY id'
        )
    ]


def logs(url: str) -> list[tuple] | None:
    if "django_rollback_rollbacklog" not in tables(url):
        return None
    return query(
        url,
        "SELECT status, from_commit, to_commit, error FROM django_rollback_rollbacklog ORDER BY id",
    )


def everything(url: str) -> dict[str, object]:
    """What a refusal must leave exactly as it was."""
    return {
        "schema": schema(url),
        "applied": applied(url),
        "rows": row_counts(url),
        "states": saved_states(url),
        "logs": logs(url),
        # by shape: a rollback re-run after a failure keeps the same archive under a new log id
        "archives": [re.sub(r"\d+_", "N_", name, count=1) for name in archive_tables(url)],
    }


SHA = re.compile(r"[0-9a-f]{40}")


@contextmanager
def rollback_lock_held(url: str) -> Iterator[None]:
    """Hold django_rollback's lock on this database from outside, as a running rollback does."""
    from django_rollback.locks import LOCK_KEY, mysql_lock_name, sqlite_lock_path

    if BACKEND == "sqlite":
        with open(sqlite_lock_path("/" + urlparse(url).path.lstrip("/")), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    with closing(_server_connect(_dbname(url))) as conn, conn.cursor() as cursor:
        if BACKEND == "mysql":
            cursor.execute("SELECT GET_LOCK(%s, 5)", [mysql_lock_name(_dbname(url))])
            assert cursor.fetchone()[0] == 1, "could not take the lock"
        else:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])  # blocks until taken
        yield
