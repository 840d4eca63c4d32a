"""A real release history for the admin tests, built in the test database itself.

The two apps of this package are migrated release by release (as a deploy would), each
release is a commit of a scratch git repository, and save_state() records it. The schema,
applied migrations and row counts of every release are kept, read through the raw drivers,
so a rollback from the admin can be compared with what the target release produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from django.core.management import call_command
from django.db import connection, connections

from django_rollback import services
from django_rollback.models import MigrationState

from .. import dbtools
from ..gitrepo import commit_release, init_repo, write_release

# tag -> the migration each app is at (None: not installed yet)
RELEASES: list[tuple[str, dict[str, str | None]]] = [
    ("v1.0.0", {"inventory": "0002_item", "ledger": None}),
    ("v1.1.0", {"inventory": "0003_item_sku", "ledger": "0001_initial"}),
    ("v1.2.0", {"inventory": "0003_item_sku", "ledger": "0002_backfill"}),
    ("v2.0.0", {"inventory": "0005_warehouse_city", "ledger": "0003_entry_note"}),
]
ANNOTATED = {"v1.1.0"}


@dataclass
class Snapshot:
    sha: str
    schema: list[str]
    applied: set[tuple[str, str]]
    rows: dict[str, int]


@dataclass
class PanelHistory:
    repo: Path
    url: str  # the test database, for the raw-driver views of dbtools
    releases: dict[str, Snapshot] = field(default_factory=dict)

    def state(self, tag: str) -> MigrationState:
        return MigrationState.objects.get(commit=self.releases[tag].sha)

    def everything(self) -> dict[str, object]:
        return dbtools.everything(self.url)


def database_url_of(alias: str = "default") -> str:
    connection = connections[alias]
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    return urlparse(dbtools.DATABASE_URL)._replace(path=f"/{name}").geturl()


def _migrate(*args: str, fake: bool = False) -> None:
    call_command("migrate", *args, fake=fake, verbosity=0)


def rewind() -> None:
    """Both apps back to zero. ledger.0002 has no reverse code, but it only adds a row,
    so marking it unapplied leaves the schema exactly as a real reverse would."""
    _migrate("inventory", "0003_item_sku")
    _migrate("ledger", "0002_backfill")
    _migrate("ledger", "0001_initial", fake=True)
    _migrate("ledger", "zero")
    _migrate("inventory", "zero")


def _sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def _add_data(tag: str) -> None:
    if tag == "v1.0.0":
        for name in ("North", "South"):
            _sql("INSERT INTO inventory_warehouse (name) VALUES (%s)", [name])
        for name in ("bolt", "nut", "gear"):
            _sql(
                "INSERT INTO inventory_item (name, warehouse_id) "
                "SELECT %s, MIN(id) FROM inventory_warehouse",
                [name],
            )
    elif tag == "v1.1.0":
        for amount in (10, 20):
            _sql("INSERT INTO ledger_entry (amount) VALUES (%s)", [amount])
    elif tag == "v2.0.0":
        _sql("INSERT INTO inventory_stock (item_id, quantity) SELECT id, 5 FROM inventory_item")
        _sql("UPDATE inventory_warehouse SET city = 'Oslo' WHERE name = 'North'")
        _sql("UPDATE ledger_entry SET note = 'opening' WHERE amount = 0")


def build(root: Path) -> PanelHistory:
    rewind()
    repo = init_repo(root)
    history = PanelHistory(repo, database_url_of())
    for tag, targets in RELEASES:
        write_release(repo, {"RELEASE": tag})
        sha = commit_release(repo, tag, annotated=tag in ANNOTATED)
        for app, target in targets.items():
            if target is not None:
                _migrate(app, target)
        _add_data(tag)
        # One code base plays every release: the files of the later ones are already on disk.
        services.save_state(repo_path=repo, allow_unapplied=True)
        history.releases[tag] = Snapshot(
            sha=sha,
            schema=dbtools.schema(history.url),
            applied=dbtools.applied(history.url),
            rows=dbtools.row_counts(history.url),
        )
    return history


def restore() -> None:
    """Every migration applied again, as the rest of the test session expects."""
    _migrate()
