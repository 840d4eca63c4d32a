"""The example project and its demo history, driven end to end through subprocesses.

demo/build_history.py replays releases v1.0.0..v1.2.0 of example_project/ into a scratch git
repository and deploys each one (migrate + save_migrations_state) on a temporary SQLite file.
No test here uses the in-process test database.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from .gitrepo import git

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_HISTORY = REPO_ROOT / "demo" / "build_history.py"
TAGS = ("v1.0.0", "v1.1.0", "v1.2.0")
DEMO_APPS = ("catalog", "orders", "shipping")


def load_build_history() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_history", BUILD_HISTORY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


build_history = load_build_history()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def run(
    args: list[str | Path], cwd: Path, database_url: str | None = None, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django's; manage.py must use its own
    if database_url:
        env["DATABASE_URL"] = database_url
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if expect is not None and proc.returncode != expect:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {proc.returncode} (expected {expect}) in {cwd}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def manage(site: Path, *args: str, database_url: str, expect: int | None = 0):
    return run([sys.executable, "manage.py", *args], site, database_url, expect)


@dataclass
class Site:
    path: Path
    db: Path
    build_output: str

    @property
    def database_url(self) -> str:
        return sqlite_url(self.db)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("history")
    path, db = root / "site", root / "deploy.sqlite3"
    proc = run([sys.executable, BUILD_HISTORY, path, "--database-url", sqlite_url(db)], root)
    return Site(path, db, proc.stdout)


@pytest.fixture
def site_copy(site: Site, tmp_path: Path) -> Site:
    """A private copy of the built site and its database, for tests that change them."""
    path, db = tmp_path / "site", tmp_path / "deploy.sqlite3"
    shutil.copytree(site.path, path, symlinks=True)
    shutil.copyfile(site.db, db)
    return Site(path, db, site.build_output)


def tree(root: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under root that a release ships (no git metadata, bytecode or database)."""
    return {
        prefix + path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
        and not {".git", "__pycache__"} & set(path.relative_to(root).parts)
        and path.suffix != ".pyc"
        and not path.name.startswith("db.sqlite3")
    }


def schema(db: Path) -> dict[str, set[tuple]]:
    """{table: {(column, type, not null, default, primary key), (index columns, unique), ...}}."""
    with sqlite3.connect(db) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
            )
        ]
        result = {}
        for table in tables:
            result[table] = {
                tuple(row[1:]) for row in conn.execute(f'PRAGMA table_info("{table}")')
            }
            for _, index, unique, *_ in conn.execute(f'PRAGMA index_list("{table}")'):
                indexed = conn.execute(f'PRAGMA index_info("{index}")').fetchall()
                result[table].add((tuple(row[2] for row in indexed), unique))
        return result


def columns(db: Path) -> dict[str, set[str]]:
    return {
        table: {item[0] for item in items if isinstance(item[0], str)}
        for table, items in schema(db).items()
    }


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def applied(showmigrations_output: str) -> dict[str, list[str]]:
    """{app: [applied migration names]} from `showmigrations` output."""
    result: dict[str, list[str]] = {}
    app = ""
    for line in showmigrations_output.splitlines():
        if not line.startswith(" "):
            app = line.strip()
            result[app] = []
        elif match := re.match(r"\s*\[X\] (\S+)", line):
            result[app].append(match.group(1))
    return result


# --- the release table ----------------------------------------------------------------------


def test_release_table_describes_a_growing_history() -> None:
    assert tuple(build_history.TAGS) == TAGS
    adds = {release.tag: release.adds for release in build_history.RELEASES}
    assert "shipping" not in adds["v1.0.0"], "shipping must have no migrations at v1.0.0"
    for tag, per_app in adds.items():
        assert len([app for app, names in per_app.items() if names]) >= 2, tag
    for tag in TAGS[1:]:
        assert sum(len(names) for names in adds[tag].values()) >= 2, tag
    # Every migration file of example_project/ is listed exactly once.
    build_history.check_table()
    assert [r.tag for r in build_history.RELEASES if r.annotated] == ["v1.1.0"]


def test_final_release_is_exactly_example_project() -> None:
    expected = tree(REPO_ROOT / "example_project") | tree(REPO_ROOT / "templates", "templates/")
    assert build_history.release_files(TAGS[-1]) == expected


def test_release_overlays_only_hold_files_that_differ() -> None:
    final = build_history.release_files(TAGS[-1])
    for overlay in sorted((REPO_ROOT / "demo" / "releases").iterdir()):
        assert overlay.name in TAGS[:-1], f"unexpected release folder {overlay}"
        for path in overlay.rglob("*.py"):
            rel = path.relative_to(overlay).as_posix()
            assert path.read_bytes() != final[rel], f"{path} is identical to example_project/{rel}"


# --- the built history ----------------------------------------------------------------------


def test_build_reports_each_release(site: Site) -> None:
    lines = [line for line in site.build_output.splitlines() if line.startswith("[")]
    assert len(lines) == 3
    for line, tag in zip(lines, TAGS, strict=True):
        assert tag in line and "state saved" in line, line


def test_history_is_three_tagged_commits_checked_out_at_the_last(site: Site) -> None:
    assert git(site.path, "tag", "--list").split() == list(TAGS)
    assert git(site.path, "log", "--format=%s").splitlines() == [f"Release {t}" for t in TAGS[::-1]]
    assert [git(site.path, "cat-file", "-t", tag) for tag in TAGS] == ["commit", "tag", "commit"]
    assert git(site.path, "rev-parse", "HEAD") == git(site.path, "rev-parse", f"{TAGS[-1]}^{{}}")
    assert git(site.path, "status", "--porcelain") == ""


def test_final_commit_holds_the_example_project(site: Site, tmp_path: Path) -> None:
    git(tmp_path, "clone", "--quiet", site.path, tmp_path / "clone")
    assert tree(tmp_path / "clone") == build_history.release_files(TAGS[-1])


@pytest.mark.parametrize("tag", TAGS)
def test_each_release_is_consistent_and_migrates(site: Site, tag: str, tmp_path: Path) -> None:
    checkout = tmp_path / tag
    git(tmp_path, "clone", "--quiet", "--branch", tag, site.path, checkout)
    on_disk = {
        path.relative_to(checkout).as_posix()
        for app in DEMO_APPS
        for path in (checkout / app / "migrations").glob("0*.py")
    }
    assert on_disk == build_history.shipped_migrations(tag)

    database_url = sqlite_url(tmp_path / "fresh.sqlite3")
    check = manage(checkout, "makemigrations", "--check", "--dry-run", database_url=database_url)
    assert "No changes detected" in check.stdout
    manage(checkout, "migrate", "--noinput", database_url=database_url)
    migrated = applied(
        manage(checkout, "showmigrations", *DEMO_APPS, database_url=database_url).stdout
    )
    expected = {app: [] for app in DEMO_APPS}
    for rel in sorted(build_history.shipped_migrations(tag)):
        app, _, name = rel.removesuffix(".py").split("/")
        expected[app].append(name)
    assert migrated == expected


def test_list_shows_the_three_saved_states(site: Site) -> None:
    out = manage(site.path, "rollback_migrations", "--list", database_url=site.database_url).stdout
    state_lines = [line for line in out.splitlines() if re.search(r"\b[0-9a-f]{7,40}\b", line)]
    assert len(state_lines) == 3, out
    for tag in TAGS:
        commit = git(site.path, "rev-parse", f"{tag}^{{}}")
        assert [line for line in state_lines if tag in line and commit[:7] in line], (tag, out)


def test_rollback_to_the_first_release(site_copy: Site, tmp_path: Path) -> None:
    site, url = site_copy.path, site_copy.database_url
    db = site_copy.db
    before = columns(db)
    assert {"shipping_carrier", "shipping_shipment"} <= before.keys()
    assert {"sku", "weight_grams"} <= before["catalog_product"]
    assert count_rows(db, "shipping_shipment") == 2  # one by the data migration, one seeded

    manage(site, "rollback_migrations", "-t", "v1.0.0", database_url=url)

    migrated = applied(manage(site, "showmigrations", *DEMO_APPS, database_url=url).stdout)
    assert migrated == {"catalog": ["0001_initial"], "orders": ["0001_initial"], "shipping": []}

    # The schema is the one v1.0.0 produced; the rows of v1.0.0's tables are still there.
    after = columns(db)
    assert not {t for t in after if t.startswith("shipping_")}
    assert after["catalog_product"] == {"id", "name", "price", "category_id"}
    assert after["orders_order"] == {"id", "customer_email", "created_at"}
    reference = tmp_path / "v1.0.0"
    git(tmp_path, "clone", "--quiet", "--branch", "v1.0.0", site, reference)
    manage(reference, "migrate", "--noinput", database_url=sqlite_url(tmp_path / "ref.sqlite3"))
    assert schema(db) == schema(tmp_path / "ref.sqlite3")
    assert count_rows(db, "catalog_product") == 4
    assert count_rows(db, "orders_order") == 4

    # The states of the releases rolled back are gone; v1.0.0 is the latest one.
    out = manage(site, "rollback_migrations", "--list", database_url=url).stdout
    # Issue 10: the list ends with where the database stands (HEAD, v1.2.0, was rolled back).
    *table, standing = out.strip().splitlines()
    assert standing.startswith("The current commit") and "['v1.2.0']" in standing, out
    assert "it was rolled back to commit" in standing and "['v1.0.0']" in standing, out
    out = "\n".join(table)
    assert "v1.0.0" in out and "v1.1.0" not in out and "v1.2.0" not in out, out


# --- the build script's guard rails ---------------------------------------------------------


def test_build_refuses_a_non_empty_destination_unless_forced(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("precious")
    proc = run([sys.executable, BUILD_HISTORY, dest, "--no-deploy"], tmp_path, expect=1)
    assert "not empty" in proc.stderr and "--force" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (dest / "keep.txt").exists()

    run([sys.executable, BUILD_HISTORY, dest, "--no-deploy", "--force"], tmp_path)
    assert not (dest / "keep.txt").exists()
    assert git(dest, "tag", "--list").split() == list(TAGS)
    assert not (dest / "db.sqlite3").exists(), "--no-deploy must not touch a database"
