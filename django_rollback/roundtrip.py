"""The round trip for CI: forward to REF, forward to HEAD, back to REF with the real rollback,
forward again; the schema compared with REF's and with HEAD's after each way back.

It runs on a scratch database that it creates and drops itself, the way Django's test runner
does (connection.creation), so the project's database is never touched. The schemas come from
Django's introspection, the same on every backend: tables, columns (type, nullability,
default), indexes and constraints.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from . import services
from .conf import short_commit
from .exceptions import RollbackError, UnknownReferenceError, first_line
from .git import GitRepository
from .models import MigrationKey
from .planning import RollbackPlan

Schema = dict[str, dict[str, Any]]  # table -> {"columns": {...}, "constraints": Counter}


@dataclass
class RoundTripResult:
    ref: str
    ref_sha: str
    head_sha: str
    scratch: str  # the scratch database's name (dropped when the round trip ends)
    at_ref: int  # migrations applied at REF
    at_head: int
    unapplied: int  # steps of the rollback back to REF
    after_rollback: list[str] = field(default_factory=list)  # differences from REF's schema
    after_forward: list[str] = field(default_factory=list)  # differences from HEAD's

    @property
    def ok(self) -> bool:
        return not self.after_rollback and not self.after_forward


def round_trip(
    ref: str,
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    progress: Callable[[str], None] | None = None,
) -> RoundTripResult:
    say = progress or (lambda line: None)
    repo = services.open_repository(repo_path)
    ref_sha = repo.resolve_ref(ref)
    if ref_sha is None:
        raise UnknownReferenceError(f'Unknown git reference "{ref}" (a tag, branch or commit).')
    head = repo.head()
    if ref_sha == head.sha:
        raise RollbackError(f'"{ref}" is HEAD itself: there is nothing to go back to.')
    connection = connections[database]
    at_ref = _migrations_at(repo, ref_sha, MigrationLoader(None, ignore_no_migrations=True))
    with scratch_database(connection) as scratch:
        say(f"Scratch database {scratch} created.")
        applied = _migrate_to(connection, at_ref)
        ref_schema = schema_of(connection)
        # HEAD's migration files are on disk and not applied at REF: saving REF's state is
        # deliberate here.
        services.save_state(
            repo_path=repo_path,
            database=database,
            commit=ref_sha,
            tags=repo.tags_at(ref_sha),
            allow_unapplied=True,
        )
        say(f"Migrated to {ref} ({short_commit(ref_sha)}): {applied} migrations applied.")
        applied = _migrate_to(connection, None)
        head_schema = schema_of(connection)
        services.save_state(repo_path=repo_path, database=database, commit=head.sha)
        say(f"Migrated to HEAD ({short_commit(head.sha)}): {applied} migrations applied.")
        plan = services.plan_rollback(
            commit=ref_sha,
            deployed_commit=head.sha,
            repo_path=repo_path,
            database=database,
            count_rows=False,
            archive=False,  # a scratch database: nothing to keep, and no tables beside REF's
        )
        after_rollback, after_forward = _back_and_forth(
            connection, plan, ref, ref_schema, head_schema, say
        )
        at_head = len(plan.applied_before)
    return RoundTripResult(
        ref,
        ref_sha,
        head.sha,
        scratch,
        len(at_ref),
        at_head,
        len(plan.steps),
        after_rollback,
        after_forward,
    )


def _back_and_forth(
    connection: BaseDatabaseWrapper,
    plan: RollbackPlan,
    ref: str,
    ref_schema: Schema,
    head_schema: Schema,
    say: Callable[[str], None],
) -> tuple[list[str], list[str]]:
    """Roll back to REF, migrate forward again; the differences from each schema."""
    try:
        services.execute(plan)
    except RollbackError as exc:
        raise RollbackError(
            f"Round trip: rolling back to {ref} on the scratch database: {exc}"
        ) from None
    after_rollback = compare(ref_schema, schema_of(connection))
    say(
        f"Rolled back to {ref}: {len(plan.steps)} migrations unapplied; schema "
        + ("the same as at REF." if not after_rollback else "differs from REF's:")
    )
    for line in after_rollback:
        say(f"  {line}")
    try:
        _migrate_to(connection, None)
    except DatabaseError as exc:  # what the rollback left in the way of HEAD's migrations
        reason = first_line(exc)
        after_forward = [f"migrating forward again failed: {reason}"]
    else:
        after_forward = compare(head_schema, schema_of(connection))
    say(
        "Migrated forward again; schema "
        + ("the same as at HEAD." if not after_forward else "differs from HEAD's:")
    )
    for line in after_forward:
        say(f"  {line}")
    return after_rollback, after_forward


def _migrations_at(
    repo: GitRepository, sha: str, loader: MigrationLoader
) -> frozenset[MigrationKey]:
    """The migrations on disk that commit `sha` has: their files exist there. Migrations of
    installed packages outside the repository (Django's, third-party apps) count as there."""
    files = repo.files_at(sha)
    root = os.path.realpath(repo.root)
    found: set[MigrationKey] = set()
    for key, migration in loader.disk_migrations.items():
        module = sys.modules.get(type(migration).__module__)
        path = getattr(module, "__file__", None)
        relative = os.path.relpath(os.path.realpath(path), root) if path else ".."
        if relative.startswith("..") or relative.replace(os.sep, "/") in files:
            found.add(key)
    return frozenset(found)


def _migrate_to(connection: BaseDatabaseWrapper, wanted: frozenset[MigrationKey] | None) -> int:
    """Migrate forward to exactly `wanted` (None: every leaf); the number applied after."""
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    if wanted is None:
        targets = graph.leaf_nodes()
    else:
        # A squash stands for what it replaces: in when all of that is.
        nodes = {
            key
            for key in graph.nodes
            if key in wanted
            or (
                (squash := executor.loader.replacements.get(key)) is not None
                and set(squash.replaces) <= wanted
            )
        }
        targets = sorted(
            key
            for key in nodes
            if not any(child.key in nodes for child in graph.node_map[key].children)
        )
    executor.migrate(targets, plan=executor.migration_plan(targets))
    return len(executor.recorder.applied_migrations())


@contextmanager
def scratch_database(connection: BaseDatabaseWrapper) -> Iterator[str]:
    """An empty database of the same backend, created and dropped around the block as
    Django's test runner does; the connection points at it meanwhile."""
    settings_dict = connection.settings_dict
    old_name, old_test = settings_dict["NAME"], settings_dict.get("TEST")
    if connection.vendor == "sqlite":
        scratch = os.path.join(tempfile.gettempdir(), f"roundtrip-{os.getpid()}.sqlite3")
    else:
        scratch = f"roundtrip_{old_name}"[: connection.ops.max_name_length() or 63]
    settings_dict["TEST"] = {**(old_test or {}), "NAME": scratch}
    connection.close()
    # The step of create_test_db() before it migrates: we migrate ourselves, to REF first.
    creation: Any = connection.creation
    name = creation._create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    settings_dict["NAME"] = name
    settings.DATABASES[connection.alias]["NAME"] = name
    try:
        yield name
    finally:
        connection.close()
        settings_dict["NAME"] = old_name
        settings.DATABASES[connection.alias]["NAME"] = old_name
        creation._destroy_test_db(name, verbosity=0)
        settings_dict["TEST"] = old_test if old_test is not None else {}


# --- schema --------------------------------------------------------------------------------

# SQLite's introspection numbers unnamed constraints and foreign keys in table order, which a
# rebuilt table may change: those names say nothing.
_UNSTABLE_NAME = re.compile(r"^(__unnamed_constraint_\d+__|__primary__|fk_\d+)$")


def schema_of(connection: BaseDatabaseWrapper) -> Schema:
    introspection = connection.introspection
    schema: Schema = {}
    with connection.cursor() as cursor:
        tables = sorted(t.name for t in introspection.get_table_list(cursor) if t.type == "t")
        for table in tables:
            columns = {
                info.name: {
                    "type": _type(connection, info),
                    "null": bool(info.null_ok),
                    "default": None if info.default is None else str(info.default),
                }
                for info in introspection.get_table_description(cursor, table)
            }
            constraints: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
            for name, details in introspection.get_constraints(cursor, table).items():
                stable = (
                    "" if connection.vendor == "sqlite" and _UNSTABLE_NAME.match(name) else name
                )
                constraints[(_kind(details), stable, tuple(details.get("columns") or ()))] += 1
            schema[table] = {"columns": columns, "constraints": constraints}
    return schema


def _type(connection: BaseDatabaseWrapper, info: Any) -> str:
    try:
        name = connection.introspection.get_field_type(info.type_code, info)
    except KeyError:
        name = str(info.type_code)
    # SQLite keeps the declared length in display_size; elsewhere display_size comes from
    # the rows a query returned (MySQL), so only the declared sizes count.
    declared = (
        (info.display_size,)
        if connection.vendor == "sqlite"
        else (info.internal_size, info.precision, info.scale)
    )
    sizes = [str(size) for size in declared if size not in (None, -1, 0)]
    return f"{name}({', '.join(sizes)})" if sizes else name


def _kind(details: dict[str, Any]) -> str:
    if details.get("primary_key"):
        return "primary key"
    if details.get("foreign_key"):
        return "foreign key to {}.{}".format(*details["foreign_key"])
    if details.get("check"):
        return "check constraint"
    if details.get("unique"):
        return "unique index" if details.get("index") else "unique constraint"
    if details.get("index"):
        return f"index ({details['type']})" if details.get("type") else "index"
    return "constraint"


def compare(expected: Schema, found: Schema) -> list[str]:
    """Every difference, one line each: table, column (type, null, default), index,
    constraint. `expected` is the reference, `found` what the database has now."""
    lines: list[str] = []
    for table in sorted(expected.keys() - found.keys()):
        lines.append(f'table "{table}": missing')
    for table in sorted(found.keys() - expected.keys()):
        lines.append(f'table "{table}": unexpected (not in the reference schema)')
    for table in sorted(expected.keys() & found.keys()):
        want, have = expected[table]["columns"], found[table]["columns"]
        for column in sorted(want.keys() - have.keys()):
            lines.append(f'table "{table}", column "{column}": missing')
        for column in sorted(have.keys() - want.keys()):
            lines.append(f'table "{table}", column "{column}": unexpected')
        for column in sorted(want.keys() & have.keys()):
            for attribute in ("type", "null", "default"):
                before, after = want[column][attribute], have[column][attribute]
                if before != after:
                    lines.append(
                        f'table "{table}", column "{column}": {attribute} {after!r}, '
                        f"expected {before!r}"
                    )
        wanted, there = expected[table]["constraints"], found[table]["constraints"]
        for (kind, name, columns), _count in sorted((wanted - there).items()):
            lines.append(f'table "{table}": {_constraint(kind, name, columns)} missing')
        for (kind, name, columns), _count in sorted((there - wanted).items()):
            lines.append(f'table "{table}": {_constraint(kind, name, columns)} unexpected')
    return lines


def _constraint(kind: str, name: str, columns: tuple[str, ...]) -> str:
    named = f' "{name}"' if name else ""
    return f"{kind}{named} on ({', '.join(columns)})"
