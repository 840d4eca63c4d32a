"""-v 0 and -v 2, and --version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import dbtools
from .projects import History


def test_verbosity_zero_prints_the_last_line_and_two_the_applied_set(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    out = project.ok("save_migrations_state", "-v", "0")
    assert out.strip().splitlines() == [
        f"State for commit \"{shop.releases['v1.3.0'].sha}\" ['v1.3.0'] was already saved."
    ]
    out = project.ok("save_migrations_state", "-v", "2")
    count = len(dbtools.applied(project.url))
    assert f"Applied ({count} migrations):" in out and "\n  orders: 0001_initial, " in out
    out = project.ok("rollback_migrations", "-v", "0", "-t", "v1.2.0")
    [line] = out.strip().splitlines()
    assert line.startswith("Rollback successfully finished")


def test_version_names_this_package() -> None:
    from django_rollback import __version__

    result = subprocess.run(
        [sys.executable, "-m", "django", "rollback_migrations", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == f"django-rollback {__version__}", result.stderr
