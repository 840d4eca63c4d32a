"""The preview of a rollback that drops a column of a 20-million-row table: catalog
estimates (the default above DJANGO_ROLLBACK["ESTIMATE_ROWS_ABOVE"]) against exact counts.

    .venv/bin/python benchmarks/preview_big_table.py                 # 20 million rows
    .venv/bin/python benchmarks/preview_big_table.py --rows 2000000 --repeat 5

A one-app project in a scratch git repository: v1 creates shelf_book, v2 adds a column.
v1 is deployed, the table filled with generate_series and ANALYZEd (what autovacuum does on
a live database), v2 deployed. Then the preview (plan_rollback with the data loss and the
blast radius measured) is timed inside one process, each way, --repeat times; the medians
and their ratio are printed, as is the wall time of `rollback_migrations --fake` for both.
Needs PostgreSQL (default postgres://postgres@127.0.0.1:5432; --pg-url to change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.shop import shelf_releases  # noqa: E402  (plain module: the release files)

TIMED = """
import statistics, sys, time
import django
django.setup()
from django_rollback import services
exact = sys.argv[1] == "exact"
times = []
for _ in range(int(sys.argv[2])):
    began = time.perf_counter()
    plan = services.plan_rollback(exact_counts=exact)
    times.append(time.perf_counter() - began)
[(step, loss)] = [(s, l) for s, l in plan.data_loss if l.column == "isbn"]
size = plan.tables["shelf_book"]
print(statistics.median(times), size.rows, size.estimated, size.bytes, loss.rows, loss.estimated)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def manage(repo: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings", "DATABASE_URL": url},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    options = parser.parse_args()

    import psycopg2

    server = urlparse(options.pg_url)
    name = f"dr_bench_preview_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(
        host=server.hostname,
        port=server.port or 5432,
        user=server.username or "postgres",
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = f"{options.pg_url.rstrip('/')}/{name}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            repo = Path(folder)
            git(repo, "init", "-q", "-b", "main")
            git(repo, "config", "user.email", "bench@example.com")
            git(repo, "config", "user.name", "bench")
            for index, (tag, files) in enumerate(shelf_releases("")):
                for relative, content in files.items():
                    if content is not None and not relative.endswith("0003_change.py"):
                        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
                        (repo / relative).write_text(content)
                git(repo, "add", "-A")
                git(repo, "commit", "-q", "-m", tag)
                git(repo, "tag", tag)
                manage(repo, url, "migrate", "--no-input")
                manage(repo, url, "save_migrations_state")
                if index == 0:
                    began = time.perf_counter()
                    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
                        conn.autocommit = True
                        cursor.execute(
                            "INSERT INTO shelf_book (title) SELECT 'book ' || n "
                            "FROM generate_series(1, %s) AS n",
                            [options.rows - 1],
                        )
                        cursor.execute("ANALYZE shelf_book")
                    print(
                        f"filled shelf_book with {options.rows:,} rows in "
                        f"{time.perf_counter() - began:.1f}s"
                    )
            results = {}
            for mode in ("estimate", "exact"):
                out = subprocess.run(
                    [sys.executable, "-c", TIMED, mode, str(options.repeat)],
                    cwd=repo,
                    check=True,
                    capture_output=True,
                    text=True,
                    env={
                        **os.environ,
                        "DJANGO_SETTINGS_MODULE": "shop.settings",
                        "DATABASE_URL": url,
                    },
                ).stdout.split()
                results[mode] = float(out[0])
                print(
                    f"plan_rollback, {mode:8}: median {float(out[0]):.3f}s over "
                    f"{options.repeat} runs; shelf_book rows={out[1]} estimated={out[2]} "
                    f"bytes={out[3]}; isbn non-null={out[4]} estimated={out[5]}"
                )
            for flags in ([], ["--exact-counts"]):
                walls = []
                for _ in range(options.repeat):
                    began = time.perf_counter()
                    manage(repo, url, "rollback_migrations", "--fake", *flags)
                    walls.append(time.perf_counter() - began)
                print(
                    f"rollback_migrations --fake {' '.join(flags):15} wall: median "
                    f"{statistics.median(walls):.3f}s (whole process, Django start included)"
                )
            print(f"exact / estimate: {results['exact'] / results['estimate']:.0f}x")
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
