"""The two commands' output and flags, on the shop history."""

from __future__ import annotations

import json
from pathlib import Path

from . import dbtools
from .gitrepo import git
from .projects import History, Project


def test_fake_prints_the_plan_and_changes_nothing_but_the_audit_log(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    out = project.ok("rollback_migrations", "--fake", "-t", "v1.0.0")
    after = dbtools.everything(project.url)
    [dry_run] = after.pop("logs")
    before.pop("logs")
    assert after == before
    assert dry_run[:3] == ("dry_run", shop.releases["v1.3.0"].sha, shop.releases["v1.0.0"].sha)
    assert "Steps, in order:" in out
    assert "Undo: Add field note to order" in out
    assert 'drops table "shipping_shipment" (4 rows)' in out
    assert 'drops column "orders_order"."note" (4 non-null values)' in out
    assert 'drops column "catalog_product"."sku" (3 non-null values)' in out
    assert "runs the reverse code of a data migration" in out
    assert "re-adds product.price; its old values are not restored" in out
    assert "Dry run finished: 12 migrations would be unapplied; nothing was changed." in out
    # Steps come newest first: the merge before the branches it merges.
    assert out.index("orders.0005_merge") < out.index("orders.0004_b_order_priority")
    assert out.index("orders.0004_a_order_status") < out.index("orders.0003_sample_orders")


def test_fake_sql_prints_the_sql_of_every_step(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.schema(project.url)
    out = project.ok("rollback_migrations", "--fake", "--sql", "-t", "v1.2.0")
    assert "SQL of the plan:" in out
    assert "-- Unapply orders.0004_b_order_priority" in out
    assert "DROP INDEX" in out.upper() or 'DROP INDEX "shipping_carrier_idx"' in out
    assert "priority" in out and "tracking" in out
    assert dbtools.schema(project.url) == before


def test_all_or_nothing_is_stated(shop: History) -> None:
    out = shop.deploy("v1.1.0").ok("rollback_migrations", "--fake")
    if dbtools.BACKEND == "mysql":
        assert "All or nothing" not in out
        assert "cannot roll back schema changes (DDL is not transactional)" in out
        assert "If a step fails, the steps before it stay unapplied" in out
        assert "run the same rollback again" in out
        return
    assert "All or nothing: the whole plan runs in one transaction" in out


def test_list_marks_the_current_commit(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    out = project.ok("rollback_migrations", "--list", "--database", "default")
    lines = out.splitlines()
    rows = [line for line in lines if any(r.sha[:10] in line for r in shop.releases.values())]
    assert len(rows) == 4
    assert rows[0].lstrip().startswith("*") and shop.releases["v1.3.0"].sha[:10] in rows[0]
    assert "v1.0.0" in rows[-1] and not rows[-1].lstrip().startswith("*")
    assert "* = the current commit (HEAD)" in out
    project.ok("rollback_migrations", "--database", "default", "-t", "v1.2.0")
    out = project.ok("rollback_migrations", "--list")
    # Issue 10: the same sentence as --check and the admin (it names the rollback and the fix).
    assert (
        f"The current commit \"{shop.releases['v1.3.0'].sha}\" ['v1.3.0'] has no saved state" in out
    )
    assert "* =" not in out


def test_save_twice_is_fine(shop: History) -> None:
    project = shop.deploy("v1.1.0")
    before = dbtools.saved_states(project.url)
    result = project.manage("save_migrations_state")
    assert result.returncode == 0 and result.stderr == ""
    assert (
        f"State for commit \"{shop.releases['v1.1.0'].sha}\" ['v1.1.0'] was already saved."
        in result.stdout
    )
    assert dbtools.saved_states(project.url) == before


def test_save_creates_with_full_data_and_diff(shop: History) -> None:
    v100 = shop.deploy("v1.0.0")
    project = Project(shop.releases["v1.1.0"].worktree, v100.url)
    project.ok("migrate")
    out = project.ok("save_migrations_state", "--log-full-data", "--log-diff")
    assert (
        f"State successfully created for commit \"{shop.releases['v1.1.0'].sha}\" ['v1.1.0']."
        in out
    )
    assert "Data = [('auth', '0001_initial')" in out
    assert "Difference from the previous state" in out and "5 added, 0 removed" in out
    assert "  + shipping.0002_backfill" in out


def test_save_diff_when_nothing_changed(shop: History) -> None:
    project = shop.deploy("v2.0.0")  # v2.0.0 added only a squash, which `migrate` recorded
    out = project.ok("save_migrations_state", "--log-diff")
    assert "1 added, 0 removed" in out and "+ catalog.0001_squashed_0003_product_sku" in out


def test_save_of_a_commit_that_is_not_the_latest_warns(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    older = Project(shop.releases["v1.1.0"].worktree, project.url)
    before = dbtools.everything(project.url)
    result = older.manage("save_migrations_state")
    assert result.returncode == 0
    assert "is not the latest saved state" in result.stderr
    assert shop.releases["v1.3.0"].sha in result.stderr
    assert dbtools.everything(project.url) == before


def test_latest_state_follows_the_database_and_tags_follow_git(
    shop: History, tmp_path: Path
) -> None:
    project = shop.deploy("v1.1.0", own_checkout=tmp_path / "checkout")
    project.ok("migrate", "shipping", "0001")
    git(project.path, "tag", "hotfix-1")
    # Issue 10: a file on disk is unapplied now, so saving needs the deliberate flag.
    out = project.ok("save_migrations_state", "--allow-unapplied")
    assert "State updated" in out and "Tags of" in out
    commit, tags = dbtools.saved_states(project.url)[-1]
    tags = json.loads(tags) if isinstance(tags, str) else tags
    assert commit == shop.releases["v1.1.0"].sha and tags == ["hotfix-1", "v1.1.0"]
    assert ("shipping", "0002_backfill") not in dbtools.applied(project.url)


def test_logger_gets_every_line_and_errors_at_error(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0")
    log_file = tmp_path / "deploy.log"
    env = {"LOG_FILE": str(log_file)}
    assert (
        project.manage("save_migrations_state", "-l", "deploy", "--log-diff", env=env).returncode
        == 0
    )
    assert (
        project.manage("rollback_migrations", "-l", "deploy", "-t", "nope", env=env).returncode == 1
    )
    assert project.manage("rollback_migrations", "-l", "deploy", env=env).returncode == 0
    logged = log_file.read_text()
    assert "INFO deploy State for commit" in logged
    assert "INFO deploy Unapplying shipping.0002_backfill... OK" in logged
    assert "INFO deploy Rollback successfully finished" in logged
    assert 'ERROR deploy Unknown tag "nope"' in logged


def test_log_level_filters_the_logger(shop: History, tmp_path: Path) -> None:
    project = shop.deploy("v1.1.0")
    log_file = tmp_path / "deploy.log"
    env = {"LOG_FILE": str(log_file)}
    args = ("rollback_migrations", "-l", "deploy", "--log-level", "warning", "--fake")
    assert project.manage(*args, env=env).returncode == 0
    logged = log_file.read_text()
    assert "WARNING deploy Warning:" in logged and "INFO" not in logged
