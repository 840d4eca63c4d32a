"""What a shared plan drops, counted in each schema it is shared with.

Targets at the same place share one plan (plans.py), measured in the group's first schema:
its row counts are that schema's. Every other schema of the group holds rows of its own in the
same tables, so they are counted here for all of them at once: one catalog query for the
sizes, then the rows of the tables up to ESTIMATE_ROWS_ABOVE counted exactly, many tables in
one UNION ALL query; above it, the single-database Sizer estimates them in their schema. For
1,000 schemas of small tables that is a dozen queries, not a few for each schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import get_setting
from ..planning import DataLoss
from ..radius import Sizer
from .results import TargetRun
from .targets import on_schema

CHUNK = 200  # counts per UNION ALL query
TUPLES_PER_PAGE = 291  # PostgreSQL's most heap tuples in an 8 kB page: a size's upper bound

Table = tuple[str, str]  # (schema, table)
Item = tuple[str, str, str | None]  # (schema, table, column or None for the whole table)
Counted = tuple[int | None, bool]  # (rows or non-null values, whether estimated)


def count_shared(database: str, runs: list[TargetRun], *, exact: bool = False) -> None:
    """Give each planned run that shares another schema's plan its own counts of what the
    plan drops (TargetRun.losses); the runs planned for themselves already have theirs.
    With `exact`, every table is counted, however big."""
    sharing = [
        run
        for run in runs
        if run.status == "planned"
        and run.plan is not None
        and run.plan_of not in (None, run.target.name)
        and run.plan.data_loss
    ]
    connection = connections[database]
    if not sharing or connection.vendor != "postgresql":
        return
    threshold = 2**63 if exact else int(get_setting("ESTIMATE_ROWS_ABOVE"))
    items = sorted(
        {
            (run.target.schema, loss.table, loss.column)
            for run in sharing
            for _step, loss in run.plan.data_loss  # type: ignore[union-attr]
        },
        key=str,
    )
    sizes = _estimates(connection, {(schema, table) for schema, table, _column in items})
    small = [item for item in items if sizes.get(item[:2], threshold + 1) <= threshold]
    counted: dict[Item, Counted] = {
        item: (count, False) for item, count in _exact(connection, small).items()
    }
    for run in sharing:  # the big tables (rare): the Sizer, schema by schema
        big = [
            (run.target.schema, loss.table, loss.column)
            for _step, loss in run.plan.data_loss  # type: ignore[union-attr]
            if sizes.get((run.target.schema, loss.table), 0) > threshold
        ]
        if big:
            counted.update(_estimated_in(run, big, threshold))
    for run in sharing:
        assert run.plan is not None
        run.losses = [
            (step.label, _own(loss, counted.get((run.target.schema, loss.table, loss.column))))
            for step, loss in run.plan.data_loss
        ]


def _own(loss: DataLoss, counted: Counted | None) -> DataLoss:
    """The shared plan's loss with this schema's count (None: not in this schema)."""
    rows, estimated = counted or (None, False)
    return dataclasses.replace(loss, rows=rows, estimated=estimated)


def _estimates(connection: BaseDatabaseWrapper, tables: set[Table]) -> dict[Table, int]:
    """{(schema, table): estimated rows} for the tables that exist. The estimate scales the
    last ANALYZE to the table's pages now (as the planner does); a table never analyzed
    gets an upper bound from its pages, so a small one is still counted exactly."""
    schemas = sorted({schema for schema, _table in tables})
    names = sorted({table for _schema, table in tables})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, c.relname, c.reltuples, c.relpages, "
            "pg_relation_size(c.oid) / current_setting('block_size')::int "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (%s) AND c.relname = ANY (%s)",
            [schemas, names],
        )
        found = cursor.fetchall()
    estimates: dict[Table, int] = {}
    for schema, table, reltuples, relpages, pages in found:
        if (schema, table) not in tables:
            continue
        if reltuples >= 0 and relpages > 0:
            estimates[(schema, table)] = round(reltuples / relpages * pages)
        else:  # never analyzed (or analyzed empty): at most this many rows
            estimates[(schema, table)] = pages * TUPLES_PER_PAGE
    return estimates


def _exact(connection: BaseDatabaseWrapper, items: list[Item]) -> dict[Item, int | None]:
    """Rows (or non-null values of the column) of each item, many in one query; an item
    whose query fails (its table dropped meanwhile) is None."""
    counts: dict[Item, int | None] = {}
    for chunk in _chunks(items):
        try:
            counts.update(zip(chunk, _count_query(connection, chunk), strict=True))
        except DatabaseError:  # find the one that failed: count them one by one
            for item in chunk:
                try:
                    counts[item] = _count_query(connection, [item])[0]
                except DatabaseError:
                    counts[item] = None
    return counts


def _count_query(connection: BaseDatabaseWrapper, items: list[Item]) -> list[int]:
    quote = connection.ops.quote_name
    parts = [
        f"SELECT {index}, COUNT({'*' if column is None else quote(column)}) "
        f"FROM {quote(schema)}.{quote(table)}"
        for index, (schema, table, column) in enumerate(items)
    ]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts))
        by_index = dict(cursor.fetchall())
    return [int(by_index[index]) for index in range(len(items))]


def _estimated_in(run: TargetRun, items: list[Item], threshold: int) -> dict[Item, Counted]:
    """The big tables of one schema, measured by the single-database Sizer with the
    connection on that schema (planner estimates, column statistics or a sample)."""
    measured: dict[Item, Counted] = {}
    with on_schema(run.target) as connection:
        sizer = Sizer(connection, exact=False, threshold=threshold)
        for item in items:
            _schema, table, column = item
            if column is None:
                size = sizer.table(table)
                measured[item] = (size.rows, size.estimated)
            else:
                measured[item] = sizer.column(table, column)
    return measured


def _chunks(items: list[Item]) -> Iterator[list[Item]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
