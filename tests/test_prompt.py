"""The confirmation prompt on a terminal, and --no-input."""

from __future__ import annotations

import pytest

from . import dbtools
from .projects import History
from .terminal import Terminal


def test_a_rollback_on_a_terminal_asks_and_no_cancels(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    before = dbtools.everything(project.url)
    terminal = Terminal(project, "rollback_migrations", "-t", "v1.0.0")
    shown = terminal.read_until("Type 'yes' to roll back")
    assert "Rollback from commit" in shown and "12 migrations in " in shown
    assert 'drops table "shipping_shipment" (4 rows)' in shown
    terminal.type("no")
    assert terminal.finish() == 1
    assert "Rollback cancelled: nothing was changed." in terminal.output
    assert dbtools.everything(project.url) == before


def test_a_rollback_on_a_terminal_runs_after_yes(shop: History) -> None:
    project = shop.deploy("v1.3.0")
    terminal = Terminal(project, "rollback_migrations", "-t", "v1.2.0")
    terminal.read_until("Type 'yes' to roll back")
    terminal.type("yes")
    assert terminal.finish() == 0, terminal.output
    assert "Rollback successfully finished" in terminal.output
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


@pytest.mark.parametrize("flag", ["--no-input", "--noinput"])
def test_no_input_on_a_terminal_does_not_ask(shop: History, flag: str) -> None:
    project = shop.deploy("v1.3.0")
    terminal = Terminal(project, "rollback_migrations", flag, "-t", "v1.2.0")
    assert terminal.finish() == 0, terminal.output
    assert "Type 'yes'" not in terminal.output
    assert dbtools.schema(project.url) == shop.releases["v1.2.0"].schema


def test_without_a_terminal_it_does_not_ask(shop: History) -> None:
    project = shop.deploy("v1.3.0")  # Project.manage: stdin is /dev/null, as in an entrypoint
    out = project.ok("rollback_migrations", "-t", "v1.2.0")
    assert "Type 'yes'" not in out and "Rollback successfully finished" in out
