"""--sql only prints the SQL; --execute goes with it; --dry-run is --fake."""

from __future__ import annotations

from . import dbtools
from .projects import History, assert_refused


def test_sql_alone_only_prints_the_sql_like_sqlmigrate(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    result = project.manage("rollback_migrations", "--sql", "-t", "v1.2.0")
    assert result.returncode == 0, result.stderr
    assert "-- Unapply orders.0004_b_order_priority" in result.stdout
    assert "Rollback successfully" not in result.stdout and "Unapplying" not in result.stdout
    assert dbtools.everything(project.url) == before  # not even a dry-run log entry


def test_execute_needs_sql_and_sql_execute_prints_and_rolls_back(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    assert_refused(
        project, "rollback_migrations", "--execute", says="--execute only goes with --sql"
    )
    assert_refused(
        project, "rollback_migrations", "--fake", "--sql", "--execute", says="--execute only"
    )
    out = project.ok("rollback_migrations", "--sql", "--execute", "--no-input", "-t", "v1.2.0")
    assert "SQL of the plan:" in out and "-- Unapply orders.0004_b_order_priority" in out
    assert "Rollback successfully finished" in out
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


def test_dry_run_is_the_clear_name_of_fake(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    dry = project.ok("rollback_migrations", "--dry-run", "-t", "v1.2.0")
    fake = project.ok("rollback_migrations", "--fake", "-t", "v1.2.0")
    assert dry == fake and "Dry run finished: 3 migrations would be unapplied" in dry
    after = dbtools.everything(project.url)
    assert [log[0] for log in after.pop("logs")] == ["dry_run", "dry_run"]  # type: ignore[union-attr]
    before.pop("logs")
    assert after == before
