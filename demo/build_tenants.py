#!/usr/bin/env python
"""A django-tenants project with a few tenants and a real release history, for the admin.

    python demo/build_tenants.py DEST --database-url postgres://postgres@127.0.0.1:5432/NAME

DEST becomes a git repository holding the fleet tests' tenant project (tests/tenants_project.py,
with Django's admin in the public schema: tenantsite/admin_settings.py). For each release,
v1.0.0, v1.1.0 and v2.0.0, its files are committed and tagged, then it is deployed the way an
entrypoint does it on django-tenants: `migrate_schemas` then `save_migrations_state` (public
and every tenant schema). Tenants alpha, beta and gamma exist from v1.0.0; delta arrives with
v2.0.0, so it has no saved state at the earlier releases. Each tenant gets a few rows, not
the same number in each.
The database must be empty (it is dropped and created again with --force).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.tenants_project import create_tenant_code, release_files  # noqa: E402

EARLY = ("alpha", "beta", "gamma")
LATE = "delta"
NOTES = {"alpha": 3, "beta": 5, "gamma": 2}  # tenants of different sizes, as in real life
ROWS = {
    "v1.0.0": "INSERT INTO {s}.notes_note (title) SELECT '{s} note ' || g "
    "FROM generate_series(1, {notes}) g",
    "v1.1.0": "UPDATE {s}.notes_note SET body = 'body of ' || title; "
    "INSERT INTO {s}.notes_label (name) VALUES ('red'), ('blue')",
    "v2.0.0": "INSERT INTO {s}.notes_comment (note_id, text) "
    "SELECT id, 'on ' || title FROM {s}.notes_note",
}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def psql(url: str, sql: str, database: str | None = None) -> None:
    parsed = urlparse(url)
    subprocess.run(
        [
            "psql",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            parsed.hostname or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            "-d",
            database or parsed.path.lstrip("/"),
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
    )


def manage(dest: Path, url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tenantsite.admin_settings"}
    env["PYTHONPATH"] = str(REPO_ROOT)  # this checkout's django_rollback
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=dest, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--force", action="store_true", help="replace DEST and the database")
    options = parser.parse_args()
    dest: Path = options.dest.resolve()
    url: str = options.database_url
    name = urlparse(url).path.lstrip("/")
    if options.force:
        shutil.rmtree(dest, ignore_errors=True)
        psql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', "postgres")
    psql(url, f'CREATE DATABASE "{name}"', "postgres")
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.email", "demo@example.com")
    git(dest, "config", "user.name", "Demo")
    tenants: list[str] = []
    for tag, files in release_files():
        for relative, content in files.items():
            path = dest / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content or "")
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", f"Release {tag}")
        git(dest, "tag", tag)
        print(f"== {tag}: migrate_schemas, tenants, save_migrations_state", flush=True)
        manage(dest, url, "migrate_schemas", "--noinput")
        new = EARLY if tag == "v1.0.0" else (LATE,) if tag == "v2.0.0" else ()
        for schema in new:
            manage(dest, url, "shell", "-c", create_tenant_code(schema))
            tenants.append(schema)
        for schema in tenants:
            if tag == "v2.0.0" and schema == LATE:  # today's columns: body has no SQL default
                psql(url, f"INSERT INTO {schema}.notes_note (title, body) VALUES ('first', '')")
            psql(url, ROWS[tag].format(s=schema, notes=NOTES.get(schema, 1)))
        manage(dest, url, "save_migrations_state")
    manage(dest, url, "rollback_migrations", "--list")


if __name__ == "__main__":
    main()
