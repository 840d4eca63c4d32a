"""The pure parts of planning, in process and without a database or a git repository: the
set arithmetic on a graph built in memory, steps described from migrations built in memory,
and the plan as data (what it drops, locks, refuses and hashes)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import models
from django.db.migrations import operations as ops
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.migration import Migration

from django_rollback.exceptions import PlanRefusedError
from django_rollback.models import MigrationKey, MigrationState
from django_rollback.overrides import ReverseOverride
from django_rollback.planning import AppChange, DataLoss, PlanStep, RollbackPlan, label, labels
from django_rollback.planning.graph import app_changes_of, check_sets, compute_sets, leaf_names
from django_rollback.planning.steps import describe_step
from django_rollback.radius import TableLock, TableSize
from django_rollback.snapshot import with_squashes

CURRENT, TARGET = "c" * 40, "a" * 40
OWN = ("django_rollback", "0001_initial")


def state(pk: int, commit: str, keys: set[MigrationKey], tags: list[str]) -> MigrationState:
    """A saved state as the planner reads it; never written anywhere."""
    return MigrationState(pk=pk, commit=commit, tags=tags, migrations=sorted(map(list, keys)))


def graph_of(edges: dict[MigrationKey, list[MigrationKey]]) -> MigrationGraph:
    """Each key with its parents (the migrations it depends on)."""
    graph = MigrationGraph()
    for key in edges:
        graph.add_node(key, Migration(key[1], key[0]))
    for child, parents in edges.items():
        for parent in parents:
            graph.add_dependency(graph.nodes[child], child, parent)
    return graph


def loader_of(graph: MigrationGraph, applied: set[MigrationKey]) -> Any:
    """What compute_sets and check_sets read of Django's MigrationLoader."""
    return SimpleNamespace(
        graph=graph,
        applied_migrations=dict.fromkeys(applied),
        disk_migrations=dict(graph.nodes),
    )


S1, S2, S3 = ("shop", "0001_initial"), ("shop", "0002_price"), ("shop", "0003_stock")
B1 = ("blog", "0001_initial")
SHOP = graph_of({S1: [], S2: [S1], S3: [S2], B1: [], OWN: []})
APPLIED = {S1, S2, S3, B1, OWN}


# --- labels and the set arithmetic ------------------------------------------------------


def test_labels_are_app_dot_name_sorted() -> None:
    assert label(S2) == "shop.0002_price"
    assert labels({S3, B1, S1}) == "blog.0001_initial, shop.0001_initial, shop.0003_stock"
    assert labels([]) == ""


def test_a_squash_counts_as_applied_only_with_all_it_replaces() -> None:
    squash = ("shop", "0001_squashed_0002")
    squashes = {squash: frozenset({S1, S2})}
    assert with_squashes(frozenset({S1, S2}), squashes) == {S1, S2, squash}
    assert with_squashes(frozenset({S1}), squashes) == {S1}


def test_sets_unapply_what_the_target_lacks_but_never_django_rollback_itself() -> None:
    target = state(1, TARGET, {S1, B1}, ["v1"])  # saved before django_rollback was installed
    sets = compute_sets(loader_of(SHOP, APPLIED), frozenset(APPLIED), target, {})
    assert sets.to_unapply == {S2, S3}
    assert sets.expected_after == {S1, B1, OWN}
    assert sets.extra_unrecords == {} and sets.stray_squashes == frozenset()
    assert check_sets(loader_of(SHOP, APPLIED), sets, {}) == []


def test_sets_refuse_a_missing_file_and_a_target_that_is_ahead() -> None:
    gone = ("shop", "0004_gone")  # recorded, its file deleted
    recorded = frozenset(APPLIED | {gone})
    target = state(1, TARGET, {S1, B1, ("blog", "0002_later")}, [])
    sets = compute_sets(loader_of(SHOP, APPLIED), recorded, target, {})
    assert check_sets(loader_of(SHOP, APPLIED), sets, {}) == [
        "Migration file missing: shop.0004_gone is applied, not in the target, and not on "
        "disk, so it cannot be unapplied.",
        "Not a rollback: the target has blog.0002_later applied, which is not applied now (a "
        "rollback only unapplies).",
    ]


def test_app_changes_name_the_leaves_of_a_merge() -> None:
    a, b = ("shop", "0002_a"), ("shop", "0002_b")
    graph = graph_of({S1: [], a: [S1], b: [S1]})
    assert leaf_names(graph, {S1, a, b}, "shop") == ("0002_a", "0002_b")
    [change] = app_changes_of(graph, {S1, a, b}, {S1}, {a, b})
    assert change == AppChange("shop", ("0002_a", "0002_b"), ("0001_initial",), 2)
    assert change.describe() == "shop: 0002_a + 0002_b → 0001_initial"
    assert AppChange("blog", ("0001_initial",), (), 1).describe() == "blog: 0001_initial → zero"


# --- steps described from their migration files -----------------------------------------


def migration(name: str, *operations: Any, atomic: bool = True) -> Migration:
    """A migration file's class, as Django's loader would instantiate it."""
    cls: type[Migration] = type(
        "Migration", (Migration,), {"operations": list(operations), "atomic": atomic}
    )
    return cls(name, "shop")


def test_a_step_undoes_its_operations_in_reverse_and_says_what_is_not_restored() -> None:
    step = describe_step(
        migration(
            "0003_stock",
            ops.AddField("book", "pages", models.IntegerField(null=True)),
            ops.RemoveField("book", "isbn"),
            atomic=False,
        )
    )
    assert step.label == "shop.0003_stock" and not step.atomic
    assert step.operations == ["Undo: Remove field isbn from book", "Undo: Add field pages to book"]
    assert step.notes == [
        "re-adds book.isbn; its old values are not restored",
        "not atomic: runs outside a transaction",
    ]
    assert step.irreversible == [] and step.irreversible_blocker is None


def test_irreversible_code_blocks_unless_an_override_replaces_it() -> None:
    def forwards(apps: Any, schema_editor: Any) -> None: ...

    irreversible = migration("0004_fill", ops.RunPython(forwards))
    step = describe_step(irreversible)
    assert step.irreversible == ["RunPython without reverse_code"]
    assert step.irreversible_blocker == (
        "Irreversible: shop.0004_fill (RunPython without reverse_code)."
    )
    override = ReverseOverride("shop.0004_fill", "noop")
    allowed = describe_step(irreversible, {"shop.0004_fill": override})
    assert allowed.irreversible == [] and allowed.override == override
    assert "reverse from settings: no-op" in allowed.notes
    noop = describe_step(migration("0005", ops.RunPython(forwards, ops.RunPython.noop)))
    assert noop.notes == ["runs a data migration whose reverse code does nothing"]
    assert not noop.runs_reverse_code
    sql = describe_step(migration("0006", ops.RunSQL("UPDATE x SET y = 1", "UPDATE x SET y = 0")))
    assert sql.runs_reverse_code


# --- the plan as data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "text"),
    [
        (DataLoss("t", None, 1), 'drops table "t" (1 row): lost'),
        (DataLoss("t", None, 3, estimated=True), 'drops table "t" (≈ 3 rows): lost'),
        (DataLoss("t"), 'drops table "t" (unknown number of rows): lost'),
        (
            DataLoss("t", "c", 2, archived=True),
            'drops column "t"."c" (2 non-null values): archived (2 non-null values, restorable)',
        ),
        (DataLoss("t", "c"), 'drops column "t"."c" (unknown number of non-null values): lost'),
    ],
)
def test_data_loss_sentences(loss: DataLoss, text: str) -> None:
    assert loss.describe() == text


def test_locks_and_sizes_as_the_preview_words_them() -> None:
    lock = TableLock("shop_book", "ACCESS EXCLUSIVE", ("drop column",), rewrites=True)
    assert lock.describe() == '"shop_book" ACCESS EXCLUSIVE: drop column, rewrites it'
    assert TableSize(1234, 2048).describe() == "1,234 rows, 2.0 kB"
    assert TableSize(5000, None, estimated=True).describe() == "≈ 5,000 rows"
    assert TableSize(None, None).describe() == "not in the database"


def make_plan(**changes: Any) -> RollbackPlan:
    """v2 → v1 of the shop: two steps, the second dropping a column and locking its table."""
    lock = TableLock("shop_book", "ACCESS EXCLUSIVE", ("drop column",))
    steps = [
        PlanStep("shop", "0003_stock", ["Undo: Add field stock to book"]),
        PlanStep(
            "shop",
            "0002_price",
            ["Undo: Add field price to book"],
            data_loss=[DataLoss("shop_book", "price", 4, archived=True)],
            locks=[lock],
        ),
    ]
    plan = RollbackPlan(
        database="default",
        vendor="postgresql",
        current=state(2, CURRENT, {S1, S2, S3}, ["v2"]),
        target=state(1, TARGET, {S1}, ["v1"]),
        steps=steps,
        app_changes=[AppChange("shop", ("0003_stock",), ("0001_initial",), 2)],
        blockers=[],
        warnings=[],
        all_or_nothing=True,
        applied_before=frozenset({S1, S2, S3}),
        expected_after=frozenset({S1}),
        tables={"shop_book": TableSize(4, 8192)},
    )
    for name, value in changes.items():
        setattr(plan, name, value)
    return plan


def test_a_plan_pairs_its_losses_and_locks_with_their_steps() -> None:
    plan = make_plan()
    assert not plan.is_noop and plan.can_run
    [(step, loss)] = plan.data_loss
    assert step.label == "shop.0002_price" and loss.column == "price"
    [(step, lock, size)] = plan.blast_radius
    assert (step.name, lock.table, size) == ("0002_price", "shop_book", TableSize(4, 8192))
    assert make_plan(target=make_plan().current).is_noop


def test_a_blocked_plan_is_refused_in_one_sentence() -> None:
    plan = make_plan(blockers=["Irreversible: shop.0003_stock (x).", "Second reason."])
    assert not plan.can_run
    assert (
        plan.refusal == "Refusing to roll back: Irreversible: shop.0003_stock (x). Second reason."
    )
    with pytest.raises(PlanRefusedError, match="^Refusing to roll back: Irreversible"):
        plan.refuse_if_blocked()
    make_plan().refuse_if_blocked()  # no blockers: nothing raised


def test_the_fingerprint_follows_what_was_previewed() -> None:
    plan = make_plan()
    assert plan.fingerprint == make_plan().fingerprint and len(plan.fingerprint) == 16
    assert make_plan(steps=plan.steps[:1]).fingerprint != plan.fingerprint
    assert make_plan(applied_before=frozenset({S1})).fingerprint != plan.fingerprint
    assert make_plan(warnings=["other words"]).fingerprint == plan.fingerprint


def test_the_plan_document() -> None:
    squash = ("shop", "0001_squashed_0002")
    document = make_plan(
        squashes={squash: frozenset({S1, S2})}, stray_records=frozenset({squash})
    ).as_dict()
    assert document["from"] == {"commit": CURRENT, "tags": ["v2"]}
    assert document["apps"] == [
        {"app": "shop", "current": ["0003_stock"], "target": ["0001_initial"]}
    ]
    assert [step["migration"] for step in document["steps"]] == [
        "shop.0003_stock",
        "shop.0002_price",
    ]
    assert document["steps"][1]["data_loss"][0] == {
        "table": "shop_book",
        "column": "price",
        "rows": 4,
        "estimated": False,
        "archived": True,
        "join_table": False,
    }
    assert document["tables"] == {"shop_book": {"rows": 4, "bytes": 8192, "estimated": False}}
    assert document["squashes"] == {
        "shop.0001_squashed_0002": [["shop", "0001_initial"], ["shop", "0002_price"]]
    }
    assert document["stray_records"] == ["shop.0001_squashed_0002"]
