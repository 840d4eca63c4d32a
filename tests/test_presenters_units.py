"""The presenters and the one-line refusals as pure functions: results built in memory in,
the exact words out; no database, no git repository. (tests/test_presenters.py proves that the
commands and the admin show these words.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from django_rollback.archive import ArchiveItem
from django_rollback.archive.restoring import ItemOutcome, RestoreResult
from django_rollback.exceptions import first_line
from django_rollback.fleet import Target, TargetRun
from django_rollback.fleet.results import group_losses
from django_rollback.management.base import options_refusal
from django_rollback.models import SHORT_COMMIT_LENGTH, MigrationState, RollbackLog
from django_rollback.planning import DataLoss, RollbackPlan
from django_rollback.presenters import documents
from django_rollback.presenters.listing import state_table_lines
from django_rollback.presenters.outcomes import (
    not_latest_warning,
    restore_item_line,
    restored_sentence,
    save_outcome,
)
from django_rollback.presenters.preview import (
    Line,
    preview_lines,
    size_sentence,
    stray_records_line,
    summary,
)
from django_rollback.presenters.text import (
    apps_text,
    describe_group_loss,
    describe_size,
    describe_state,
    migrations_text,
    to_unapply,
)
from django_rollback.services import CurrentCommit, SaveResult, StateListing

from .test_planning_units import CURRENT, TARGET, make_plan

V1 = MigrationState(pk=1, commit=TARGET, tags=["v1"], migrations=[["shop", "0001_initial"]])
V2 = MigrationState(pk=2, commit=CURRENT, tags=["v2", "hotfix"], migrations=[])


# --- numbers and names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("migrations", "apps", "text"),
    [
        (0, 0, "0 migrations in 0 apps to unapply."),
        (1, 1, "1 migration in 1 app to unapply."),
        (2, 1, "2 migrations in 1 app to unapply."),
        (7, 3, "7 migrations in 3 apps to unapply."),
    ],
)
def test_the_size_sentence_says_its_plurals(migrations: int, apps: int, text: str) -> None:
    assert to_unapply(migrations, apps) == text


def test_counts_alone() -> None:
    assert [migrations_text(n) for n in (0, 1, 2)] == [
        "0 migrations",
        "1 migration",
        "2 migrations",
    ]
    assert [apps_text(n) for n in (1, 5)] == ["1 app", "5 apps"]


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 kB"), (5 * 1024**2, "5.0 MB")],
)
def test_byte_sizes_at_the_unit_boundaries(size: int, text: str) -> None:
    assert describe_size(size) == text


def test_a_state_is_named_by_its_full_commit_and_its_tags() -> None:
    assert describe_state(V2) == f"commit \"{CURRENT}\" ['v2', 'hotfix']"
    assert describe_state(MigrationState(commit=TARGET)) == f'commit "{TARGET}" (no tags)'


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("connection refused\nDETAIL: the server is down"), "connection refused"),
        (ValueError("  \n"), "ValueError"),
        (KeyError(), "KeyError"),
    ],
)
def test_first_line_of_an_error(error: BaseException, line: str) -> None:
    assert first_line(error) == line


def test_argparse_messages_become_one_sentence_of_ours() -> None:
    prog = "manage.py rollback_migrations"
    assert options_refusal("argument -c/--commit: not allowed with argument -t/--tag", prog) == (
        "Choose -t/--tag or -c/--commit, not both."
    )
    assert options_refusal("unrecognized arguments: --bogus", prog) == (
        "Unrecognized arguments: --bogus: see manage.py rollback_migrations --help."
    )
    # call_command() names no program: Django's prog is " rollback_migrations"
    assert options_refusal("expected one argument", " rollback_migrations") == (
        "Expected one argument: see rollback_migrations --help."
    )


# --- the preview ------------------------------------------------------------------------


def texts(lines: list[Line], kind: str | None = None) -> list[str]:
    return [line.text for line in lines if kind is None or line.kind == kind]


def test_the_summary_ends_with_the_size_sentence() -> None:
    plan = make_plan()
    assert size_sentence(plan) == "2 migrations in 1 app to unapply."
    assert summary(plan) == (
        f"Rollback from commit \"{CURRENT}\" ['v2'] to commit \"{TARGET}\" ['v1']: "
        "2 migrations in 1 app to unapply."
    )


def test_the_short_preview() -> None:
    plan = make_plan(kept=["shop.0002_price: price archived"], warnings=["mind the gap"])
    plan.blockers = ["Blocked here."]
    lines = preview_lines(plan, detailed=False)
    assert texts(lines) == [
        summary(plan),
        "  shop: 0003_stock → 0001_initial",
        "All or nothing: the whole plan runs in one transaction (postgresql).",
        "Kept: shop.0002_price: price archived",
        "Warning: mind the gap",
    ]
    assert texts(lines, "warning") == ["Warning: mind the gap"]  # blockers only when detailed


def test_the_detailed_preview_lists_steps_locks_blockers_and_sql() -> None:
    plan = make_plan(all_or_nothing=False, blockers=["No way."], sql=["DROP x;", "DROP y;"])
    plan.steps[0].notes = ["a note"]
    plan.steps[0].operations = []
    lines = preview_lines(plan, detailed=True)
    assert texts(lines)[2:10] == [
        "Steps, in order:",
        "  1. shop.0003_stock",
        "       (no operations)",
        "       note: a note",
        "  2. shop.0002_price",
        "       Undo: Add field price to book",
        '       locks "shop_book" ACCESS EXCLUSIVE: drop column [4 rows, 8.0 kB]',
        "Blocked: No way.",
    ]
    assert texts(lines, "error") == ["Blocked: No way."]
    assert texts(lines)[-3:] == ["SQL of the plan:", "DROP x;", "DROP y;"]
    assert texts(lines, "sql") == ["DROP x;", "DROP y;"]


def test_a_plan_without_steps() -> None:
    squash = ("shop", "0001_squashed_0002")
    empty = make_plan(steps=[], app_changes=[])
    assert "No migrations to unapply; only the saved states change." in texts(
        preview_lines(empty, detailed=True)
    )
    stray = make_plan(steps=[], app_changes=[], stray_records=frozenset({squash}))
    assert stray_records_line(stray) == (
        "No migrations to unapply; the record of shop.0001_squashed_0002 goes (the newer "
        "release's `migrate` recorded the squash because all it replaces is applied; the "
        "target did not) and the saved states change."
    )
    assert texts(preview_lines(stray, detailed=False))[1] == stray_records_line(stray)


def test_the_dry_run_document_carries_the_sql() -> None:
    plan: RollbackPlan = make_plan(sql=["DROP x;"])
    document = documents.plan_document(plan, dry_run=True, rehearsal=False, result={"ok": 1})
    assert document["command"] == "rollback" and document["dry_run"] is True
    assert document["plan"]["sql"] == ["DROP x;"] and document["result"] == {"ok": 1}
    assert (
        "sql"
        not in documents.plan_document(make_plan(), dry_run=False, rehearsal=True, result={})[
            "plan"
        ]
    )


# --- what a save, a list and a restore did ----------------------------------------------


def saved(*, created: bool = False, updated: bool = False, latest: MigrationState = V1) -> Any:
    return SaveResult(V1, created, updated, False, latest=latest, previous=None)


def test_the_save_outcomes() -> None:
    named = f"commit \"{TARGET}\" ['v1']"
    assert save_outcome(saved(created=True)) == f"State successfully created for {named}."
    assert save_outcome(saved(updated=True)) == (
        f"State updated for {named}: the applied migrations changed since it was saved."
    )
    assert save_outcome(saved()) == f"State for {named} was already saved."
    assert not_latest_warning(saved(latest=V2)) == (
        f"{named} is not the latest saved state (the latest is commit \"{CURRENT}\" ['v2', "
        "'hotfix']). Was an older release deployed without rollback_migrations? Check the "
        "applied migrations before rolling back."
    )


def test_the_list_of_states_stars_the_current_commit() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    states = [
        MigrationState(pk=2, commit=CURRENT, tags=[], saved_at=when, migrations=[["a", "1"]]),
        MigrationState(pk=1, commit=TARGET, tags=["v1"], saved_at=when, migrations=[]),
    ]
    head = CurrentCommit(CURRENT, (), "git")
    lines = state_table_lines(StateListing(states, head), "default")
    assert lines[0] == "Saved migration states in database 'default', newest first:"
    assert (
        lines[2]
        == f"  *      2  {CURRENT[:SHORT_COMMIT_LENGTH]}  2026-01-02 03:04:05     1           1  -"
    )
    assert lines[3].startswith(f"         1  {TARGET[:SHORT_COMMIT_LENGTH]}  ") and lines[
        3
    ].endswith("  v1")
    assert lines[-1] == "  * = the current commit (HEAD)"
    assert "(HEAD)" not in state_table_lines(StateListing(states, None), "default")[-1]


def outcome(column: str | None, rows: int, restored: int, **skipped: int) -> ItemOutcome:
    item = ArchiveItem("shop_book", column, "id", None, "archive_1", rows=rows)
    reasons = {why.replace("_", " "): count for why, count in skipped.items()}
    return ItemOutcome(item, restored, reasons)


def test_each_restored_item_in_one_line() -> None:
    assert restore_item_line(outcome(None, 3, 3), fake=False) == (
        '"shop_book": restored 3 of 3 rows'
    )
    line = restore_item_line(outcome("pages", 4, 2, row_deleted=1, foreign_key=1), fake=True)
    assert (
        line
        == '"shop_book"."pages": would restore 2 of 4 values; skipped 1 row deleted, 1 foreign key'
    )


def test_the_restore_total() -> None:
    result = RestoreResult(
        RollbackLog(pk=7), [outcome(None, 3, 3), outcome("pages", 4, 2, row_deleted=2)], False
    )
    assert restored_sentence(result) == "Restored 5 rows/values, skipped 2"


def _group(*counts: tuple[str, int | None], column: str | None = None, **loss: Any) -> str:
    runs = [
        TargetRun(
            Target("default", schema, "tenant"),
            "planned",
            losses=[("notes.0003_comment", DataLoss("notes_comment", column, rows, **loss))],
        )
        for schema, rows in counts
    ]
    [total] = group_losses(runs)
    return describe_group_loss(total)


def test_what_a_group_drops_summed_over_its_schemas() -> None:
    assert _group(("alpha", 3), ("beta", 9), ("gamma", 0), archived=True) == (
        'notes.0003_comment: drops table "notes_comment": 12 rows in 2 of 3 schemas '
        "(most in beta: 9): archived (restorable)"
    )
    assert _group(("alpha", 1000), ("beta", 1000), column="text", estimated=True) == (
        'notes.0003_comment: drops column "notes_comment"."text": ≈ 2,000 non-null values in '
        "2 of 2 schemas (1,000 in each): lost"
    )
    assert _group(("alpha", 1), ("beta", None), archived=True) == (
        'notes.0003_comment: drops table "notes_comment": 1 row in 1 of 2 schemas; '
        "not found in 1: archived (restorable)"
    )
