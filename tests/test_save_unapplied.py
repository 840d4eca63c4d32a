"""Saving right after a rollback: refused while migrations on disk are unapplied."""

from __future__ import annotations

from . import dbtools
from .projects import History, Project, assert_refused
from .terminal import stderr_line


def test_save_refuses_unapplied_migrations_after_a_rollback_until_migrate(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    result = assert_refused(
        project, "save_migrations_state", says="Not saved: 3 migrations on disk"
    )
    line = stderr_line(result)
    assert "orders.0004_b_order_priority" in line
    assert "deploy the release it went back to" in line and "run migrate" in line
    assert "--allow-unapplied" in line
    # The fix, either way: the older release saves (already saved) ...
    older = Project(shop.releases["v1.2.0"].worktree, project.url)
    assert "was already saved" in older.ok("save_migrations_state")
    # ... or migrate forward again; the same newer commit then saves normally.
    project.ok("migrate", "--no-input")
    out = project.ok("save_migrations_state")
    assert f'State successfully created for commit "{shop.releases["v1.3.0"].sha}"' in out
    assert project.ok("rollback_migrations", "--check").startswith("OK:")


def test_allow_unapplied_saves_deliberately(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    project.ok("rollback_migrations", "-t", "v1.2.0")
    result = project.manage("save_migrations_state", "--allow-unapplied")
    assert result.returncode == 0, result.stderr
    assert "saved although 3 migrations on disk are not applied" in result.stderr
    states = dbtools.saved_states(project.url)
    assert states is not None and states[-1][0] == shop.releases["v1.3.0"].sha
