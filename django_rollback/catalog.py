"""Catalog queries whose cost does not grow with the number of schemas.

PostgreSQL keeps one catalog for the whole database: with 1,000 tenant schemas, pg_class,
pg_index and pg_attribute hold every schema's tables. Django's introspection finds "the table
named X" with `relname = X AND pg_table_is_visible(oid)`: the name matches a table in every
tenant schema, the planner expects dozens of rows, and joins them to a scan of the whole of
pg_attribute (get_constraints: 34 ms a call at 200 schemas, 0.4 ms with the filter below), or
checks every relation of the database for visibility (get_table_list).

For the fleet's connections, every introspection query that ANDs `pg_table_is_visible(X.oid)`
also gets `X.relnamespace = ANY (current_schemas(true))`: a visible relation is always in one
of those schemas, so the result is the same, and the planner knows it is looking at one schema.
A query that Django words differently is left as it is (correct, only slower).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

_VISIBLE = re.compile(r"(\bAND\s+)pg_catalog\.pg_table_is_visible\((\w+)\.oid\)")
_IN_PATH = r"\1\2.relnamespace = ANY (current_schemas(true)::regnamespace[]::oid[]) AND "
_IN_PATH += r"pg_catalog.pg_table_is_visible(\2.oid)"
_METHODS = (
    "get_table_list",
    "get_table_description",
    "get_sequences",
    "get_relations",
    "get_constraints",
)


def in_search_path(sql: str) -> str:
    """The query, each visibility test narrowed to the schemas of the search path."""
    return _VISIBLE.sub(_IN_PATH, sql)


def in_schema(sql: str, schema: str) -> str:
    """The query, each visibility test narrowed to one schema (a query with parameters)."""
    literal = "'" + schema.replace("'", "''").replace("%", "%%") + "'"
    namespace = f"(SELECT oid FROM pg_namespace WHERE nspname = {literal})"
    return _VISIBLE.sub(
        rf"\1\2.relnamespace = {namespace} AND pg_catalog.pg_table_is_visible(\2.oid)", sql
    )


class _NarrowingCursor:
    """A cursor that narrows the visibility tests of the queries it runs: to the search
    path, or to one schema."""

    def __init__(self, cursor: Any, schema: str | None = None) -> None:
        self._cursor = cursor
        self._schema = schema

    def execute(self, sql: str, params: Any = None) -> Any:
        if self._schema is not None and params:
            return self._cursor.execute(in_schema(sql, self._schema), params)
        return self._cursor.execute(in_search_path(sql), params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Any:
        return iter(self._cursor)


def _narrowing(cls: type, method: str) -> Any:
    def call(self: Any, cursor: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(super(cls, self), method)(_NarrowingCursor(cursor), *args, **kwargs)

    call.__name__ = method
    return call


def _postgresql_introspection() -> Any:
    """Django's PostgreSQL introspection, imported once a PostgreSQL connection exists: at
    import time it would need psycopg on SQLite-only sites, and on Django 6.1 importing it
    before the backend's base module is a circular import."""
    from django.db.backends.postgresql.introspection import DatabaseIntrospection

    return DatabaseIntrospection


def _constraints_in_schema(owner: type) -> Any:
    """get_constraints() of a django-tenants connection. django-tenants wraps Django's in
    SHOW search_path, SET search_path = <schema> and a SET back, so that Django's visibility
    test sees that schema only: three more round trips a call. Narrowing the test to that
    schema finds the same table, constraints and indexes without them (only pg_get_indexdef()
    of an expression index may name a function of the public schema without "public.")."""

    def get_constraints(self: Any, cursor: Any, table_name: str) -> Any:
        schema = getattr(self.connection, "schema_name", None)
        if not schema:
            inherited = getattr(super(owner, self), "get_constraints")  # noqa: B009
            return inherited(_NarrowingCursor(cursor), table_name)
        narrowed: Any = _NarrowingCursor(cursor, schema)
        return _postgresql_introspection().get_constraints(self, narrowed, table_name)

    return get_constraints


@cache
def _narrowed_class(base: type) -> type:
    cls = type(f"SchemaNarrowed{base.__name__}", (base,), {})
    for name in _METHODS:
        if hasattr(base, name):
            setattr(cls, name, _narrowing(cls, name))
    tenants = any(k.__module__.startswith("django_tenants.") for k in base.__mro__)
    if tenants and issubclass(base, _postgresql_introspection()):
        cls.get_constraints = _constraints_in_schema(cls)  # type: ignore[attr-defined]
    return cls


def narrow_introspection(connection: BaseDatabaseWrapper) -> None:
    """Give a PostgreSQL connection the narrowed introspection (once; it stays: its answers
    are the same as Django's for any search_path)."""
    if connection.vendor != "postgresql":
        return
    current: type = type(connection.introspection)
    if current.__name__.startswith("SchemaNarrowed"):
        return
    connection.introspection = _narrowed_class(current)(connection)


def existing_tables(connection: BaseDatabaseWrapper, names: Iterable[str]) -> set[str]:
    """Which of `names` are tables (or views) of the connection, as
    `connection.introspection.table_names()` would say, without listing every table.

    With django-tenants, its introspection lists the tables of the current schema only: here
    that is one lookup by name and schema in pg_class's index, where listing the tables reads
    the whole catalog (every schema's relations)."""
    wanted = list(names)
    schema = getattr(connection, "schema_name", None)
    if connection.vendor == "postgresql" and schema and hasattr(connection, "set_schema"):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relname = ANY (%s) AND "
                "c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
                "AND c.relkind IN ('f', 'm', 'p', 'r', 'v')",
                [wanted, schema],
            )
            return {name for (name,) in cursor.fetchall()}
    return set(wanted) & set(connection.introspection.table_names())
