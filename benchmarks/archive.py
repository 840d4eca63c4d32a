"""What archiving costs: a rollback that drops a table of 1 million rows, and one that drops a
column of a 1-million-row table, with the archive (default) and with --no-archive.

    .venv/bin/python benchmarks/archive.py                 # 1,000,000 rows, 3 runs each
    .venv/bin/python benchmarks/archive.py --rows 100000 --repeat 5

Each run is one fresh `manage.py rollback_migrations` process, timed from start to exit, on a
fresh copy (CREATE DATABASE ... TEMPLATE) of the deployed database; the two variants are
interleaved so that machine load hits them alike. Prints medians and the ratio archive /
plain. Needs PostgreSQL (--pg-url; default postgres://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import Postgres  # the benchmarks' PostgreSQL helper: create, clone and drop databases

MANAGE = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""
SETTINGS = """\
from pathlib import Path
import environ
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench"
USE_TZ = True
DATABASES = {"default": environ.Env().db("DATABASE_URL")}
INSTALLED_APPS = ["django_rollback", "big"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DJANGO_ROLLBACK = {"REPO_PATH": BASE_DIR}
"""
HEAD = "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
ID = '("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False))'
V1 = {
    "big/migrations/0001_initial.py": HEAD
    + "    dependencies = []\n    operations = [\n"
    + f'        migrations.CreateModel(name="Item", fields=[{ID}, ("n", models.IntegerField())]),\n'
    + "    ]\n",
}
V2_TABLE = {
    "big/migrations/0002_row.py": HEAD
    + '    dependencies = [("big", "0001_initial")]\n    operations = [\n'
    + f'        migrations.CreateModel(name="Row", fields=[{ID}, ("n", models.IntegerField()), '
    + '("label", models.CharField(max_length=40))]),\n    ]\n',
}
V2_COLUMN = {
    "big/migrations/0002_item_note.py": HEAD
    + '    dependencies = [("big", "0001_initial")]\n    operations = [\n'
    + '        migrations.AddField(model_name="item", name="note", '
    + "field=models.CharField(max_length=40, null=True)),\n    ]\n",
}
FILL = {
    "table": "INSERT INTO big_row (n, label) "
    "SELECT g, 'row ' || g FROM generate_series(1, {rows}) g",
    "column": "UPDATE big_item SET note = 'note ' || n",
}


def git(path: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


def manage(path: Path, url: str, *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=path,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def project(root: Path, server: Postgres, kind: str, rows: int) -> str:
    """The project at v2, deployed; returns the template database holding its rows."""
    root.mkdir(parents=True)
    files = {"manage.py": MANAGE, "bench/__init__.py": "", "bench/settings.py": SETTINGS}
    files |= {"big/__init__.py": "", "big/models.py": "", "big/migrations/__init__.py": ""}
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "user.name", "bench")
    name = server.create(kind)
    url = server.url_of(name)
    for tag, release in (
        ("v1", {**files, **V1}),
        ("v2", V2_TABLE if kind == "table" else V2_COLUMN),
    ):
        for relative, content in release.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(content)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", tag)
        git(root, "tag", tag)
        if tag == "v1":
            manage(root, url, "migrate", "--no-input")
            server.run(f"INSERT INTO big_item (n) SELECT g FROM generate_series(1, {rows}) g", name)
        else:
            manage(root, url, "migrate", "--no-input")
        manage(root, url, "save_migrations_state")
    server.run(FILL[kind].format(rows=rows), name)
    server.run("VACUUM ANALYZE", name)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--only", choices=["table", "column"], help="One of the two cases.")
    options = parser.parse_args()
    server = Postgres(options.pg_url)
    print(
        f"PostgreSQL {server.run('SHOW server_version')[0][0]}, {options.rows:,} rows, "
        f"medians of {options.repeat} runs (fresh process, fresh database copy)"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in [options.only] if options.only else ["table", "column"]:
                root = Path(tmp) / kind
                template = project(root, server, kind, options.rows)
                times: dict[str, list[float]] = {"archive": [], "plain": []}
                restore: list[float] = []
                for _ in range(options.repeat):
                    for variant in ("plain", "archive"):
                        copy = server.create("run", template)
                        args = ["rollback_migrations"] + (
                            ["--no-archive"] if variant == "plain" else []
                        )
                        times[variant].append(manage(root, server.url_of(copy), *args))
                        if variant == "archive":
                            git(root, "checkout", "-q", "v2")
                            manage(root, server.url_of(copy), "migrate", "--no-input")
                            restore.append(
                                manage(root, server.url_of(copy), "restore_rollback_archive")
                            )
                        server.drop(copy)
                plain = statistics.median(times["plain"])
                archived = statistics.median(times["archive"])
                what = "table of" if kind == "table" else "column of a table of"
                print(
                    f"drop a {what} {options.rows:,} rows: plain {plain:.2f} s, "
                    f"archive {archived:.2f} s, ratio {archived / plain:.2f}; "
                    f"restore {statistics.median(restore):.2f} s"
                )
    finally:
        server.drop_all()


if __name__ == "__main__":
    main()
