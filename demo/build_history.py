#!/usr/bin/env python
"""Replay the example project's release history into a scratch git repository.

    python demo/build_history.py DEST [--database-url URL] [--no-deploy] [--force] [-v]

DEST becomes a git repository with manage.py at its root (the contents of ``example_project/``
plus the top-level ``templates/`` folder). For every release below, in order, the files of that
release are committed and tagged, then the release is "deployed" the way a container entrypoint
does it: ``manage.py migrate`` then ``manage.py save_migrations_state`` (run in DEST with this
Python), followed by a few demo rows so that a rollback has data to lose. DEST is left checked
out at the last release, whose files are exactly ``example_project/``.

The database is ``DATABASE_URL`` (``--database-url`` wins); without it, the example project's
default SQLite file ``DEST/db.sqlite3``. Deploy onto an empty database.

Files of a release = ``example_project/`` with ``demo/releases/<tag>/`` written over it (the files
that differed at that release, e.g. each app's models.py), and only the migration files that had
shipped by then (table ``RELEASES``). Migrations are never edited once shipped, so the final tree
holds every one of them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEMO_DIR.parent
EXAMPLE_PROJECT = REPO_ROOT / "example_project"
TEMPLATES = REPO_ROOT / "templates"
RELEASES_DIR = DEMO_DIR / "releases"

SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIPPED_FILE_PATTERN = re.compile(r"(\.py[co]$)|(^db\.sqlite3)")
MIGRATION_FILE = re.compile(r"^(?P<app>[^/]+)/migrations/(?P<name>\d{4}_\w+)\.py$")


@dataclass(frozen=True)
class Release:
    tag: str
    #: Migration files this release adds, per app (earlier releases' files stay).
    adds: dict[str, tuple[str, ...]]
    annotated: bool = False
    #: Run with ``manage.py shell -c`` after the deploy: demo rows for this release's models.
    seed: str = field(default="", repr=False)


SEED_V1_0_0 = """
from decimal import Decimal
from catalog.models import Category, Product
from orders.models import Order, OrderLine

books = Category.objects.create(name="Books", slug="books")
games = Category.objects.create(name="Games", slug="games")
scoops = Product.objects.create(category=books, name="Two Scoops of Django", price=Decimal("39.90"))
prag = Product.objects.create(
    category=books, name="The Pragmatic Programmer", price=Decimal("42.00")
)
catan = Product.objects.create(category=games, name="Catan", price=Decimal("35.50"))
for email, lines in [
    ("alice@example.com", [(scoops, 1), (catan, 2)]),
    ("bob@example.com", [(prag, 1)]),
    ("carol@example.com", [(catan, 1)]),
]:
    order = Order.objects.create(customer_email=email)
    for product, quantity in lines:
        OrderLine.objects.create(
            order=order, product=product, quantity=quantity, unit_price=product.price
        )
"""

SEED_V1_1_0 = """
from decimal import Decimal
from catalog.models import Category, Product
from orders.models import Order, OrderLine

Order.objects.filter(customer_email="alice@example.com").update(status=Order.Status.SHIPPED)
Order.objects.filter(customer_email="bob@example.com").update(status=Order.Status.PAID)
ticket = Product.objects.create(
    category=Category.objects.get(slug="games"),
    name="Ticket to Ride",
    price=Decimal("44.00"),
    sku="GAME-TTR",
)
order = Order.objects.create(customer_email="dave@example.com")
OrderLine.objects.create(order=order, product=ticket, quantity=1, unit_price=ticket.price)
"""

SEED_V1_2_0 = """
from catalog.models import Product
from orders.models import Order
from shipping.models import Carrier, Shipment

Product.objects.filter(category__slug="books").update(weight_grams=650)
Product.objects.filter(category__slug="games").update(weight_grams=1900)
express = Carrier.objects.create(name="Parcel Express")
bob = Order.objects.get(customer_email="bob@example.com")
Shipment.objects.create(order=bob, carrier=express, tracking_number="PX-000001")
bob.status = Order.Status.SHIPPED
bob.save(update_fields=["status"])
"""

# The release table: which migration files each release adds (they stay in later releases).
RELEASES: tuple[Release, ...] = (
    Release(
        "v1.0.0",
        {"catalog": ("0001_initial",), "orders": ("0001_initial",)},  # shipping: none yet
        seed=SEED_V1_0_0,
    ),
    Release(
        "v1.1.0",
        {
            "catalog": ("0002_product_sku", "0003_fill_product_sku"),  # AddField + RunPython
            "orders": ("0002_order_status",),  # AddField
        },
        annotated=True,
        seed=SEED_V1_1_0,
    ),
    Release(
        "v1.2.0",
        {
            "catalog": ("0004_product_weight_grams",),  # AddField
            "shipping": ("0001_initial", "0002_ship_shipped_orders"),  # CreateModel + RunPython
        },
        seed=SEED_V1_2_0,
    ),
)
TAGS = tuple(release.tag for release in RELEASES)


class BuildError(Exception):
    """A refusal or a failed step; the message is what the user reads."""


# --- the files of each release --------------------------------------------------------------


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(posix path relative to root, file) for every file worth shipping under root."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(filenames):
            if not SKIPPED_FILE_PATTERN.search(name):
                path = Path(dirpath, name)
                yield path.relative_to(root).as_posix(), path


def shipped_migrations(tag: str) -> set[str]:
    """Paths (``app/migrations/name.py``) of every migration on disk at release ``tag``."""
    if tag not in TAGS:
        raise BuildError(f"unknown release {tag!r}; known: {', '.join(TAGS)}")
    paths: set[str] = set()
    for release in RELEASES[: TAGS.index(tag) + 1]:
        for app, names in release.adds.items():
            paths.update(f"{app}/migrations/{name}.py" for name in names)
    return paths


def final_files() -> dict[str, Path]:
    """The final release's tree: example_project/ plus templates/ (relative path -> source)."""
    files = dict(_walk(EXAMPLE_PROJECT))
    files.update((f"templates/{rel}", path) for rel, path in _walk(TEMPLATES))
    return files


def release_files(tag: str) -> dict[str, bytes]:
    """Every file of release ``tag``, relative to the project root (where manage.py is)."""
    final = final_files()
    migrations = shipped_migrations(tag)
    files = {
        rel: path.read_bytes()
        for rel, path in final.items()
        if not MIGRATION_FILE.match(rel) or rel in migrations
    }
    overlay = RELEASES_DIR / tag
    if overlay.is_dir():
        for rel, path in _walk(overlay):
            if rel not in final:
                raise BuildError(f"{overlay / rel} overrides no file of example_project/")
            files[rel] = path.read_bytes()
    return files


def check_table() -> None:
    """RELEASES must name every migration file of the final tree, each exactly once."""
    listed = [
        f"{app}/migrations/{name}.py"
        for release in RELEASES
        for app, names in release.adds.items()
        for name in names
    ]
    on_disk = {rel for rel in final_files() if MIGRATION_FILE.match(rel)}
    if len(listed) != len(set(listed)) or set(listed) != on_disk:
        raise BuildError(
            "RELEASES does not match example_project's migrations: "
            f"not listed {sorted(on_disk - set(listed))}, "
            f"not on disk {sorted(set(listed) - on_disk)}, "
            f"listed twice {sorted({p for p in listed if listed.count(p) > 1})}"
        )


# --- running things -------------------------------------------------------------------------


class Runner:
    def __init__(self, dest: Path, env: dict[str, str], verbose: bool) -> None:
        self.dest, self.env, self.verbose = dest, env, verbose

    def run(self, *args: str) -> str:
        """Run a command in DEST; return its stdout, or raise BuildError with all its output."""
        proc = subprocess.run(
            args, cwd=self.dest, env=self.env, capture_output=True, text=True, check=False
        )
        if self.verbose and (proc.stdout or proc.stderr):
            print(_indent(proc.stdout + proc.stderr))
        if proc.returncode != 0:
            shown = " ".join(a if len(a) < 60 and "\n" not in a else "..." for a in args)
            raise BuildError(
                f"`{shown}` failed (exit {proc.returncode}) in {self.dest}:\n"
                + _indent(proc.stdout + proc.stderr)
            )
        return proc.stdout

    def git(self, *args: str) -> str:
        return self.run("git", *args).strip()

    def manage(self, *args: str) -> str:
        return self.run(sys.executable, "manage.py", *args)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def prepare_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise BuildError(f"{dest} exists and is not a directory.")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise BuildError(f"{dest} exists and is not empty; pass --force to wipe it.")
        resolved = dest.resolve()
        if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
            raise BuildError(f"refusing to wipe {resolved}.")
        if resolved == REPO_ROOT or resolved in REPO_ROOT.parents:
            raise BuildError(f"refusing to wipe {resolved}: it holds this repository.")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)


def write_release(runner: Runner, files: dict[str, bytes]) -> None:
    """Make the work tree hold exactly ``files`` (ignored files such as the database stay)."""
    dest = runner.dest
    tracked = runner.git("ls-files", "-z").split("\0")
    for rel in tracked:
        if rel and rel not in files:
            (dest / rel).unlink(missing_ok=True)
    for rel, content in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (dest / "manage.py").chmod(0o755)


def applied_migrations(migrate_output: str) -> list[str]:
    return re.findall(r"^\s*Applying (\S+)\.\.\.", migrate_output, flags=re.MULTILINE)


def build(
    dest: Path,
    database_url: str | None = None,
    deploy: bool = True,
    force: bool = False,
    verbose: bool = False,
) -> None:
    check_table()
    releases = [(release, release_files(release.tag)) for release in RELEASES]
    prepare_dest(dest, force)

    env = dict(os.environ)
    # The project's own settings, whatever the calling process (e.g. pytest-django) exported.
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    runner = Runner(dest, env, verbose)

    runner.git("init", "--quiet", "--initial-branch=main")
    for key, value in [
        ("user.name", "django-rollback demo"),
        ("user.email", "demo@example.com"),
        ("commit.gpgsign", "false"),
        ("tag.gpgsign", "false"),
    ]:
        runner.git("config", key, value)

    demo_apps = tuple(sorted({app for release in RELEASES for app in release.adds}))
    for number, (release, files) in enumerate(releases, start=1):
        write_release(runner, files)
        runner.git("add", "--all")
        runner.git("commit", "--quiet", "-m", f"Release {release.tag}")
        if release.annotated:
            runner.git("tag", "--annotate", release.tag, "-m", f"Release {release.tag}")
        else:
            runner.git("tag", release.tag)
        commit = runner.git("rev-parse", "--short", "HEAD")
        kind = "annotated" if release.annotated else "lightweight"
        line = f"[{number}/{len(releases)}] {release.tag} ({kind} tag) commit {commit}"
        if deploy:
            applied = applied_migrations(runner.manage("migrate", "--noinput"))
            ours = [name for name in applied if name.startswith(tuple(f"{a}." for a in demo_apps))]
            others = len(applied) - len(ours)
            runner.manage("save_migrations_state")
            if release.seed:
                runner.manage("shell", "-c", release.seed)
            line += f": applied {', '.join(ours) or 'nothing new'}"
            if others:
                line += f" (+{others} of other apps)"
            line += "; state saved" + ("; demo rows added" if release.seed else "")
        print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a git repository that replays the example project's releases "
        f"({', '.join(TAGS)}), deploying each one.",
    )
    parser.add_argument("dest", type=Path, help="directory to create the repository in")
    parser.add_argument(
        "--database-url", help="database to deploy to (default: DATABASE_URL, else DEST/db.sqlite3)"
    )
    parser.add_argument(
        "--no-deploy",
        dest="deploy",
        action="store_false",
        help="only build the git history: no migrate, save_migrations_state or demo rows",
    )
    parser.add_argument("--force", action="store_true", help="wipe DEST first if it is not empty")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every command's output")
    args = parser.parse_args(argv)
    try:
        build(args.dest, args.database_url, args.deploy, args.force, args.verbose)
    except BuildError as exc:
        print(f"build_history: {exc}", file=sys.stderr)
        return 1
    print(f"Built {args.dest}: checked out at {TAGS[-1]}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
