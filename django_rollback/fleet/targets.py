"""The targets of a fleet: the public schema and the tenant schemas of a django-tenants
database, chosen by --schemas, --tenants-only or --shared-only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionDoesNotExist

from ..catalog import narrow_introspection
from ..exceptions import RollbackError

# "database": a whole database alias without django-tenants (--all-databases).
TargetKind = Literal["shared", "tenant", "database"]
# planned → succeeded | failed | held (--atomic: planned → prepared → succeeded | aborted);
# the others are decided while planning.
TargetStatus = Literal[
    "planned",
    "done",
    "unsaved",
    "refused",
    "succeeded",
    "failed",
    "held",
    "skipped",
    "prepared",
    "aborted",
]


@dataclass(frozen=True)
class Target:
    """One schema of one database (or, of kind "database", a database without schemas)."""

    database: str
    schema: str
    kind: TargetKind
    tenant_type: str | None = None  # multi-type tenants (TENANT_TYPES): the tenant's type

    @property
    def name(self) -> str:
        """How lines and JSON name it: the schema, prefixed by the alias when not default;
        a database without schemas by its alias."""
        if self.kind == "database":
            return self.database
        return (
            self.schema if self.database == DEFAULT_DB_ALIAS else f"{self.database}:{self.schema}"
        )

    def as_dict(self) -> dict[str, str]:
        """How each entry of a command's JSON names its target."""
        named = {"database": self.database, "schema": self.schema, "kind": self.kind}
        return named | ({"tenant_type": self.tenant_type} if self.tenant_type else {})


@dataclass(frozen=True)
class Selection:
    """Which targets: `schemas` by name, or only the tenants, or only the public schema."""

    schemas: tuple[str, ...] = ()
    tenants_only: bool = False
    shared_only: bool = False

    @property
    def narrowed(self) -> bool:
        return bool(self.schemas) or self.tenants_only or self.shared_only


# --- targets ---------------------------------------------------------------------------------


def uses_tenants(database: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether this alias is a django-tenants database (its connection chooses a schema)."""
    try:
        connection = connections[database]
    except ConnectionDoesNotExist:
        return False
    return hasattr(connection, "set_schema") and hasattr(settings, "TENANT_MODEL")


def public_schema() -> str:
    return str(getattr(settings, "PUBLIC_SCHEMA_NAME", "public"))


def home_target(database: str) -> Target:
    """Where a database keeps the states a fleet goes by: public, or the database itself."""
    if uses_tenants(database):
        return Target(database, public_schema(), "shared")
    return Target(database, "", "database")


def check_setup(database: str) -> None:
    """Refuse, with the sentence that says what to change, a setup the fleet cannot serve."""
    if not uses_tenants(database):
        raise RollbackError(
            f"Database '{database}' does not use django-tenants "
            "(ENGINE django_tenants.postgresql_backend and TENANT_MODEL): --schemas, "
            "--tenants-only and --shared-only need it."
        )
    if multi_type():
        places = {
            f'TENANT_TYPES["{name}"]["APPS"]': config.get("APPS", ())
            for name, config in getattr(settings, "TENANT_TYPES", {}).items()
        }
    else:
        places = {name: getattr(settings, name, ()) for name in ("SHARED_APPS", "TENANT_APPS")}
    for place, installed in places.items():
        if "django_rollback" not in installed:
            raise RollbackError(
                f'Add "django_rollback" to settings.{place}: each schema keeps its own saved '
                "states (docs/tenants.md)."
            )


def multi_type() -> bool:
    """Whether the tenants have types (django-tenants' HAS_MULTI_TYPE_TENANTS): each type
    lists its apps in TENANT_TYPES, and the router asks the connection for the type."""
    return bool(getattr(settings, "HAS_MULTI_TYPE_TENANTS", False))


@contextmanager
def on_schema(target: Target) -> Iterator[BaseDatabaseWrapper]:
    """The connection of the target's database, pointed at its schema until the end."""
    connection = connections[target.database]
    if target.kind == "database":
        yield connection
        return
    # set_schema() sets search_path to the schema then public on each new cursor: every
    # query of the single-database code lands in this schema's tables.
    # (with multi-type tenants the router asks the schema's type: it must be the tenant's)
    connection.set_schema(  # type: ignore[attr-defined]
        target.schema, tenant_type=target.tenant_type
    )
    narrow_introspection(connection)  # catalog queries that do not grow with the schemas
    try:
        yield connection
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]


_LIMIT = "TENANT_LIMIT_SET_CALLS"


def cache_search_path(database: str) -> bool:
    """For the rest of this process (a fleet worker): django-tenants sends `SET search_path`
    once per schema instead of before every query (its TENANT_LIMIT_SET_CALLS), which halves
    the round trips of a schema's rollback. Only with a django-tenants whose connection
    forgets the path whenever PostgreSQL may have undone it (ROLLBACK, ROLLBACK TO
    SAVEPOINT, a closed connection); PREPARE TRANSACTION is handled by atomic.py, and
    on_schema() makes every target set its own. Returns whether it is on."""
    if not _forgets_undone_paths(database):
        return False
    setattr(settings, _LIMIT, True)
    return True


@contextmanager
def search_path_cached(database: str) -> Iterator[None]:
    """cache_search_path() until the end of the block (the coordinator's planning)."""
    missing = object()
    before = getattr(settings, _LIMIT, missing)
    if not cache_search_path(database):
        yield
        return
    try:
        yield
    finally:
        if before is missing:
            delattr(settings, _LIMIT)
        else:
            setattr(settings, _LIMIT, before)
        connections[database].search_path_set_schemas = None  # type: ignore[attr-defined]


def _forgets_undone_paths(database: str) -> bool:
    if not uses_tenants(database):
        return False
    wrapper = type(connections[database])

    def forgets(method: str) -> bool:
        return any(
            method in vars(cls) and cls.__module__.startswith("django_tenants.")
            for cls in wrapper.__mro__
        )

    return forgets("rollback") and forgets("savepoint_rollback") and forgets("close")


def targets(
    database: str = DEFAULT_DB_ALIAS, selection: Selection | None = None, *, whole: bool = False
) -> list[Target]:
    """The public schema, then every tenant schema by name (migrate_schemas' order); with
    `whole`, a database without django-tenants is one target (--all-databases)."""
    selection = selection or Selection()
    if whole and not uses_tenants(database):
        return [] if selection.tenants_only else [Target(database, "", "database")]
    check_setup(database)
    if selection.tenants_only and selection.shared_only:
        raise RollbackError("Choose --tenants-only or --shared-only, not both.")
    if selection.schemas and (selection.tenants_only or selection.shared_only):
        raise RollbackError("--schemas names the schemas: drop --tenants-only/--shared-only.")
    public = Target(database, public_schema(), "shared")
    with on_schema(public):
        tenants = _tenants(database)
    found = [public] + [
        Target(database, name, "tenant", tenants[name])
        for name in sorted(set(tenants) - {public.schema})
    ]
    if selection.schemas:
        known = {t.schema for t in found}
        unknown = [name for name in selection.schemas if name not in known]
        if unknown:
            raise RollbackError(
                f"Unknown schema{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in "
                f"database '{database}': known are {', '.join(sorted(known))}."
            )
        return [t for t in found if t.schema in selection.schemas]
    if selection.tenants_only:
        return [t for t in found if t.kind == "tenant"]
    if selection.shared_only:
        return [public]
    return found


def _tenants(database: str) -> dict[str, str | None]:
    """{schema: its tenant type, or None without multi-type tenants} from the tenant model."""
    model = apps.get_model(getattr(settings, "TENANT_MODEL", ""))
    rows = model._default_manager.using(database)
    if not multi_type():
        return dict.fromkeys(rows.values_list("schema_name", flat=True))
    field = getattr(settings, "MULTI_TYPE_DATABASE_FIELD", "")
    return {name: str(kind) for name, kind in rows.values_list("schema_name", field)}


def parse_schemas(value: str | None) -> tuple[str, ...]:
    """The --schemas a,b option: names, in order, without blanks or repeats."""
    if value is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names:
        raise RollbackError("--schemas needs schema names separated by commas.")
    return names
